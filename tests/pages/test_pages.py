"""Every HTML page extends the one base and says when, where and by what it was made."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

import ecohash
from ecohash.commands.main import cli
from ecohash.pages import made_now, number
from ecohash.paths import project_root
from ecohash.rollout.report import render_html
from tests.grid.test_report import curtailed
from tests.rollout.test_report import sample_report

MADE = re.compile(r'<p class="made">Made (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) on (\S+) by ecohash (\S+): ([^<]+)</p>')
PAGES = ("provision-report.html.j2", "curtail-report.html.j2", "fleet.html.j2")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def made(page: str) -> tuple[str, str, str, str]:
    (found,) = MADE.findall(page)
    assert page.index('<p class="made">') > page.index("<footer>")
    return found


@pytest.mark.parametrize("template", PAGES)
def test_every_page_extends_the_base(template: str):
    text = (project_root() / "templates" / template).read_text()
    assert '{% extends "page.html.j2" %}' in text
    assert "<!DOCTYPE" not in text and "<style>" not in text


def test_the_provision_report_says_when_where_and_what():
    report = sample_report()
    at, host, version, what = made(render_html(report))
    assert (host, version) == (socket.gethostname(), ecohash.__version__)
    assert what == f"ecohash provision {report['site']}, run {report['run']}"
    assert at <= made_now("x").at


def test_the_curtailment_report_says_when_where_and_what():
    outcome, directory = curtailed()
    _, host, version, what = made((directory / "report.html").read_text())
    assert (host, version) == (socket.gethostname(), ecohash.__version__)
    assert what == f"ecohash curtail grid-test, event {outcome.event.id}"


def test_the_fleet_page_says_when_where_and_what(tmp_path: Path):
    page = tmp_path / "fleet.html"
    result = CliRunner().invoke(cli, ["fleet", str(project_root() / "inventories"), "--html", str(page)])
    assert result.exit_code == 0, result.output
    _, host, _, what = made(page.read_text())
    assert (host, what) == (socket.gethostname(), "ecohash fleet")


def test_the_number_filter_separates_thousands_and_marks_no_figure():
    assert number(12361.5127) == "12,361.513"
    assert number(0.5, 1) == "0.5"
    assert number(None) == "-"
