"""`ecohash lab` as a user meets it without root: help, and one-line refusals with exit 2."""

from __future__ import annotations

import platform

import click
import pytest
from click.testing import CliRunner

from ecohash.commands.lab import lab
from ecohash.commands.main import cli


def test_lab_is_registered_on_the_root_command() -> None:
    result = CliRunner().invoke(cli, ["lab", "-h"])
    assert result.exit_code == 0
    assert "Example:" in result.output


@pytest.mark.parametrize("name", sorted(lab.commands))
def test_every_lab_command_has_help_with_an_example(name: str) -> None:
    command = lab.commands[name]
    assert isinstance(command, click.Command)
    result = CliRunner().invoke(cli, ["lab", name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"ecohash lab {name}" in result.output


@pytest.mark.parametrize(
    "arguments", [["up"], ["up", "--nodes", "2"], ["down"], ["status"], ["ssh", "c01-r01-n01"]]
)
def test_not_root_is_a_one_line_error_with_exit_2(
    arguments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["lab", *arguments])
    assert result.exit_code == 2
    assert result.stderr == (
        "ecohash: the lab needs root (network namespaces, mounts, systemd-nspawn); "
        "run it with sudo\n"
    )


def test_not_linux_is_a_one_line_error_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    result = CliRunner().invoke(cli, ["lab", "up"])
    assert result.exit_code == 2
    assert result.stderr == "ecohash: the lab needs Linux; this is Darwin\n"


def test_containers_above_nodes_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["lab", "up", "--nodes", "2", "--containers", "3"])
    assert result.exit_code == 2
    assert result.stderr == (
        "ecohash: need 1 <= containers <= nodes <= 200; got nodes=2, containers=3\n"
    )
