"""Running a playbook on the site's executor: ansible-runner's transmit | worker | process.

A site that names `spec.provisioning.executor` has each run of provision and drift done
by a machine on its own network. The controller packs a private data directory (the
payload), ansible-runner's `transmit` streams it into `ssh EXECUTOR ansible-runner worker`,
the worker runs ansible-playbook there and streams its events back, and `process` hands
each one to the same handler a local run uses: display, state and report see no
difference. The executor needs ansible-core and ansible-runner only (roles/executor).

The payload holds the project (ansible.cfg, playbooks, roles, modules: the collection),
a static inventory rendered here from the site (the inventory plugin imports ecohash,
which the executor does not have), the known_hosts lines of the site's own hosts (never
other sites') and an ssh_config naming them.
A string of the static inventory that Ansible could template is `!unsafe`: the
plugin's values are never templated, and rendered into a file they must not start to be.

Secrets, and why nothing is left behind:
- The k3s join token is the controller's (made here on first use, as the k8s_node role's
  password lookup would): it travels in the payload over ssh's stdin, 0600 inside the
  worker's 0700 directory, which `ansible-runner worker --delete` and a shell trap remove
  when the run ends. A second token would split a running cluster.
- The kubeconfig the role fetches is written into the run's artifacts, which the worker
  streams back before it deletes its directory; it is moved from there to the
  controller's secrets directory (0600), only if it is a kubeconfig (artifacts.py).
- The nodes' SSH keys never leave the controller: the keys the site's ssh_config names
  for the nodes are loaded into a short-lived ssh-agent, usable only through the
  executor to the site's nodes, for the wave's timeout at most, forwarded to the
  executor for this run only and killed afterwards (agent.py).
Nothing secret is in an argument: everything travels over ssh's stdin.

What comes back is untrusted: the executor may be a node that runs tenants' workloads.
Its stream goes through GuardedProcessor (artifacts.py), which refuses a stream that
would write anywhere but the run's artifact directory, and fails the wave naming it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import string
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import yaml

from ecohash.ansible.artifacts import GuardedProcessor, UntrustedStreamError, read_kubeconfig
from ecohash.ansible.inventory import Inventory, ssh_common_args
from ecohash.atomic import write_atomic
from ecohash.errors import EcohashError
from ecohash.inventory.site import Site
from ecohash.paths import COLLECTION_PATH, fetched_kubeconfig_file, project_root, secrets_dir
from ecohash.ssh.agent import (
    AgentError,
    SshHost,
    known_hosts_files,
    short_lived_agent,
    site_identity_files,
)
from ecohash.ssh.host_key_checking import HOST_KEY_CHECKING_ARGS, known_hosts_files_of, portable_ssh_config
from ecohash.ssh.known_hosts import KnownHost, host_name, lines_naming

# What the executor needs of this checkout to run its playbooks: the collection's content
# as galaxy.yml's manifest ships it, with the collections/ link that names the checkout
# ecohash.site (ansible.cfg's collections_path).
PROJECT_CONTENT = ("ansible.cfg", "galaxy.yml", "meta", "playbooks", "roles", "plugins")
# Where the worker's private data directory goes on the executor: a fresh, unguessable
# name each run, created 0700 by the worker itself.
REMOTE_BASE = "/tmp"
# The join token as roles/k8s_node's password lookup makes it (length=64 chars=ascii_letters,digits).
TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 64
KUBECONFIG_ARTIFACT = "kubeconfig"
# How long a dead executor may keep ssh waiting before it counts as gone.
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15",
               "-o", "ServerAliveCountMax=4")
STDERR_LINES = 20
# The longest a wave may run on the executor, and the forwarded keys' lifetime (ssh-add -t):
# past it the agent holds nothing, so the wave is stopped rather than left to fail node by node.
WAVE_TIMEOUT_S = 6 * 3600
# ansible-runner's statuses of a job that ended (the worker sends one last, before its artifacts).
FINAL_STATUSES = frozenset({"successful", "failed", "timeout", "canceled"})


class ExecutorError(EcohashError):
    """The site's executor cannot run the playbook (unreachable, missing ansible-runner...)."""


