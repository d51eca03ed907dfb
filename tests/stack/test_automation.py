"""ecohash.stack.automation: the CLI check, the backend, the passphrase, and the Automation API
driven end to end against a fake `pulumi` that records what it was asked and with what environment.

The fake answers as pulumi 3.205 would: above that version the SDK reads engine events over
gRPC, at or below it from a file the fake can write. The real CLI is exercised only by the
tests at the end, which skip where it is not installed.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest
from pulumi import automation as auto

from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory import Site, load_site
from ecohash.stack import automation
from ecohash.stack.automation import (
    apply_site,
    backend_url_for,
    command_error_summary,
    passphrase_env,
    passphrase_file,
    require_pulumi_cli,
    select_site_stack,
)
from tests.conftest import REPO
from tests.fakepulumi import FakePulumi, fake, hide_pulumi, install_fake_pulumi, state  # noqa: F401 (fixtures)


@pytest.fixture
def site(write_site) -> Site:
    return load_site(write_site())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# The CLI check


def test_missing_cli_is_one_line_naming_pulumi_and_how_to_install(tmp_path, monkeypatch) -> None:
    hide_pulumi(tmp_path, monkeypatch)
    with pytest.raises(EcohashError) as raised:
        require_pulumi_cli()
    message = str(raised.value)
    assert "\n" not in message
    assert "pulumi CLI is not installed" in message
    assert "https://www.pulumi.com/docs/iac/download-install/" in message
    assert "curl -fsSL https://get.pulumi.com | sh" in message
    assert "ecohash render SITE" in message
    assert raised.value.exit_code == 1


def test_apply_checks_for_the_cli_before_touching_the_state_directory(
        tmp_path, monkeypatch, site: Site, state: Path) -> None:
    hide_pulumi(tmp_path, monkeypatch)
    with pytest.raises(EcohashError, match="pulumi CLI is not installed"):
        apply_site(site, preview=True)
    assert not state.exists()


def test_the_cli_on_path_is_found(fake: FakePulumi) -> None:
    assert require_pulumi_cli() == str(fake.executable)


# The backend


def test_default_backend_is_a_private_file_backend_in_the_state_directory(state: Path) -> None:
    assert backend_url_for() == f"file://{state.resolve()}/pulumi"
    assert mode(state / "pulumi") == 0o700


def test_backend_option_and_variable_override_the_default(monkeypatch, state: Path) -> None:
    monkeypatch.setenv(automation.BACKEND_ENV, "s3://ecohash-state/sites")
    assert backend_url_for() == "s3://ecohash-state/sites"
    assert backend_url_for("https://api.pulumi.com") == "https://api.pulumi.com"
    assert not (state / "pulumi").exists()


@pytest.mark.parametrize(("explicit", "variable", "source"), [
    ("ecohash-state", None, "--backend"),
    (None, "/var/lib/ecohash/pulumi", "$ECOHASH_PULUMI_BACKEND"),
])
def test_a_backend_that_is_not_a_url_is_invalid_input(monkeypatch, explicit, variable, source) -> None:
    if variable:
        monkeypatch.setenv(automation.BACKEND_ENV, variable)
    with pytest.raises(InvalidInputError) as raised:
        backend_url_for(explicit)
    assert str(raised.value) == (
        f"{source} must be a Pulumi backend URL such as file:///var/lib/ecohash/pulumi,"
        f" s3://BUCKET/PREFIX or https://api.pulumi.com (got {explicit or variable!r})"
    )


# The passphrase


def test_passphrase_is_generated_once_private_and_reused(state: Path) -> None:
    path = passphrase_file("tx-odessa")
    assert path == state / "secrets" / "tx-odessa" / "pulumi-passphrase"
    passphrase = path.read_text()
    assert len(passphrase) >= 32
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700
    assert passphrase_file("tx-odessa") == path
    assert path.read_text() == passphrase
    assert [p.name for p in path.parent.iterdir()] == ["pulumi-passphrase"]
    assert passphrase_file("nd-williston").read_text() != passphrase


def test_an_existing_passphrase_is_never_replaced(state: Path) -> None:
    directory = state / "secrets" / "tx-odessa"
    directory.mkdir(parents=True)
    (directory / "pulumi-passphrase").write_text("chosen-by-an-operator")
    assert passphrase_file("tx-odessa").read_text() == "chosen-by-an-operator"


def test_a_concurrent_run_that_wrote_the_passphrase_first_wins(state: Path, monkeypatch) -> None:
    path = state / "secrets" / "tx-odessa" / "pulumi-passphrase"

    def token_while_another_run_writes_its_own(_length: int) -> str:
        path.write_text("written-first")
        return "written-second"

    monkeypatch.setattr(automation.secrets, "token_urlsafe", token_while_another_run_writes_its_own)
    assert passphrase_file("tx-odessa").read_text() == "written-first"
    assert [p.name for p in path.parent.iterdir()] == ["pulumi-passphrase"]


def test_the_generated_passphrase_travels_as_a_file_never_as_a_value(state: Path) -> None:
    env = passphrase_env("tx-odessa")
    assert env == {"PULUMI_CONFIG_PASSPHRASE_FILE": str(state / "secrets" / "tx-odessa" / "pulumi-passphrase")}
    assert Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text() not in json.dumps(env)


@pytest.mark.parametrize("variable", ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"])
def test_the_users_passphrase_variables_take_precedence(monkeypatch, state: Path, variable: str) -> None:
    monkeypatch.setenv(variable, "users-own")
    assert passphrase_env("tx-odessa") == {}
    assert not (state / "secrets").exists()


# Errors from pulumi


def command_error(stdout: str, stderr: str = "", code: int = 255) -> str:
    from pulumi.automation._cmd import CommandResult
    from pulumi.automation.errors import create_command_error

    return str(create_command_error(CommandResult(stdout=stdout, stderr=stderr, code=code)))


def test_an_ecohash_error_in_the_program_is_reported_by_its_message() -> None:
    stdout = """Previewing update (tx-odessa):
