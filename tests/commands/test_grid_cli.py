"""`ecohash grid watch`: what it refuses before it follows anything (one line, the right exit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.grid.watch import watcher_lock
from tests.conftest import REPO

TX = str(REPO / "inventories" / "tx-odessa" / "site.yaml")
ND = str(REPO / "inventories" / "nd-williston" / "site.yaml")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path))
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(("args", "message"), [
    (["--vtn", "ftp://vtn.example"], "ecohash: --vtn: must be an http(s) URL such as"),
    (["--vtn", "http://vtn.example", "--ven-name", "a b"], "ecohash: --ven-name: must be a VEN name"),
    (["--ven-name", "a"], "ecohash: --ven-name: the site has no spec.power.curtailment.openadr; give --vtn too"),
    (["--for", "0s"], "ecohash: --for: '0s' must be longer than 0"),
    (["--for", "soon"], "ecohash: "),
])
def test_bad_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run("grid", "watch", TX, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


def test_a_site_with_no_signal_source_is_refused() -> None:
    # nd-williston has no programs, and --once follows no VTN.
    result = run("grid", "watch", ND, "--once")
    assert result.exit_code == 2
    assert result.stderr.startswith("ecohash: site nd-williston has no signal source to follow")


def test_once_says_when_the_next_window_opens_and_acts_on_nothing_outside_it(state: Path) -> None:
    # tx-odessa's 4cp program: June to September weekdays, 15:00-17:30 America/Chicago, with
    # an alert file that does not exist here: in a window the missing alert is refused, so
    # at no time of year does this contact a node.
    result = run("grid", "watch", TX, "--once")
    assert result.exit_code == 0, result.stderr
    assert "schedule: program 4cp: next window opens 20" in result.stderr
    assert not (state / "grid" / "tx-odessa" / "event.json").exists()


def test_a_second_watcher_on_the_site_is_refused_naming_the_first() -> None:
    with watcher_lock("tx-odessa"):
        result = run("grid", "watch", TX, "--vtn", "http://127.0.0.1:9/OpenADR2/Simple/2.0b")
    assert result.exit_code == 1
    assert "grid watcher of site tx-odessa" in result.stderr and "grid watch" in result.stderr