@dataclass(frozen=True)
class Executor:
    """The site's executor: how ssh reaches it (the site's connection rules, host key
    checked) and the directory holding ansible-runner on it."""

    name: str  # as the site file names it
    address: str  # what ssh connects to: a node's mgmt_ip, or the host as written
    user: str
    port: int
    path: str
    ssh_config: Path | None = None

    @classmethod
    def of_site(cls, site: Site) -> Executor | None:
        provisioning = site.provisioning
        executor = provisioning.executor
        if executor is None:
            return None
        nodes = {node.name: node for node in site.nodes}
        node = nodes.get(executor.host)
        return cls(name=executor.host, address=str(node.mgmt_ip) if node else executor.host,
                   user=executor.user or provisioning.ssh.user, port=executor.port or provisioning.ssh.port,
                   path=executor.path, ssh_config=site.ssh_config_file)

    def describe(self) -> str:
        where = f" ({self.address})" if self.address != self.name else ""
        return f"executor {self.name}{where}"

    def ssh_options(self) -> list[str]:
        """ssh's options to reach a host as the site reaches its nodes, host keys checked."""
        return [*(["-F", str(self.ssh_config)] if self.ssh_config else []), *HOST_KEY_CHECKING_ARGS,
                *SSH_OPTIONS, "-p", str(self.port), "-l", self.user]

    def removal_command(self, directory: str) -> list[str]:
        """ssh removing the worker's `directory`: no agent, no site value as shell."""
        return ["ssh", *self.ssh_options(), "-o", "ForwardAgent=no", "--", self.address,
                f"rm -rf {shlex.quote(directory)}"]

    def worker_command(self, directory: str) -> str:
        """The remote shell command: the worker, in `directory`, removed however it ends."""
        quoted = shlex.quote(directory)
        runner = shlex.quote(f"{self.path}/ansible-runner")
        return (f"umask 077; trap {shlex.quote(f'rm -rf {quoted}')} EXIT HUP INT TERM; "
                f"{runner} worker --private-data-dir={quoted} --delete")

    @contextlib.contextmanager
    def transport(self, remote_command: str, access: NodeAccess) -> Iterator[list[str]]:
        """The command that runs `remote_command` on the executor, with a short-lived agent
        holding the site's keys for the nodes, constrained to them, forwarded to it."""
        with short_lived_agent(list(access.keys), list(access.executor_keys), list(access.node_keys),
                               WAVE_TIMEOUT_S) as agent:
            # ssh is given the agent as its SSH_AUTH_SOCK, not as ForwardAgent=<socket>:
            # OpenSSH 9.2 (Debian 12) takes that path but requests no forwarding when its
            # environment names no agent (found on the lab). It also keeps the operator's
            # own agent, and every key in it, away from the executor.
            yield ["env", f"SSH_AUTH_SOCK={agent}", "ssh", *self.ssh_options(), "-o", "ForwardAgent=yes",
                   "--", self.address, remote_command]

    def check_site_keys(self, site: Site, inventory: Inventory) -> None:
        """Refuse (exit 2) a site whose ssh_config names no key for its nodes, before any wave."""
        names = sorted(inventory.hosts)
        if names:
            site_identity_files(site, _node_host(site, inventory, names[0]))

    def known_hosts_names(self) -> list[str]:
        """How the site's known_hosts names the executor: as written, at its address, or
        under the HostKeyAlias the site's ssh_config gives it."""
        host = SshHost(self.address, self.port, self.user, self.ssh_config)
        names = [self.name, self.address, *host.resolved().get("hostkeyalias", [])]
        return [host_name(name, self.port) for name in dict.fromkeys(names)]


