"""The `ecohash` group itself: Ctrl-C exiting 130 with one line from every command."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from tests.conftest import REPO

TX = str(REPO / "inventories" / "tx-odessa" / "site.yaml")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


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