Diagnostics:
  pulumi:pulumi:Stack (ecohash-site-tx-odessa):
    error: Program failed with an unhandled exception:
    Traceback (most recent call last):
      File "/work/main/stacks/__main__.py", line 8, in <module>
        site_program(pulumi.Config("ecohash").get("site") or pulumi.get_stack())
    ecohash.errors.EcohashError: no kubeconfig for site tx-odessa: /state/kubeconfig/tx-odessa does not exist
"""
    assert command_error_summary(command_error(stdout)) == (
        "no kubeconfig for site tx-odessa: /state/kubeconfig/tx-odessa does not exist"
    )


def test_another_exception_in_the_program_keeps_its_type() -> None:
    stdout = """    error: Program failed with an unhandled exception:
    Traceback (most recent call last):
      File "/work/main/stacks/__main__.py", line 8, in <module>
    KeyError: 'gpu_models'
"""
    assert command_error_summary(command_error(stdout)) == "KeyError: 'gpu_models'"


def test_pulumi_error_lines_are_kept_and_its_closing_words_dropped() -> None:
    stdout = """Updating (tx-odessa):
Diagnostics:
  kubernetes:core/v1:Namespace (inference):
    error: configured Kubernetes cluster is unreachable: unable to load schema information from the API server
  pulumi:pulumi:Stack (ecohash-site-tx-odessa):
    error: update failed