@dataclass(frozen=True)
class NodeAccess:
    """What the executor gets to reach the site's nodes: the site's keys for them (in the
    forwarded agent, never as files) and the nodes' and its own host keys."""

    keys: tuple[Path, ...]
    executor_keys: tuple[KnownHost, ...]  # for the agent's constraints only
    node_keys: tuple[KnownHost, ...]  # the known_hosts the executor checks the nodes against

    @classmethod
    def of_site(cls, executor: Executor, site: Site, inventory: Inventory, sample: SshHost) -> NodeAccess:
        """The site's keys (a site naming none is refused, exit 2) and only the site's
        lines of the known_hosts files the controller checks nodes and executor against."""
        keys = site_identity_files(site, sample)
        site_config = site.ssh_config_file
        files = [*known_hosts_files(sample), *(known_hosts_files_of(site_config) if site_config else [])]
        executor_host = SshHost(executor.address, executor.port, executor.user, site_config)
        executor_files = known_hosts_files(executor_host)
        node_names = []
        for name in inventory.hosts:
            host_vars = inventory.host_vars(name)
            port = int(host_vars.get("ansible_port") or 22)
            node_names += [host_name(name, port), host_name(str(host_vars.get("ansible_host") or name), port)]
        return cls(keys=tuple(keys), executor_keys=tuple(lines_naming(executor.known_hosts_names(),
                                                                      [*executor_files, *files])),
                   node_keys=tuple(lines_naming(node_names, files)))


@dataclass(frozen=True)
class RemoteRun:
    """What ran on the executor, as the controller saw it."""

    status: str
    rc: int
    stats: dict[str, dict[str, int]]
    reason: str | None = None  # why the run itself failed, naming the executor


@dataclass
class Job:
    """One playbook run, as ansible-runner takes it (paths inside the private data directory)."""

    playbook: str  # file name under playbooks/
    limit_hosts: list[str] | None
    limit: str | None
    cmdline: str | None
    extravars: dict[str, Any]


def run_on_executor(executor: Executor, site: Site, inventory: Inventory, job: Job, directory: Path,
                    handle: Callable[[dict[str, Any]], bool], cancel: threading.Event | None) -> RemoteRun:
    """Run `job` on the executor; every event it streams back goes to `handle`, and the
    run's artifacts to `directory`/artifacts, as a local run's do. A run the executor
    cannot do ends failed with the reason, like one it dies in: the wave's nodes stay not run."""
    try:
        return _run_on_executor(executor, site, inventory, job, directory, handle, cancel)
    except (ExecutorError, AgentError, UntrustedStreamError) as error:
        return RemoteRun(status="failed", rc=1, stats={}, reason=f"{executor.describe()}: {error}")


def _run_on_executor(executor: Executor, site: Site, inventory: Inventory, job: Job, directory: Path,
                     handle: Callable[[dict[str, Any]], bool], cancel: threading.Event | None) -> RemoteRun:
    ident = uuid.uuid4().hex
    remote = f"{REMOTE_BASE}/ecohash-{uuid.uuid4().hex}"
    access = NodeAccess.of_site(executor, site, inventory, _sample_host(executor, site, inventory, job))
    with tempfile.TemporaryDirectory(prefix="ecohash-payload-") as payload_dir:
        payload = Path(payload_dir)
        kwargs = write_payload(payload, remote, ident, executor, site, inventory, job, access)
        with executor.transport(executor.worker_command(remote), access) as command:
            try:
                # Its own session: Ctrl-C is the rollout's to handle (cancel), not ssh's to die of.
                process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, start_new_session=True)
            except OSError as error:
                raise ExecutorError(f"cannot start ssh to {executor.describe()}: {error}") from None
            stderr: deque[str] = deque(maxlen=STDERR_LINES)
            threads = [
                threading.Thread(target=_transmit, args=(process.stdin, payload, ident, kwargs), daemon=True),
                threading.Thread(target=_collect, args=(process.stderr, stderr), daemon=True),
            ]
            stop = threading.Event()
            timed_out = threading.Event()
            threads.append(threading.Thread(target=_stop_on_cancel_or_timeout, daemon=True,
                                            args=(process, cancel, stop, timed_out)))
            for thread in threads:
                thread.start()
            stats: dict[str, dict[str, int]] = {}
            explanation: list[str] = []
            answered: list[bool] = []  # anything came back: the executor was reached

            def on_event(event: dict[str, Any]) -> bool:
                answered.append(True)
                if event.get("event") == "playbook_on_stats":
                    data = event.get("event_data", {})
                    stats.update({key: data[key] for key in _STATS_KEYS if isinstance(data.get(key), dict)})
                return handle(event)

            def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
                if data.get("status") != "error":  # the process side's own, when the stream ends
                    answered.append(True)
                if data.get("job_explanation"):
                    explanation.append(str(data["job_explanation"]))

            processor = GuardedProcessor(_input=process.stdout, private_data_dir=str(directory), ident=ident,
                                         event_handler=on_event, status_handler=on_status, quiet=True)
            try:
                processor.run()
            except UntrustedStreamError:
                process.terminate()  # nothing more is read from it; its trap removes its directory
                raise
            finally:
                stop.set()
                if process.poll() is None:
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                for thread in threads:
                    thread.join(timeout=5)
    artifacts = directory / "artifacts" / ident
    _keep_kubeconfig(artifacts, site)
    rc = _read_rc(artifacts)
    status = processor.status
    # The worker exits with ansible-playbook's rc: only a stream that ended before the
    # worker's final status and artifacts is the executor's failure.
    if rc is None or status not in FINAL_STATUSES:
        canceled = cancel is not None and cancel.is_set()
        reason = None if canceled else _why(executor, process.returncode, stderr, explanation, bool(answered))
        if timed_out.is_set():
            reason = f"{executor.describe()} did not end the wave within its timeout of {WAVE_TIMEOUT_S} s"
        if answered and not remove_worker_directory(executor, remote) and reason is not None:
            reason += f"; its directory {remote} (with the join token) may be left on it: remove it there"
        return RemoteRun(status="canceled" if canceled else "failed",
                         rc=rc if rc is not None else (process.returncode or 1), stats=stats, reason=reason)
    return RemoteRun(status=status, rc=rc, stats=stats)


