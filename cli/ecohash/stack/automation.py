"""Drive a site's stack (the Pulumi program in stacks/) with the Pulumi Automation API.

The Automation API runs the pulumi CLI underneath, so everything here checks for it
first and turns the CLI's failures into one-line EcohashErrors.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pulumi import automation as auto

from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory import Site
from ecohash.paths import kubeconfig_file, project_root, secrets_dir, state_dir

INSTALL_URL = "https://www.pulumi.com/docs/iac/download-install/"
BACKEND_ENV = "ECOHASH_PULUMI_BACKEND"
SITE_CONFIG_KEY = "ecohash:site"
PASSPHRASE_FILE_NAME = "pulumi-passphrase"
# Pulumi's own variables; when the user sets either, pulumi reads it and ecohash stays out of the way.
PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


@dataclass(frozen=True)
class ApplyResult:
    """What a preview or an update of a site's stack did."""

    site: str
    operation: Literal["preview", "up"]
    backend_url: str
    # Resources per operation, in Pulumi's words: {"create": 3, "same": 10}.
    changes: dict[str, int]
    # The stack's outputs after an update, secret ones left out; a preview has none.
    outputs: dict[str, Any]


def require_pulumi_cli() -> str:
    """The pulumi executable on PATH; EcohashError naming what to install when there is none."""
    path = shutil.which("pulumi")
    if path is None:
        raise EcohashError(
            f"the pulumi CLI is not installed (no `pulumi` on PATH): install it from {INSTALL_URL}"
            " or with `curl -fsSL https://get.pulumi.com | sh`; `ecohash render SITE` works without it"
        )
    return path


def backend_url_for(explicit: str | None = None) -> str:
    """Where stack state lives: `explicit` (--backend), else $ECOHASH_PULUMI_BACKEND, else a
    file backend in the state directory, created 0700 (the state holds every resource's inputs)."""
    for url, source in ((explicit, "--backend"), (os.environ.get(BACKEND_ENV), f"${BACKEND_ENV}")):
        if not url:
            continue
        if "://" not in url:
            raise InvalidInputError(
                f"{source} must be a Pulumi backend URL such as file:///var/lib/ecohash/pulumi,"
                f" s3://BUCKET/PREFIX or https://api.pulumi.com (got {url!r})"
            )
        return url
    directory = state_dir().resolve() / "pulumi"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return f"file://{directory}"


def passphrase_file(site_name: str) -> Path:
    """The site's generated secrets passphrase, made on first use: secrets/SITE/pulumi-passphrase."""
    directory = secrets_dir(site_name)
    root = directory.parent
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / PASSPHRASE_FILE_NAME
    if path.exists():
        return path
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{PASSPHRASE_FILE_NAME}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
            file.flush()
            os.fsync(file.fileno())
        # A link rather than a rename: if a concurrent run got there first, its passphrase
        # may already encrypt the stack, so it must win and this one be dropped.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path


def passphrase_env(site_name: str) -> dict[str, str]:
    """The variables that give pulumi the site's passphrase: none when the user set their own,
    else the generated file's path. The passphrase itself never travels as a value."""
    if any(name in os.environ for name in PASSPHRASE_VARIABLES):
        return {}
    return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file(site_name))}


def stack_env(site_name: str, backend_url: str) -> dict[str, str]:
    """Variables for every pulumi command on the site's stack.

    The backend goes in PULUMI_BACKEND_URL so that `pulumi login` state in ~/.pulumi is
    neither needed nor changed.
    """
    return {"PULUMI_BACKEND_URL": backend_url, **passphrase_env(site_name)}


def select_site_stack(site: Site, backend_url: str) -> auto.Stack:
    """Create or select the site's stack (named after the site) and point ecohash:site at the
    site file, so the program reads exactly the file that was named. Needs the pulumi CLI."""
    options = auto.LocalWorkspaceOptions(
        env_vars=stack_env(site.name, backend_url), secrets_provider="passphrase"
    )
    with pulumi_errors(f"opening stack {site.name}"):
        stack = auto.create_or_select_stack(
            stack_name=site.name, work_dir=str(project_root() / "stacks"), opts=options
        )
        stack.set_config(SITE_CONFIG_KEY, auto.ConfigValue(value=str(site.file.resolve())))
    return stack