"""
    assert command_error_summary(command_error(stdout, "\x1b[31merror: update failed\x1b[0m")) == (
        "configured Kubernetes cluster is unreachable: unable to load schema information from the API server"
    )


def test_without_error_lines_the_last_stderr_line_is_reported() -> None:
    assert command_error_summary(command_error("Updating (tx-odessa):", "warning: one\nlock held by pid 7\n")) == (
        "lock held by pid 7"
    )
    assert command_error_summary(command_error("", "", 3)) == "pulumi exited with status 3 and printed nothing"


# The Automation API, driven against the fake


def test_preview_creates_the_stack_with_the_passphrase_provider_and_the_site_file(
        fake: FakePulumi, site: Site, state: Path) -> None:
    lines: list[str] = []
    result = apply_site(site, preview=True, on_output=lines.append)

    backend = f"file://{state.resolve()}/pulumi"
    assert result == automation.ApplyResult("tx-odessa", "preview", backend, {"same": 10, "create": 3}, {})
    assert lines == ["preview of tx-odessa (fake)"]
    assert fake.stacks()["tx-odessa"] == {
        "secrets_provider": "passphrase",
        "config": {"ecohash:site": str(site.file.resolve())},
        "updates": 0,
    }
    assert ["preview"] in fake.commands()
    assert ["up"] not in fake.commands()


def test_every_pulumi_call_gets_the_backend_and_the_passphrase_file_never_the_passphrase(
        fake: FakePulumi, site: Site, state: Path) -> None:
    apply_site(site, preview=False)
    passphrase_path = state / "secrets" / "tx-odessa" / "pulumi-passphrase"
    passphrase = passphrase_path.read_text()
    stack_calls = [call for call in fake.calls() if call["argv"] != ["version"]]
    assert len(stack_calls) >= 5
    for call in stack_calls:
        assert call["env"]["PULUMI_BACKEND_URL"] == f"file://{state.resolve()}/pulumi"
        assert call["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase_path)
        assert "PULUMI_CONFIG_PASSPHRASE" not in call["env"]
    assert passphrase not in json.dumps(fake.calls())


def test_the_users_passphrase_is_passed_through_untouched(
        fake: FakePulumi, site: Site, state: Path, monkeypatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "users-own")
    apply_site(site, preview=True, backend_url="s3://ecohash-state/sites")
    for call in fake.calls()[1:]:
        assert call["env"]["PULUMI_CONFIG_PASSPHRASE"] == "users-own"
        assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in call["env"]
        assert call["env"]["PULUMI_BACKEND_URL"] == "s3://ecohash-state/sites"
    assert not state.exists()


def test_up_reports_its_changes_and_outputs_without_secrets(fake: FakePulumi, site: Site) -> None:
    result = apply_site(site, preview=False)
    assert result.operation == "up"
    assert result.changes == {"update": 1, "same": 12}
    assert result.outputs == {"endpoint": "http://10.20.1.11:8000"}
    assert fake.stacks()["tx-odessa"]["updates"] == 1
    up = next(call["argv"] for call in fake.calls() if "up" in call["argv"])
    assert "--refresh" in up


def test_a_second_run_selects_the_existing_stack(fake: FakePulumi, site: Site) -> None:
    apply_site(site, preview=True, refresh=False)
    apply_site(site, preview=False, refresh=False)
    assert [command[:2] for command in fake.commands()].count(["stack", "init"]) == 1
    assert fake.stacks()["tx-odessa"]["updates"] == 1
    assert not any("--refresh" in call["argv"] for call in fake.calls())


def test_a_failed_update_is_one_line_naming_the_stack(fake: FakePulumi, site: Site) -> None:
    fake.fail("Updating (tx-odessa):\n    error: configured Kubernetes cluster is unreachable: no kubeconfig",
              "error: update failed")
    with pytest.raises(EcohashError) as raised:
        apply_site(site, preview=False)
    assert str(raised.value) == (
        "update of stack tx-odessa failed: configured Kubernetes cluster is unreachable: no kubeconfig"
    )


def test_a_cli_too_old_for_the_sdk_is_one_line(fake: FakePulumi, site: Site) -> None:
    fake.executable.write_text(f"#!{sys.executable}\nprint('v2.25.0')\n")
    with pytest.raises(EcohashError) as raised:
        apply_site(site, preview=True)
    assert str(raised.value).startswith(
        "opening stack tx-odessa: Minimum version requirement failed. The minimum CLI version requirement is 3.1.0,"
    )


# The real pulumi CLI: where it is installed. No cluster is needed for the core checks.

needs_pulumi = pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="the pulumi CLI is not installed (https://www.pulumi.com/docs/iac/download-install/);"
           " Automation API tests need it",
)


@pytest.fixture
def stacks_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stack project copied out of the checkout, so stack config files land in tmp_path."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "stacks", root / "stacks")
    (root / ".venv").symlink_to(REPO / ".venv")
    monkeypatch.setattr(automation, "project_root", lambda: root)
    return root / "stacks"


@needs_pulumi
def test_real_cli_creates_the_stack_on_a_file_backend(stacks_copy: Path, site: Site, tmp_path: Path,
                                                     state: Path) -> None:
    backend = tmp_path / "backend"
    backend.mkdir()
    stack = select_site_stack(site, backend_url_for(f"file://{backend}"))

    workspace = stack.workspace
    assert "tx-odessa" in [summary.name for summary in workspace.list_stacks()]
    assert stack.get_config("ecohash:site").value == str(site.file.resolve())
    # Only the passphrase provider writes a salt into the stack's settings.
    assert workspace.stack_settings("tx-odessa").encryption_salt
    passphrase = (state / "secrets" / "tx-odessa" / "pulumi-passphrase").read_text()
    assert passphrase not in json.dumps(stack.export_stack().__dict__)
    assert passphrase not in (stacks_copy / "Pulumi.tx-odessa.yaml").read_text()

    # A second run selects the same stack and can still decrypt its secrets.
    again = select_site_stack(site, backend_url_for(f"file://{backend}"))
    again.set_config("ecohash:probe", auto.ConfigValue("probe-value", secret=True))
    assert again.get_config("ecohash:probe").value == "probe-value"
    assert "probe-value" not in (stacks_copy / "Pulumi.tx-odessa.yaml").read_text()


@needs_pulumi
def test_real_cli_preview_without_a_cluster_fails_cleanly(stacks_copy: Path, site: Site,
                                                         tmp_path: Path) -> None:
    try:
        result = apply_site(site, preview=True, backend_url=f"file://{tmp_path}")
    except EcohashError as error:
        message = str(error)
        assert message.startswith("preview of stack tx-odessa failed: ")
        assert "\n" not in message and "Traceback" not in message
        assert any(word in message.lower() for word in ("kubeconfig", "cluster", "kubernetes"))
    else:
        # A kubeconfig for a reachable cluster was found after all.
        assert result.operation == "preview"