def remove_worker_directory(executor: Executor, remote: str) -> bool:
    """Remove a worker's directory after its stream ended early; whether that succeeded.

    The worker's shell trap removes it however the worker ends, but not when the shell
    itself is killed (SIGKILL, the session torn down): then the payload, the join token
    among it, would stay on the executor. A second connection does what the trap could not.
    """
    try:
        done = subprocess.run(executor.removal_command(remote), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30, check=False, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


_STATS_KEYS = ("ok", "failures", "dark", "changed", "skipped", "processed", "ignored", "rescued")


def _sample_host(executor: Executor, site: Site, inventory: Inventory, job: Job) -> SshHost:
    """A node the job reaches, as the controller reaches it: the site's nodes share one
    way in (the site group's connection variables); the executor itself if none."""
    names = [name for name in job.limit_hosts or () if name in inventory.hosts] or sorted(inventory.hosts)
    if not names:
        return SshHost(executor.address, executor.port, executor.user, site.ssh_config_file)
    return _node_host(site, inventory, names[0])


def _node_host(site: Site, inventory: Inventory, name: str) -> SshHost:
    host_vars = inventory.host_vars(name)
    return SshHost(address=host_vars["ansible_host"], port=host_vars["ansible_port"],
                   user=host_vars["ansible_user"], ssh_config=site.ssh_config_file)


def write_payload(payload: Path, remote: str, ident: str, executor: Executor, site: Site,
                  inventory: Inventory, job: Job, access: NodeAccess) -> dict[str, Any]:
    """Write the private data directory the executor gets; return ansible-runner's arguments.

    `remote` is where the worker unpacks it: the static inventory and the environment name
    files there.
    """
    project = payload / "project"
    project.mkdir(mode=0o700)
    root = project_root()
    for name in PROJECT_CONTENT:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, project / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / name)
    # ansible.cfg's collections/ with ecohash.site linked to the project, as a checkout has it;
    # made rather than copied: an installed ecohash's content has no such link.
    link = project.joinpath("collections", *COLLECTION_PATH)
    link.parent.mkdir(parents=True)
    link.symlink_to(Path(*[".."] * len(COLLECTION_PATH)))
    ssh_dir = payload / "ssh"
    ssh_dir.mkdir(mode=0o700)
    # The site's lines of the known hosts the controller checks the nodes against (never
    # other sites'), and the site's ssh_config less this machine's files: the executor
    # checks every node's key as the controller would.
    site_config = site.ssh_config_file
    (ssh_dir / "known_hosts").write_text("".join(entry.line() + "\n" for entry in access.node_keys))
    (ssh_dir / "ssh_config").write_text(portable_ssh_config(site_config, f"{remote}/ssh/known_hosts"))
    secrets = payload / "secrets"
    secrets.mkdir(mode=0o700)
    environment = {
        "ANSIBLE_CONFIG": f"{remote}/project/ansible.cfg",
        # The static inventory only: the site file and its plugin stay on the controller.
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        # ansible-playbook from the executor's ansible-runner install first.
        "PATH": f"{executor.path}:/usr/local/bin:/usr/bin:/bin",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # Facts kept between runs on the executor, per site, as the controller keeps them.
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": f"~/.cache/ecohash/facts/{site.name}",
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600",
    }
    if site.kubernetes:
        token = controller_token_file(site)
        ensure_token(token)
        shutil.copy(token, secrets / "k3s-token")
        os.chmod(secrets / "k3s-token", 0o600)
        environment["ECOHASH_K3S_TOKEN_FILE"] = f"{remote}/secrets/k3s-token"
    inventory_dir = payload / "inventory"
    inventory_dir.mkdir(mode=0o700)
    (inventory_dir / "hosts.yml").write_text(render_static(executor_inventory(inventory, remote, ident)))
    limit = job.limit
    if job.limit_hosts is not None:
        (payload / "hosts.limit").write_text("".join(f"{name}\n" for name in job.limit_hosts))
        limit = f"@{remote}/hosts.limit" if job.limit is None else f"@{remote}/hosts.limit:&{job.limit}"
    return {
        "private_data_dir": str(payload),
        "playbook": str(project / "playbooks" / job.playbook),
        "inventory": str(inventory_dir / "hosts.yml"),
        "limit": limit,
        "cmdline": job.cmdline,
        "extravars": job.extravars or None,
        "envvars": environment,
        "fact_cache_type": "site",
        "quiet": True,
    }


