"""`ecohash grid watch`: what it refuses before it follows anything (one line, the right exit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.grid.watch import watcher_lock
from tests.conftest import REPO
from tests.grid.sites import SITE
from tests.grid.vtn import VtnThread

TX = str(REPO / "inventories" / "tx-odessa" / "site.yaml")
ND = str(REPO / "inventories" / "nd-williston" / "site.yaml")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def event_loop_policy_after_asyncio_run() -> Iterator[None]:
    """A watcher that follows a VTN runs asyncio.run(), which leaves the main thread with no event
    loop for later tests that ask for one (get_event_loop): start them from a fresh policy."""
    yield
    asyncio.set_event_loop_policy(None)


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
        result = run("grid", "watch", TX, "--vtn", "http://127.0.0.1:9/OpenADR2/Simple/2.0b", "--insecure-vtn")
    assert result.exit_code == 1
    assert "grid watcher of site tx-odessa" in result.stderr and "grid watch" in result.stderr


PLAIN = "http://127.0.0.1:9/OpenADR2/Simple/2.0b"
NOT_PINNED = "; use https and name the VTN's ca_file or vtn_fingerprint in spec.power.curtailment.openadr, " \
             "or accept the risk with --insecure-vtn\n"


@pytest.mark.parametrize(("url", "problem"), [
    (PLAIN, "is plain http: anyone on the path can read and forge its events"),
    ("https://127.0.0.1:9/OpenADR2/Simple/2.0b", "is pinned by neither ca_file nor vtn_fingerprint: any "
     "certificate a public CA signs for its host would pass"),
])
def test_a_vtn_that_is_not_pinned_is_refused_naming_the_option(url: str, problem: str) -> None:
    result = run("grid", "watch", TX, "--vtn", url, "--for", "1s")  # --for: a VTN followed would not hang
    assert result.exit_code == 2, result.output
    assert result.stderr == f"ecohash: --vtn: {url} {problem}{NOT_PINNED}"


def test_a_plain_http_vtn_in_the_site_file_is_refused_at_its_file_and_line(tmp_path: Path) -> None:
    site_file = tmp_path / "grid-test.yaml"
    section = f"      openadr:\n        ven_name: grid-test-ven\n        vtn_url: {PLAIN}\n"
    site_file.write_text(SITE.replace("  network:\n", section + "  network:\n"))
    line = site_file.read_text().splitlines().index(f"        vtn_url: {PLAIN}") + 1
    result = run("grid", "watch", str(site_file), "--for", "1s")
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"{site_file}:{line}: spec.power.curtailment.openadr.vtn_url: {PLAIN} is "
                             f"plain http: anyone on the path can read and forge its events{NOT_PINNED}")


@pytest.mark.usefixtures("event_loop_policy_after_asyncio_run")
def test_insecure_vtn_follows_a_plain_http_vtn_with_a_warning_at_every_start(state: Path) -> None:
    for start in (1, 2):
        result = run("grid", "watch", TX, "--vtn", PLAIN, "--insecure-vtn", "--for", "1s")
        # Nothing answers on port 9: the VEN's "did not register" warning is why the exit is 1.
        assert result.exit_code == 1, result.stderr
        assert f"WARNING [openadr] openadr: --insecure-vtn: the VTN at {PLAIN} is plain http" in result.stderr
        assert "did not register tx-odessa" in result.stderr
        log = [json.loads(line) for line in (state / "grid" / "tx-odessa" / "watch.log").read_text().splitlines()]
        warnings = [entry for entry in log if entry["text"].startswith("--insecure-vtn: ")]
        assert [entry["level"] for entry in warnings] == ["WARNING"] * start


@pytest.mark.usefixtures("event_loop_policy_after_asyncio_run")
def test_the_warning_insecure_vtn_logs_is_no_failure_the_exit_status_reports() -> None:
    # The VTN registers the VEN, and wants no telemetry from a site it does not know: nothing
    # else is logged at WARNING, so the exit status is the insecure warning's alone.
    with VtnThread("not-tx-odessa") as vtn:
        result = run("grid", "watch", TX, "--vtn", vtn.url, "--insecure-vtn", "--for", "2s")
    assert f"WARNING [openadr] openadr: --insecure-vtn: the VTN at {vtn.url} is plain http" in result.stderr
    assert "registered with the VTN at" in result.stderr
    assert result.exit_code == 0, result.stderr
