"""`ecohash apply`: exit codes and messages as a user sees them, with pulumi missing or faked
(the stand-in from tests/fakepulumi.py records every call it gets)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO, Any

import click
import pytest
from click.testing import CliRunner, Result

from ecohash.commands import apply as apply_module
from ecohash.commands.apply import apply
from ecohash.commands.main import EcohashGroup, cli
from ecohash.interrupts import INTERRUPTED_EXIT
from ecohash.locks import site_lock
from tests.conftest import EXAMPLE_SITE
from tests.fakepulumi import FakePulumi, fake, hide_pulumi, state  # noqa: F401 (fixtures)

MISSING_CLI = (
    "ecohash: the pulumi CLI is not installed (no `pulumi` on PATH): install it from"
    " https://www.pulumi.com/docs/iac/download-install/ or with `curl -fsSL https://get.pulumi.com | sh`;"
    " `ecohash render SITE` works without it\n"
)


# The command is registered in ecohash.commands.main separately; this group converts errors the same way.
@click.group(cls=EcohashGroup)
def ecohash() -> None:
    """ecohash, with only the apply command."""


ecohash.add_command(apply)


def run(*args: str, input: str | IO[bytes] | None = None) -> Result:
    return CliRunner().invoke(ecohash, ["apply", *args], input=input, catch_exceptions=False)


@pytest.fixture
def site(write_site) -> str:
    return str(write_site())


def operations(fake: FakePulumi) -> list[str]:
    return [argv[0] for argv in fake.commands() if argv and argv[0] in ("preview", "up")]


def test_help_has_an_example() -> None:
    result = run("-h")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert "ecohash apply tx-odessa --preview" in result.stdout


@pytest.mark.parametrize("flag", ["--preview", "--yes"])
def test_missing_cli_is_one_line_exit_1(tmp_path, monkeypatch, site: str, flag: str) -> None:
    hide_pulumi(tmp_path, monkeypatch)
    result = run(site, flag)
    assert result.exit_code == 1
    assert result.stderr == MISSING_CLI
    assert result.stdout == ""


def test_invalid_site_is_file_line_exit_2_and_pulumi_is_not_run(write_site, fake: FakePulumi) -> None:
    path = write_site(EXAMPLE_SITE, ("grid_mw: 12.5", "grid_mw: -1"))
    result = run(str(path), "--yes")
    assert result.exit_code == 2
    assert result.stderr == f"{path}:8: spec.power.grid_mw: must be greater than 0 (got -1)\n"
    assert fake.calls() == []


def test_off_a_terminal_it_refuses_to_apply_without_yes(site: str, fake: FakePulumi) -> None:
    result = run(site)
    assert result.exit_code == 2
    assert result.stderr == (
        "ecohash: refusing to apply tx-odessa without confirmation: stdin is not a terminal;"
        " pass --yes to apply, or --preview to only show the changes\n"
    )
    assert fake.calls() == []


def test_preview_shows_pulumis_progress_and_the_changes(site: str, fake: FakePulumi, state: Path) -> None:
    result = run(site, "--preview")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "preview of tx-odessa (fake)",
        f"tx-odessa: preview: create 3, same 10 (state: file://{state.resolve()}/pulumi)",
    ]
    assert operations(fake) == ["preview"]


@pytest.mark.slow
def test_yes_applies_and_prints_outputs_but_no_secrets(site: str, fake: FakePulumi, state: Path) -> None:
    result = run(site, "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "up of tx-odessa (fake)",
        f"tx-odessa: applied: update 1, same 12 (state: file://{state.resolve()}/pulumi)",
        '  endpoint: "http://10.20.1.11:8000"',
    ]
    assert operations(fake) == ["up"]
    passphrase = (state / "secrets" / "tx-odessa" / "pulumi-passphrase").read_text()
    assert passphrase not in result.output
    assert "fake-token-value" not in result.output


def test_on_a_terminal_it_previews_then_applies_when_confirmed(site: str, fake: FakePulumi,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(apply_module, "_can_ask", lambda: True)
    result = run(site, input="y\n")
    assert result.exit_code == 0, result.output
    assert "tx-odessa: preview: create 3, same 10" in result.stdout
    assert "Apply these changes to tx-odessa? [y/N]: y" in result.stdout
    assert "tx-odessa: applied: update 1, same 12" in result.stdout
    assert operations(fake) == ["preview", "up"]


def test_on_a_terminal_declining_applies_nothing(site: str, fake: FakePulumi, monkeypatch) -> None:
    monkeypatch.setattr(apply_module, "_can_ask", lambda: True)
    result = run(site, input="n\n")
    assert result.exit_code == 1
    assert result.stderr == "Aborted!\n"
    assert operations(fake) == ["preview"]


class CtrlCAtTheKeyboard(io.RawIOBase):
    """A terminal whose user presses Ctrl-C instead of answering."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(buffer) == 0:  # click's probe for a binary stream reads nothing
            return 0
        raise KeyboardInterrupt