def executor_inventory(inventory: Inventory, remote: str, ident: str) -> Inventory:
    """The site's inventory with the controller's paths replaced by the payload's."""
    all_vars = dict(inventory.all_vars)
    all_vars["ecohash_secrets_dir"] = f"{remote}/secrets"
    if all_vars.get("ecohash_kubeconfig_file"):
        # Into the artifacts, which the worker streams back before deleting its directory.
        all_vars["ecohash_kubeconfig_file"] = f"{remote}/artifacts/{ident}/{KUBECONFIG_ARTIFACT}"
    all_vars["ecohash_site_file"] = None
    group_vars = {group: dict(variables) for group, variables in inventory.group_vars.items()}
    for variables in group_vars.values():
        if "ansible_ssh_common_args" in variables:
            variables["ansible_ssh_common_args"] = ssh_common_args(f"{remote}/ssh/ssh_config")
    return replace(inventory, all_vars=all_vars, group_vars=group_vars)


class _Unsafe(str):
    """A string Ansible must never template: written with the !unsafe tag."""


class _InventoryDumper(yaml.SafeDumper):
    pass


_InventoryDumper.add_representer(
    _Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style="'"))


def _unsafe(value: Any) -> Any:
    # Ansible reads `!unsafe '550'` back as the number 550, so only a string Ansible could
    # template (every Jinja delimiter has a '{') is tagged; any other is a string either way.
    if isinstance(value, str):
        return _Unsafe(value) if "{" in value else value
    if isinstance(value, Mapping):
        return {key: _unsafe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unsafe(item) for item in value]
    return value