def apply_blocker(site: Site, timeout_s: float = 3.0) -> str | None:
    """Why the site's stack cannot be applied from here right now, or None when it can.

    `ecohash provision` applies when it can and renders otherwise, saying why; this is
    the why: no pulumi CLI, no kubeconfig, or an API server that does not answer.
    """
    import socket
    from urllib.parse import urlsplit

    import yaml

    if shutil.which("pulumi") is None:
        return f"no pulumi CLI on PATH (install it from {INSTALL_URL})"
    path = kubeconfig_file(site)
    try:
        config = yaml.safe_load(path.read_text()) or {}
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        server = urlsplit(cluster["server"])
    except OSError:
        return f"no kubeconfig at {path} (provision fetches it from the first server of a real cluster)"
    except (yaml.YAMLError, KeyError, StopIteration, TypeError):
        return f"{path} is not a kubeconfig with a current context"
    try:
        with socket.create_connection((server.hostname or "", server.port or 443), timeout=timeout_s):
            return None
    except OSError as error:
        return f"the cluster's API server {server.netloc} does not answer ({error.strerror or error})"


def apply_site(
    site: Site,
    *,
    preview: bool,
    backend_url: str | None = None,
    refresh: bool = True,
    on_output: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Preview or update the site's stack; `on_output` gets pulumi's progress, line by line.

    `refresh` reads the cluster's live state first: operators and the node roles change the
    cluster too, and a stale state would make a preview promise changes that are not the real ones.
    """
    require_pulumi_cli()
    url = backend_url_for(backend_url)
    stack = select_site_stack(site, url)
    if preview:
        with pulumi_errors(f"preview of stack {site.name}"):
            previewed = stack.preview(refresh=refresh, on_output=on_output)
        return ApplyResult(site.name, "preview", url, _op_counts(previewed.change_summary), {})
    with pulumi_errors(f"update of stack {site.name}"):
        updated = stack.up(refresh=refresh, on_output=on_output)
    outputs = {name: output.value for name, output in updated.outputs.items() if not output.secret}
    return ApplyResult(site.name, "up", url, _op_counts(updated.summary.resource_changes), outputs)


def _op_counts(changes: Mapping[Any, int] | None) -> dict[str, int]:
    # Typed as OpType, but the event stream's JSON hands over plain strings; accept both.
    return {getattr(op, "value", op): count for op, count in (changes or {}).items()}


@contextlib.contextmanager
def pulumi_errors(action: str) -> Iterator[None]:
    """Turn the Automation API's failures inside the block into one-line EcohashErrors."""
    try:
        yield
    except auto.errors.CommandError as error:
        raise EcohashError(f"{action} failed: {command_error_summary(str(error))}") from error
    except auto.errors.InvalidVersionError as error:
        raise EcohashError(f"{action}: {error}") from error


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ECOHASH_EXCEPTION = re.compile(r"^\s*ecohash\.errors\.\w+: (?P<message>.+)$")
_PYTHON_EXCEPTION = re.compile(r"^\s*(?P<message>[A-Za-z_][\w.]*(?:Error|Exception): .+)$")
_ERROR_LINE = re.compile(r"^\s*error: (?P<message>.+)$")
# Pulumi's closing lines; they say that something failed, never what.
_GENERIC_ERRORS = {"update failed", "preview failed", "refresh failed"}


def command_error_summary(message: str) -> str:
    """The few lines of a failed pulumi command that say what went wrong.

    `message` is a CommandError's text ("code: N / stdout: ... / stderr: ..."). An exception
    raised by the site program wins (its traceback is otherwise the loudest thing there),
    then pulumi's own `error:` lines, then whatever stderr said last.
    """
    head, _, stderr = _ANSI.sub("", message).rpartition("\n stderr: ")
    _, _, stdout = head.partition("\n stdout: ")
    lines = [line for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
    for pattern in (_ECOHASH_EXCEPTION, _PYTHON_EXCEPTION):
        found = [match["message"] for match in map(pattern.match, lines) if match]
        if found:
            return found[-1].strip()
    errors = [match["message"].strip() for match in map(_ERROR_LINE.match, lines) if match]
    meaningful = list(dict.fromkeys(e for e in errors if e not in _GENERIC_ERRORS))
    if meaningful:
        return "; ".join(meaningful[-2:])
    last = [line.strip() for line in (stderr or stdout).splitlines() if line.strip()]
    if last:
        return last[-1]
    code = re.search(r"code: (-?\d+)", head)
    return f"pulumi exited with status {code[1] if code else 'unknown'} and printed nothing"
