"""The `ecohash` group itself: commands listed in the order of use, and Ctrl-C exiting 130
with one line from every command."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from tests.conftest import REPO

TX = str(REPO / "inventories" / "tx-odessa" / "site.yaml")
ORDER_OF_USE = ["validate", "plan", "capacity", "render", "bootstrap", "provision", "status", "drift", "apply",
                "curtail", "grid", "bundle", "fleet", "lab", "schema"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_commands_in_the_order_of_use_each_with_a_whole_summary(flag):
    result = run(flag)
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == ORDER_OF_USE
    # A summary click had to cut ends in "..."; each must be short enough to be whole.
    assert not [line for line in listed if line.endswith("...")]


def test_curtail_lists_its_subcommands_in_the_order_of_use():
    listed = run("curtail", "--help").stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == ["start", "status", "release"]


def interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize(("module", "function", "args"), [
    ("ecohash.ansible.runner", "run_playbook", ("bootstrap", TX)),
    ("ecohash.grid.actuate", "event_status", ("curtail", "status", TX)),
    ("ecohash.commands.options", "load_site", ("plan", TX)),
])
def test_ctrl_c_exits_130_with_one_line_and_no_traceback(monkeypatch, state, module, function, args):
    import importlib

    monkeypatch.setattr(importlib.import_module(module), function, interrupt)
    result = run(*args)
    assert (result.exit_code, result.stderr) == (130, "ecohash: interrupted\n")
    assert "Aborted!" not in result.output