def render_static(inventory: Inventory) -> str:
    """The inventory as Ansible's YAML inventory: the same groups, hosts and variables the
    plugin gives, none of them templated (the plugin's values never are either)."""
    children_of_some = {child for parent, children in inventory.children.items() if parent != "all"
                        for child in children}
    # In the order the plugin adds them, which is the order Ansible lists them in.
    every_group = list(dict.fromkeys(
        [*(group for parent, children in inventory.children.items() for group in (parent, *children)),
         *inventory.groups, *inventory.group_vars]))
    defined: set[str] = set()
    hosts_given: set[str] = set()

    def group(name: str) -> dict[str, Any] | None:
        if name in defined:
            return None  # Ansible's YAML inventory merges a group named again; once is enough
        defined.add(name)
        entry: dict[str, Any] = {}
        if inventory.group_vars.get(name):
            entry["vars"] = _unsafe(inventory.group_vars[name])
        if inventory.groups.get(name):
            hosts: dict[str, Any] = {}
            for host in inventory.groups[name]:
                own = inventory.hosts.get(host) if host not in hosts_given else None
                hosts_given.add(host)
                hosts[host] = _unsafe(own) if own else None
            entry["hosts"] = hosts
        if inventory.children.get(name):
            entry["children"] = {child: group(child) for child in inventory.children[name]}
        return entry

    top = [name for name in every_group if name not in children_of_some and name != "all"]
    document = {"all": {"vars": _unsafe(inventory.all_vars),
                        "children": {name: group(name) for name in top}}}
    return yaml.dump(document, Dumper=_InventoryDumper, sort_keys=False, default_flow_style=False)


def controller_token_file(site: Site) -> Path:
    """The k3s join token the k8s_node role reads on the controller (its k8s_node_token_file)."""
    return Path(os.environ.get("ECOHASH_K3S_TOKEN_FILE") or secrets_dir(site.name) / "k3s-token")


def ensure_token(path: Path) -> None:
    """Make the join token as the role's password lookup would, if there is none yet: the
    executor's copy is deleted after each run, the controller's is the cluster's."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")


def _transmit(stdin: IO[bytes], payload: Path, ident: str, kwargs: dict[str, Any]) -> None:
    import ansible_runner

    try:
        ansible_runner.run(streamer="transmit", _output=stdin, ident=ident, **kwargs)
    except (BrokenPipeError, OSError, ValueError):
        pass  # the executor went away; the process side says why
    finally:
        # Sent (or never to be): the controller's copy of the secrets goes at once.
        shutil.rmtree(payload / "secrets", ignore_errors=True)
        with contextlib.suppress(OSError, ValueError):
            stdin.close()


def _collect(stream: IO[bytes], lines: deque[str]) -> None:
    for raw in stream:
        text = raw.decode(errors="replace").strip()
        if text:
            lines.append(text)


def _stop_on_cancel_or_timeout(process: subprocess.Popen[bytes], cancel: threading.Event | None,
                               stop: threading.Event, timed_out: threading.Event) -> None:
    deadline = time.monotonic() + WAVE_TIMEOUT_S
    while not stop.wait(0.2):
        if cancel is not None and cancel.is_set():
            process.terminate()
            return
        if time.monotonic() > deadline:
            timed_out.set()  # the agent's keys expire now too: the wave could reach no node
            process.terminate()
            return


def _read_rc(artifacts: Path) -> int | None:
    try:
        return int((artifacts / "rc").read_text().strip())
    except (OSError, ValueError):
        return None


def _keep_kubeconfig(artifacts: Path, site: Site) -> None:
    """Move the kubeconfig the role fetched from the streamed-back artifacts to the
    controller's secrets directory: the run directory keeps no credentials. It is the
    executor's word: never a link followed, only a bounded, well-formed kubeconfig."""
    fetched = artifacts / KUBECONFIG_ARTIFACT
    try:
        text = read_kubeconfig(fetched)
    finally:
        with contextlib.suppress(FileNotFoundError):
            fetched.unlink()  # a link itself, never what it points to
    if text is None:
        return
    target = fetched_kubeconfig_file(site.name)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(target, text, mode=0o600)


def _why(executor: Executor, returncode: int | None, stderr: deque[str], explanation: list[str],
         answered: bool) -> str:
    said = _last_line("\n".join(stderr)) if stderr else ""
    if returncode == 255 and not answered:
        return f"cannot reach {executor.describe()} over ssh: {said or 'ssh failed'}"
    if returncode == 127:
        return f"no ansible-runner in {executor.path} on {executor.describe()} (run the executor role)"
    detail = said or (explanation[-1] if explanation else f"ssh exited {returncode}")
    return f"{executor.describe()} stopped before the run ended: {detail[:300]}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""