# Ctrl-C at the prompt, and Ctrl-D (end of input): an interrupt, as anywhere else, not "no".
@pytest.mark.parametrize("answer", [CtrlCAtTheKeyboard, lambda: ""], ids=["ctrl-c", "end of input"])
def test_on_a_terminal_interrupting_the_question_applies_nothing_and_exits_130(
        site: str, fake: FakePulumi, state: Path, monkeypatch, answer) -> None:
    monkeypatch.setattr(apply_module, "_can_ask", lambda: True)
    result = run(site, input=answer())
    assert result.exit_code == INTERRUPTED_EXIT
    assert result.stderr == "ecohash: interrupted at the prompt: nothing was applied\n"
    assert "Apply these changes to tx-odessa? [y/N]: \n" in result.stdout
    assert operations(fake) == ["preview"]
    assert not (state / "rollouts").exists()
    with site_lock("tx-odessa", "provision"):  # and the site's lock was let go
        pass


def test_backend_option_and_variable_reach_pulumi(site: str, fake: FakePulumi, monkeypatch,
                                                   state: Path) -> None:
    monkeypatch.setenv("ECOHASH_PULUMI_BACKEND", "s3://from-the-environment")
    assert run(site, "--preview").exit_code == 0
    assert run(site, "--preview", "--backend", "https://api.pulumi.com").exit_code == 0
    backends = [call["env"]["PULUMI_BACKEND_URL"] for call in fake.calls() if "preview" in call["argv"]]
    assert backends == ["s3://from-the-environment", "https://api.pulumi.com"]
    assert not (state / "pulumi").exists()


def test_a_backend_that_is_not_a_url_is_exit_2(site: str, fake: FakePulumi) -> None:
    result = run(site, "--preview", "--backend", "ecohash-state")
    assert result.exit_code == 2
    assert result.stderr == (
        "ecohash: --backend must be a Pulumi backend URL such as file:///var/lib/ecohash/pulumi,"
        " s3://BUCKET/PREFIX or https://api.pulumi.com (got 'ecohash-state')\n"
    )


@pytest.mark.parametrize(("flags", "refreshes"), [((), True), (("--no-refresh",), False)])
def test_refresh_is_on_unless_turned_off(site: str, fake: FakePulumi, flags, refreshes: bool) -> None:
    assert run(site, "--yes", *flags).exit_code == 0
    up = next(call["argv"] for call in fake.calls() if "up" in call["argv"])
    assert ("--refresh" in up) is refreshes


def test_a_failing_update_is_one_line_exit_1(site: str, fake: FakePulumi) -> None:
    fake.fail(
        "Updating (tx-odessa):\n"
        "    error: Program failed with an unhandled exception:\n"
        "    Traceback (most recent call last):\n"
        "    ecohash.errors.EcohashError: no kubeconfig for tx-odessa\n",
        "error: update failed",
    )
    result = run(site, "--yes")
    assert result.exit_code == 1
    assert result.stderr == "ecohash: update of stack tx-odessa failed: no kubeconfig for tx-odessa\n"


def plan(site: str) -> dict:
    result = CliRunner().invoke(cli, ["plan", site, "--json", "--detailed-exitcode"], catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.stdout)["changes"]


def test_an_applied_stack_is_recorded_so_plan_shows_no_object_pending(site: str, fake: FakePulumi) -> None:
    assert {o["action"] for o in plan(site)["objects"]} == {"create"}
    result = run(site, "--yes")
    assert result.exit_code == 0, result.output
    changes = plan(site)
    assert changes["objects"] == []
    assert not any(key.startswith("objects_") for key in changes["counts"])
    assert changes["stack"]["action"] == "applied" and changes["stack"]["reason"] is None
    text = CliRunner().invoke(cli, ["plan", site], catch_exceptions=False).stdout
    assert "Changes against the last rollout (no provision run; stack applied by ecohash apply):" in text


def test_a_preview_or_a_failed_update_records_nothing(site: str, fake: FakePulumi, state: Path) -> None:
    assert run(site, "--preview").exit_code == 0
    fake.fail("Updating (tx-odessa):\n", "error: update failed")
    assert run(site, "--yes").exit_code == 1
    assert not (state / "rollouts").exists()


def test_apply_is_refused_while_another_command_holds_the_site(site: str, fake: FakePulumi,
                                                               state: Path) -> None:
    for flags in (["--yes"], ["--preview"]):
        with site_lock("tx-odessa", "provision"):
            result = run(site, *flags)
        assert result.exit_code == 1
        assert result.stderr.startswith("ecohash: site tx-odessa is busy: `ecohash provision` by ")
    assert operations(fake) == []
    assert not (state / "rollouts").exists()
