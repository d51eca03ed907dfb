"""Site-local execution (ecohash.ansible.remote): the executor's site key, the payload, and
ansible-runner's transmit -> worker -> process for real, with the worker run here as a
local process instead of over ssh (the transport's command is the only difference)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from click.testing import CliRunner

from ecohash.ansible import remote
from ecohash.ansible.artifacts import UntrustedStreamError
from ecohash.ansible.inventory import Inventory, load_inventory
from ecohash.ansible.remote import Executor, Job, NodeAccess
from ecohash.ansible.runner import HostProgress, PlaybookRun, run_playbook
from ecohash.commands.main import cli
from ecohash.errors import EcohashError
from ecohash.inventory import load_site
from ecohash.inventory.site import Site
from ecohash.paths import CONTENT
from ecohash.rollout import drift as drift_module
from ecohash.rollout.fingerprint import Fingerprints
from ecohash.rollout.state import PASSED, RolloutState
from ecohash.ssh import agent as remote_agent
from tests.ansible.test_artifacts import member, stream, symlink
from tests.ansible.test_plugin import plain
from tests.conftest import EXAMPLE_SITE, REPO
from tests.rollout.test_provision_truth import (  # noqa: F401 - fixtures
    SCOPE,
    SERVER,
    run_provision,
    stack_rendered,
    verified,
)

BIN = Path(sys.executable).parent  # this environment's ansible-runner and ansible-playbook
WILLISTON = (REPO / "inventories" / "nd-williston" / "site.yaml").read_text()
# EXAMPLE_SITE has 30 lines: `provisioning:` appended to its spec is line 31, `host:` 33.
HOST_LINE, PATH_LINE = 33, 34
TOKEN = "T0ken" * 12 + "abcd"  # the controller's join token in these tests (64 characters)


def with_executor(block: str, site: str = EXAMPLE_SITE) -> str:
    return site + "  provisioning:\n    executor:\n" + "".join(f"      {line}\n" for line in block.splitlines())


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ECOHASH_K3S_TOKEN_FILE", raising=False)
    return tmp_path / "state"


# The real NodeAccess.of_site and check: the site's keys and known hosts, from its ssh_config.
SITE_ACCESS = NodeAccess.of_site
REAL_CHECK = Executor.check_site_keys
NO_ACCESS = NodeAccess(keys=(), executor_keys=(), node_keys=())


@pytest.fixture(autouse=True)
def no_site_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test sites name no ssh_config (no keys): runs with a faked transport need none."""
    monkeypatch.setattr(NodeAccess, "of_site", lambda *args: NO_ACCESS)
    monkeypatch.setattr(Executor, "check_site_keys", lambda *args: None)


def host_key(directory: Path, name: str) -> str:
    """A fresh ed25519 public key as known_hosts writes it (type and base64)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
    return " ".join((directory / f"{name}.pub").read_text().split()[:2])


@pytest.fixture
def site_keys(tmp_path: Path) -> dict[str, Any]:
    """A site's ssh_config naming its key and known_hosts (its executor 10.20.3.4, its node
    c01-r01-n01 hashed, another site's node), as an operator's controller has them."""
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "site_key")], check=True)
    executor_key, node_key, other_key = (host_key(keys, name) for name in ("executor", "node", "other"))
    known = tmp_path / "known_hosts"
    known.write_text(f"10.20.3.4 {executor_key}\n"
                     f"10.99.7.7,other-site-n01 {other_key}\n")
    # ssh-keygen -H hashes the node's line as ssh does with HashKnownHosts yes.
    hashed = tmp_path / "hashed"
    hashed.write_text(f"10.20.1.11 {node_key}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)
    known.write_text(known.read_text() + hashed.read_text())
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    IdentityFile {keys}/site_key\n    UserKnownHostsFile {known}\n")
    return {"config": config, "key": keys / "site_key", "known_hosts": known, "executor": executor_key,
            "node": node_key, "other": other_key}


@pytest.fixture
def remote_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the "executor" (a local worker) unpacks each run."""
    base = tmp_path / "executor-tmp"
    base.mkdir()
    monkeypatch.setattr(remote, "REMOTE_BASE", str(base))
    return base


@pytest.fixture
def token(state_dir: Path) -> Path:
    path = state_dir / "secrets" / "tx-odessa" / "k3s-token"
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def local_worker(*wrapper: str, environment: dict[str, str] | None = None):
    """Executor.transport replaced: the worker command runs here, in `sh -c`, wrapped."""
    commands: list[list[str]] = []

    @contextlib.contextmanager
    def transport(self: Executor, remote_command: str, access: NodeAccess) -> Iterator[list[str]]:
        command = ["env", *(f"{k}={v}" for k, v in (environment or {}).items()), "sh", "-c",
                   " ".join(wrapper).replace("{}", remote_command) if wrapper else remote_command]
        commands.append(command)
        yield command

    return transport, commands


def here(name: str = "exec1") -> Executor:
    return Executor(name=name, address=name, user="root", port=22, path=str(BIN))


# --- the site key -----------------------------------------------------------------------------

def test_the_executor_defaults_to_the_sites_ssh_user_and_port_and_the_role_path(write_site):
    site = load_site(write_site(with_executor("host: c01-r01-n02").replace(
        "  provisioning:\n", "  provisioning:\n    ssh: {user: ops, port: 2222}\n")))
    executor = Executor.of_site(site)
    # A node is reached at its mgmt_ip, as Ansible reaches it.
    assert executor == Executor(name="c01-r01-n02", address="10.20.1.12", user="ops", port=2222,
                                path="/opt/ecohash/executor/bin", ssh_config=None)
    assert executor.describe() == "executor c01-r01-n02 (10.20.1.12)"


@pytest.mark.parametrize("host", ["10.20.3.4", "exec1.site.example", "c01-r01-n01"])
def test_a_node_an_address_on_the_site_network_or_a_qualified_name_is_an_executor(write_site, host):
    site = load_site(write_site(with_executor(f"host: {host}\nuser: runner\nport: 2200\npath: /srv/ex/bin")))
    executor = Executor.of_site(site)
    assert (executor.user, executor.port, executor.path) == ("runner", 2200, "/srv/ex/bin")


def test_the_executor_path_reaches_ansible_and_leaves_node_fingerprints_alone(write_site):
    without = load_inventory(write_site(EXAMPLE_SITE, name="a.yaml"))
    with_it = load_inventory(write_site(with_executor("host: 10.20.3.4\npath: /srv/ex/bin"), name="b.yaml"))
    assert without.all_vars["ecohash_executor_path"] is None
    assert with_it.all_vars["ecohash_executor_path"] == "/srv/ex/bin"
    # Where a rollout runs from changes nothing on a node: no re-run of every node.
    for name in with_it.hosts:
        assert Fingerprints(with_it).of(name).value == Fingerprints(without).of(name).value


def test_a_node_that_is_the_executor_alone_lets_sshd_forward_the_agent(write_site):
    on_node = load_inventory(write_site(with_executor("host: c01-r01-n01"), name="c.yaml"))
    elsewhere = load_inventory(write_site(with_executor("host: 10.20.3.4"), name="d.yaml"))
    assert [name for name in on_node.hosts if on_node.host_vars(name).get("ecohash_site_executor")] \
        == ["c01-r01-n01"]
    assert not any(elsewhere.host_vars(name).get("ecohash_site_executor") for name in elsewhere.hosts)
    # The base role's sshd drop-in, rendered as Ansible renders it for each kind of node.
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    environment.filters["bool"] = bool  # Ansible's, for the booleans given here
    template = environment.from_string((REPO / "roles/base/templates/60-ecohash-sshd.conf.j2").read_text())
    default = yaml.safe_load((REPO / "roles/base/defaults/main.yml").read_text())["base_ssh_allow_agent_forwarding"]
    for variables, expected in ((on_node.host_vars("c01-r01-n01"), "yes"), (on_node.host_vars("c01-r01-n02"), "no")):
        allowed = jinja2.Environment().from_string(default).render(variables) == "True"
        text = template.render(ansible_managed="", base_ssh_max_auth_tries=3,
                               base_ssh_allow_agent_forwarding=allowed)
        assert f"AllowAgentForwarding {expected}\n" in text
    # Only the executor node's fingerprint changes: it is the one whose sshd changes.
    changed = [name for name in on_node.hosts
               if Fingerprints(on_node).of(name).value != Fingerprints(elsewhere).of(name).value]
    assert changed == ["c01-r01-n01"]


@pytest.mark.parametrize(("block", "line", "message"), [
    ("host: c01-r01-n09", HOST_LINE, "executor 'c01-r01-n09' is not a node of this site nor a qualified "
     "host name or IPv4 address (did you mean 'c01-r01-n04'?)"),
    ("host: 10.99.0.5", HOST_LINE, "executor 10.99.0.5 is not on the site's network 10.20.0.0/20 "
     "(network.mgmt_cidr)"),
    ("host: -oProxyCommand=sh", HOST_LINE, "spec.provisioning.executor.host: must be a host name or IPv4 "
     "address such as ntp.site.example"),
    ("host: 10.20.3.4\npath: opt/bin", PATH_LINE, "spec.provisioning.executor.path: must be an absolute "
     "directory path (letters, digits and . _ + - between '/', no '..') such as /opt/ecohash/executor/bin"),
    ("host: 10.20.3.4\npath: /opt/x;reboot", PATH_LINE, "spec.provisioning.executor.path: must be an "
     "absolute directory path"),
    ("host: 10.20.3.4\npath: /opt/../bin", PATH_LINE, "spec.provisioning.executor.path: must be an "
     "absolute directory path"),
])
def test_a_bad_executor_is_one_line_with_its_file_and_line_and_exit_2(write_site, block, line, message):
    path = write_site(with_executor(block))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{path}:{line}: {message}")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


# --- the payload ------------------------------------------------------------------------------

def ansible_inventory(source: Path, state_dir: Path, *extra: str, static: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ECOHASH_STATE_DIR=str(state_dir), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    if static:
        env["ANSIBLE_INVENTORY_ENABLED"] = "yaml"
    result = subprocess.run([BIN / "ansible-inventory", "-i", str(source), "--list", *extra], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_static_inventory_is_the_plugins_inventory(tmp_path, state_dir):
    site_file = tmp_path / "site.yaml"
    site_file.write_text(WILLISTON)
    static = tmp_path / "hosts.yml"
    static.write_text(remote.render_static(load_inventory(site_file)))
    # Every host's variables and the groups: the same, to each value's type.
    assert plain(json.loads(ansible_inventory(static, state_dir, static=True))) == \
        plain(json.loads(ansible_inventory(site_file, state_dir)))


def test_no_string_of_the_static_inventory_is_templated(tmp_path, state_dir):
    inventory = Inventory(all_vars={"ecohash_probe": "{{ 6 * 7 }}"})
    static = tmp_path / "hosts.yml"
    static.write_text(remote.render_static(inventory))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_INVENTORY_ENABLED="yaml")
    result = subprocess.run([BIN / "ansible", "localhost", "-i", str(static), "-m", "ansible.builtin.debug",
                             "-a", "var=ecohash_probe"], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "{{ 6 * 7 }}" in result.stdout and "42" not in result.stdout


def payload_of(tmp_path: Path, site: Site, job: Job) -> tuple[Path, dict[str, Any]]:
    payload = tmp_path / "payload"
    payload.mkdir()
    executor = Executor.of_site(site)
    inventory = load_inventory(site.file)
    access = SITE_ACCESS(executor, site, inventory, remote._sample_host(executor, site, inventory, job))
    return payload, remote.write_payload(payload, "/tmp/ecohash-x", "ident1", executor, site, inventory, job,
                                         access)


def test_the_payload_names_only_its_own_files_and_carries_the_controllers_token(
        tmp_path, write_site, token, state_dir):
    config = tmp_path / "ssh_config"
    known = tmp_path / "known_hosts"
    (tmp_path / "key").write_text("the site's key for its nodes\n")
    node_line = "10.20.1.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheNode\n"
    known.write_text("other-site-n01,10.99.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherSitesNode\n" + node_line)
    config.write_text(f"Host c01-r01-n01 10.20.1.11\n    HostName 10.20.1.11\n    HostKeyAlias c01-r01-n01\n"
                      f"Match exec \"true\"\n    User other\n"
                      f"Host *\n    IdentityFile {tmp_path}/key\n    IdentitiesOnly yes\n"
                      f"    UserKnownHostsFile {known}\n    ProxyJump jump.example\n    Port 2222\n")
    site = load_site(write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", "  provisioning:\n    ssh: {config_file: ssh_config}\n")))
    job = Job(playbook="bootstrap.yml", limit_hosts=["c01-r01-n01"], limit=None, cmdline=None, extravars={})
    payload, kwargs = payload_of(tmp_path, site, job)

    # The controller's token, not a new one (a second token would split the cluster), 0600.
    shipped = payload / "secrets" / "k3s-token"
    assert shipped.read_text().strip() == TOKEN
    assert shipped.stat().st_mode & 0o777 == 0o600
    assert kwargs["envvars"]["ECOHASH_K3S_TOKEN_FILE"] == "/tmp/ecohash-x/secrets/k3s-token"
    # Nothing secret in what ansible-runner sends as its arguments.
    assert TOKEN not in json.dumps(kwargs)
    # The site's lines of the known hosts the controller checks the nodes against: never
    # another site's (its topology), none of the controller's paths.
    assert (payload / "ssh" / "known_hosts").read_text() == node_line
    # The site's ssh_config as far as it travels: its aliases (keys are checked under them),
    # not the controller's files, commands, jump hosts or identities-only (the agent's keys).
    assert (payload / "ssh" / "ssh_config").read_text() == (
        "Host *\n    UserKnownHostsFile /tmp/ecohash-x/ssh/known_hosts\n    GlobalKnownHostsFile none\n"
        "Host c01-r01-n01 10.20.1.11\n    HostName 10.20.1.11\n    HostKeyAlias c01-r01-n01\n"
        "Host ecohash-dropped-match.invalid\n    User other\n"
        "Host *\n    Port 2222\n")
    text = (payload / "inventory" / "hosts.yml").read_text()
    for controller_path in (str(state_dir), str(config), str(tmp_path)):
        assert controller_path not in text
    assert "-F /tmp/ecohash-x/ssh/ssh_config -o StrictHostKeyChecking=yes" in text
    assert "/tmp/ecohash-x/artifacts/ident1/kubeconfig" in text
    assert (payload / "hosts.limit").read_text() == "c01-r01-n01\n"
    assert kwargs["limit"] == "@/tmp/ecohash-x/hosts.limit"
    assert (payload / "project" / "playbooks" / "bootstrap.yml").is_file()
    assert os.readlink(payload / "project" / "collections" / "ansible_collections" / "ecohash" / "site") \
        == "../../.."



def test_an_installed_ecohash_s_payload_makes_the_collection_link_its_content_lacks(
        tmp_path, write_site, token, site_keys, monkeypatch):
    # A wheel's content root: what paths.CONTENT names (setup.py), and no collections/ link.
    installed = tmp_path / "installed"
    installed.mkdir()
    for name in CONTENT:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, installed / name)
        else:
            shutil.copy(REPO / name, installed / name)
    monkeypatch.setattr(remote, "project_root", lambda: installed)
    site = load_site(write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", f"  provisioning:\n    ssh: {{config_file: {site_keys['config']}}}\n")))
    job = Job(playbook="bootstrap.yml", limit_hosts=["c01-r01-n01"], limit=None, cmdline=None, extravars={})

    payload, _kwargs = payload_of(tmp_path, site, job)

    collection = payload / "project" / "collections" / "ansible_collections" / "ecohash" / "site"
    assert os.readlink(collection) == "../../.."
    assert (collection / "roles" / "base" / "tasks" / "main.yml").is_file()


def test_a_missing_token_is_made_once_as_the_role_would(tmp_path):
    path = tmp_path / "secrets" / "k3s-token"
    remote.ensure_token(path)
    made = path.read_text()
    assert len(made.strip()) == 64 and made.strip().isalnum() and made.endswith("\n")
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    remote.ensure_token(path)
    assert path.read_text() == made


def site_access(site_keys: dict[str, Any], write_site: Any) -> tuple[Executor, NodeAccess]:
    site = load_site(write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", f"  provisioning:\n    ssh: {{config_file: {site_keys['config']}}}\n")))
    executor = Executor.of_site(site)
    inventory = load_inventory(site.file)
    job = Job(playbook="bootstrap.yml", limit_hosts=None, limit=None, cmdline=None, extravars={})
    return executor, SITE_ACCESS(executor, site, inventory, remote._sample_host(executor, site, inventory, job))


def test_the_ssh_command_checks_host_keys_and_carries_no_site_value_as_shell(site_keys, write_site):
    executor, access = site_access(site_keys, write_site)
    command = executor.worker_command("/tmp/ecohash-abc")
    with executor.transport(command, access) as argv:
        pass
    assert argv[2:5] == ["ssh", "-F", str(site_keys["config"])]
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
    assert argv[argv.index("-p") + 1] == "22" and argv[argv.index("-l") + 1] == "root"
    assert argv[-3:] == ["--", "10.20.3.4", command]
    # The remote shell gets one command of our own making: the worker, its directory removed
    # however it ends, files private to the user.
    assert command == ("umask 077; trap 'rm -rf /tmp/ecohash-abc' EXIT HUP INT TERM; "
                       "/opt/ecohash/executor/bin/ansible-runner worker --private-data-dir=/tmp/ecohash-abc --delete")


def test_the_site_key_alone_is_forwarded_constrained_to_the_nodes_for_the_waves_timeout(
        site_keys, write_site, monkeypatch):
    executor, access = site_access(site_keys, write_site)
    added: list[list[str]] = []
    real_add = remote_agent.add_command

    def add_command(key: Path, hosts_file: Path, lifetime_s: int) -> list[str]:
        command = real_add(key, hosts_file, lifetime_s)
        added.append([*command, hosts_file.read_text()])
        return command

    monkeypatch.setattr(remote_agent, "add_command", add_command)
    with executor.transport("true", access) as argv:
        # ssh gets the agent in its environment (ForwardAgent=<path> alone forwards nothing
        # with Debian 12's OpenSSH): the agent must hold the nodes' key while ssh runs.
        assert argv[0] == "env" and argv[1].startswith("SSH_AUTH_SOCK=") and argv[2] == "ssh"
        assert "ForwardAgent=yes" in argv
        agent_socket = argv[1].removeprefix("SSH_AUTH_SOCK=")
        held = subprocess.run(["ssh-add", "-L"], env={**os.environ, "SSH_AUTH_SOCK": agent_socket},
                              capture_output=True, text=True, check=False)
        # The site's key, one: never ~/.ssh's defaults.
        assert [line.split()[:2] for line in held.stdout.splitlines()] == \
            [Path(f"{site_keys['key']}.pub").read_text().split()[:2]]
    assert not Path(agent_socket).exists()  # the agent ends with the run
    # Usable to the executor, and through it to the site's nodes only, for one wave's time.
    [command] = added
    assert command[:4] == ["ssh-add", "-q", "-t", str(remote.WAVE_TIMEOUT_S)]
    assert command[6:10] == ["-h", "ecohash-executor", "-h", "ecohash-executor>ecohash-site-nodes"]
    assert command[10:12] == ["--", str(site_keys["key"])]
    # The hosts those names stand for: the executor's key, and the site's node (hashed in
    # known_hosts), never the other site's host.
    assert command[-1] == (f"ecohash-executor {site_keys['executor']}\n"
                           f"ecohash-site-nodes {site_keys['node']}\n")


def test_a_site_whose_ssh_config_names_no_key_is_refused_naming_the_setting_exit_2(
        tmp_path, write_site, monkeypatch):
    monkeypatch.setattr(Executor, "check_site_keys", REAL_CHECK)
    (tmp_path / "ssh_config").write_text("Host *\n    Port 22\n")
    no_key = write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", "  provisioning:\n    ssh: {config_file: ssh_config}\n"), name="no-key.yaml")
    no_config = write_site(with_executor("host: 10.20.3.4"), name="no-config.yaml")
    (tmp_path / "gone_config").write_text(f"Host *\n    IdentityFile {tmp_path}/no_such_key\n")
    gone = write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", "  provisioning:\n    ssh: {config_file: gone_config}\n"), name="gone.yaml")
    for path, line, message in (
            (gone, 32, f"spec.provisioning.ssh.config_file: the IdentityFile {tmp_path}/gone_config names for "
                       f"the nodes ({tmp_path}/no_such_key) is not on this machine"),
            (no_key, 32, f"spec.provisioning.ssh.config_file: {tmp_path}/ssh_config names no IdentityFile for "
                         "the nodes (10.20.1.11): the executor reaches them with only the keys the site names, "
                         "never ~/.ssh's defaults"),
            (no_config, HOST_LINE, "spec.provisioning.ssh.config_file is not set: the executor reaches the nodes with "
                            "only the keys a site's ssh_config names (IdentityFile), never ~/.ssh's defaults")):
        # drift follows terraform's rule: 2 means drift, invalid input is 1 (README).
        for command, code in ((["provision", str(path)], 2), (["drift", str(path)], 1)):
            result = CliRunner().invoke(cli, command)
            assert result.exit_code == code, result.output
            assert result.output.startswith(f"{path}:{line}: {message}"), result.output
            assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    # Nothing started: no run directory, no state.
    assert not (tmp_path / "state" / "runs").exists()


KUBECONFIG = ("apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: 'https://10.20.1.11:6443'}}]\n"
              "users: [{name: admin, user: {token: x}}]\ncontexts: [{name: lab, context: {cluster: lab, user: admin}}]\n")


def test_the_fetched_kubeconfig_leaves_the_artifacts_for_the_secrets_directory(tmp_path, write_site, state_dir):
    site = load_site(write_site())
    artifacts = tmp_path / "artifacts" / "ident1"
    artifacts.mkdir(parents=True)
    (artifacts / "kubeconfig").write_text(KUBECONFIG)
    remote._keep_kubeconfig(artifacts, site)
    kept = state_dir / "secrets" / "tx-odessa" / "kubeconfig"
    assert kept.read_text() == KUBECONFIG and kept.stat().st_mode & 0o777 == 0o600
    assert not (artifacts / "kubeconfig").exists()


@pytest.mark.parametrize(("make", "why"), [
    (lambda path, tmp: path.symlink_to(tmp / "controller-secret"), "the kubeconfig it sent is a symbolic link"),
    (lambda path, tmp: path.write_text("apiVersion: v1\n"), "the kubeconfig it sent is not a kubeconfig"),
    (lambda path, tmp: path.write_text("- just\n- a list\n"), "the kubeconfig it sent is not a kubeconfig"),
    (lambda path, tmp: path.write_text("a: [\n"), "the kubeconfig it sent is not YAML"),
    (lambda path, tmp: path.write_text(KUBECONFIG + "#" * (2 << 20)), "the kubeconfig it sent is over"),
    (lambda path, tmp: os.mkfifo(path), "the kubeconfig it sent is not a regular file"),
])
def test_a_kubeconfig_that_is_a_link_or_not_a_kubeconfig_is_never_kept(tmp_path, write_site, state_dir, make, why):
    # A controller file the executor would have copied into the secrets directory.
    (tmp_path / "controller-secret").write_text("root's secret\n")
    site = load_site(write_site())
    artifacts = tmp_path / "artifacts" / "ident1"
    artifacts.mkdir(parents=True)
    make(artifacts / "kubeconfig", tmp_path)
    with pytest.raises(UntrustedStreamError) as raised:
        remote._keep_kubeconfig(artifacts, site)
    assert str(raised.value).startswith(why), str(raised.value)
    assert not (state_dir / "secrets" / "tx-odessa" / "kubeconfig").exists()
    assert not os.path.lexists(artifacts / "kubeconfig")
    assert (tmp_path / "controller-secret").read_text() == "root's secret\n"


# --- transmit -> worker -> process, for real -------------------------------------------------

def reachable_run(site_file: Path, directory: Path, executor: Executor | None,
                  hosts: tuple[str, ...] = ("c01-r01-n01", "c01-r01-n02")) -> tuple[Any, list[str]]:
    seen: list[str] = []

    def on_update(progress: HostProgress) -> None:
        seen.append(f"{progress.name}: {progress.task}")

    result = run_playbook(PlaybookRun(site_name="tx-odessa", site_file=site_file, playbook="reachable.yml",
                                      hosts=list(hosts), directory=directory,
                                      executor=executor), on_update)
    return result, seen


@pytest.mark.slow
def test_a_run_on_the_executor_streams_back_what_a_local_run_gives(
        tmp_path, write_site, monkeypatch, token, remote_base):
    # Every host reached with the local connection (the worker's own environment), here and there.
    monkeypatch.setenv("ANSIBLE_TRANSPORT", "local")
    monkeypatch.setenv("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    transport, commands = local_worker()
    monkeypatch.setattr(Executor, "transport", transport)
    site_file = write_site(with_executor("host: 10.20.3.4"))

    there, seen_there = reachable_run(site_file, tmp_path / "there", here())
    local, seen_local = reachable_run(site_file, tmp_path / "local", None)

    assert there.status == local.status == "successful" and there.rc == local.rc == 0
    assert there.reason is None
    assert there.summary()["hosts"] == local.summary()["hosts"]
    assert there.stats["ok"] == local.stats["ok"] == {"c01-r01-n01": 2, "c01-r01-n02": 2}
    # The same handler, the same updates (each host's in its order; hosts run in parallel).
    assert sorted(seen_there) == sorted(seen_local)
    for host in ("c01-r01-n01", "c01-r01-n02"):
        assert [s for s in seen_there if s.startswith(host)] == [s for s in seen_local if s.startswith(host)]
    events = list((tmp_path / "there" / "artifacts").glob("*/job_events/*.json"))
    assert any(json.loads(e.read_text()).get("event") == "playbook_on_stats" for e in events)
    # No secret in any argument, nothing left in the executor's directory, nor the token
    # in anything the run kept.
    assert commands and all(TOKEN not in part for part in commands[0])
    assert list(remote_base.iterdir()) == []
    for path in (tmp_path / "there").rglob("*"):
        assert not path.is_file() or TOKEN not in path.read_text(errors="replace"), path


@pytest.mark.slow
def test_a_playbook_that_fails_on_the_executor_is_the_playbooks_failure_not_the_executors(
        tmp_path, write_site, monkeypatch, token, remote_base):
    # The worker exits with ansible-playbook's rc; here no host matches the limit (rc 1).
    transport, _ = local_worker()
    monkeypatch.setattr(Executor, "transport", transport)
    site_file = write_site(with_executor("host: 10.20.3.4"))
    there, _ = reachable_run(site_file, tmp_path / "there", here(), hosts=("no-such-node",))
    local, _ = reachable_run(site_file, tmp_path / "local", None, hosts=("no-such-node",))
    assert (there.status, there.rc, there.reason) == (local.status, local.rc, None) == ("failed", 1, None)


@pytest.mark.slow
def test_an_executor_that_dies_mid_stream_fails_the_run_naming_it(tmp_path, write_site, monkeypatch, token,
                                                                 remote_base):
    monkeypatch.setenv("ANSIBLE_TRANSPORT", "local")
    # The stream is cut after its first lines, as when the executor's power goes.
    transport, _ = local_worker("{} | head -n 3; exit 255")
    monkeypatch.setattr(Executor, "transport", transport)
    result, _ = reachable_run(write_site(with_executor("host: 10.20.3.4")), tmp_path / "run", here())
    assert result.status == "failed" and result.rc != 0
    assert result.reason.startswith("executor exec1 stopped before the run ended: "), result.reason


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_executor_that_does_not_answer_fails_the_run_with_sshs_reason(tmp_path, write_site, token, site_keys,
                                                                         monkeypatch):
    # The real transport and agent: ssh, to a port where nothing listens.
    monkeypatch.setattr(NodeAccess, "of_site", SITE_ACCESS)
    port = free_port()
    with site_keys["known_hosts"].open("a") as known:
        known.write(f"[127.0.0.1]:{port} {site_keys['executor']}\n")
    executor = Executor(name="127.0.0.1", address="127.0.0.1", user="root", port=port, path=str(BIN),
                        ssh_config=site_keys["config"])
    site_file = write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", f"  provisioning:\n    ssh: {{config_file: {site_keys['config']}}}\n"))
    result, seen = reachable_run(site_file, tmp_path / "run", executor)
    assert (result.status, seen) == ("failed", [])
    assert result.reason.startswith("cannot reach executor 127.0.0.1 over ssh: ssh: connect to host 127.0.0.1 "
                                    "port "), result.reason
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reason"] == result.reason


def test_a_run_the_executor_cannot_start_fails_with_the_reason_naming_it(tmp_path, write_site, token,
                                                                         monkeypatch):
    # ssh refuses the site's ssh_config before any connection: the run fails, nothing raises.
    monkeypatch.setattr(NodeAccess, "of_site", SITE_ACCESS)
    (tmp_path / "ssh_config").write_text("NoSuchOption yes\n")
    site_file = write_site(with_executor("host: 10.20.3.4").replace(
        "  provisioning:\n", "  provisioning:\n    ssh: {config_file: ssh_config}\n"))
    result, seen = reachable_run(site_file, tmp_path / "run", Executor.of_site(load_site(site_file)))
    assert (result.status, result.rc, seen) == ("failed", 1, [])
    assert result.reason.startswith("executor 10.20.3.4: cannot read ssh's configuration for 10.20.1.11: "), \
        result.reason


# --- provision and drift through an executor ---------------------------------------------------

def canned_worker(lines: list[dict[str, Any]], stderr: str) -> str:
    """A "worker" that streams `lines` and then drops the connection as ssh reports it."""
    text = "".join(json.dumps(line) + "\n" for line in lines)
    return f"cat >/dev/null; printf %s {shlex.quote(text)}; echo {shlex.quote(stderr)} >&2; exit 255"


def started(host: str, counter: int) -> dict[str, Any]:
    return {"event": "runner_on_start", "counter": counter, "uuid": f"u{counter}",
            "created": "2026-12-02T10:00:00.000000", "event_data": {"host": host, "task": "Gathering Facts"}}


@pytest.mark.parametrize(("crafted", "member"), [
    (lambda outside: [symlink("l", str(outside)), member("l/authorized_keys", b"ssh-ed25519 ATTACKER\n")], "'l'"),
    (lambda outside: [member("../../controller/authorized_keys", b"ATTACKER\n")],
     "'../../controller/authorized_keys'"),
])
def test_an_executor_that_streams_back_a_crafted_zip_fails_its_wave_and_writes_nothing(
        tmp_path, write_site, monkeypatch, crafted, member):
    # The controller's root keys, beside the run directory; the "executor" answers the
    # payload with a worker's stream whose artifact zip would write them.
    outside = tmp_path / "controller"
    outside.mkdir()
    (outside / "authorized_keys").write_text("ssh-ed25519 AAAA operator\n")
    crafted_stream = tmp_path / "stream"
    crafted_stream.write_bytes(stream(crafted(outside)))

    @contextlib.contextmanager
    def transport(self: Executor, remote_command: str, access: NodeAccess) -> Iterator[list[str]]:
        yield ["sh", "-c", f"cat >/dev/null; cat {shlex.quote(str(crafted_stream))}"]

    monkeypatch.setattr(Executor, "transport", transport)
    result = run_playbook(PlaybookRun(site_name="tx-odessa", site_file=write_site(with_executor("host: 10.20.3.4")),
                                      playbook="reachable.yml", hosts=["c01-r01-n01"], directory=tmp_path / "run",
                                      executor=here()), lambda progress: None)
    assert result.status == "failed"
    assert result.reason == (f"executor exec1: artifact member {member} "
                             + ("is a symbolic link" if member == "'l'" else "leaves the run's directory ('..')")
                             + "; nothing of it was written")
    assert [path.name for path in outside.iterdir()] == ["authorized_keys"]
    assert (outside / "authorized_keys").read_text() == "ssh-ed25519 AAAA operator\n"
    assert not list((tmp_path / "run").rglob("l")) and not (tmp_path / "controller" / "l").exists()


@pytest.fixture
def executor_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [{"status": "starting"}, started(SERVER, 1)]

    @contextlib.contextmanager
    def transport(self: Executor, remote_command: str, access: NodeAccess) -> Iterator[list[str]]:
        yield ["sh", "-c", canned_worker(lines, "Connection to 10.30.1.11 closed by remote host.")]

    monkeypatch.setattr(Executor, "transport", transport)
    # No executor to reach for the directory's removal (its own tests below).
    monkeypatch.setattr(remote, "remove_worker_directory", lambda executor, directory: True)


def williston_with_executor(tmp_path: Path) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(WILLISTON.replace("  kubernetes:\n", "  provisioning:\n    executor: {host: c01-cp-n01}\n"
                                      "  kubernetes:\n", 1))
    return load_site(path)


def test_a_wave_whose_executor_dies_fails_with_its_name_and_nothing_is_recorded_done(
        tmp_path, verified, stack_rendered, executor_drops):  # noqa: F811 - fixtures
    site = williston_with_executor(tmp_path)
    report = run_provision(site)
    canary = [node for node in report["nodes"] if node["wave"] == 1]
    assert canary and all("executor c01-cp-n01 (" in node["reason"] for node in canary), canary
    assert all("Connection to 10.30.1.11 closed by remote host." in node["reason"] for node in canary)
    assert report["outcome"] != "completed" and verified == []
    # Nothing passed: a re-run does every node again.
    state = RolloutState.load(site.name)
    assert [name for name, record in state.nodes.items() if record.status == PASSED] == []


@pytest.mark.parametrize("removed", [True, False])
def test_a_worker_that_died_has_its_directory_removed_by_a_second_connection(
        tmp_path, write_site, monkeypatch, executor_drops, removed):
    # A worker killed with its shell (SIGKILL) never runs the trap that removes its
    # directory, where the join token is: the controller removes it, or says it may be left.
    calls: list[tuple[str, str]] = []

    def remove(executor: Executor, directory: str) -> bool:
        calls.append((executor.name, directory))
        return removed

    monkeypatch.setattr(remote, "remove_worker_directory", remove)
    result = run_playbook(PlaybookRun(site_name="tx-odessa", site_file=write_site(with_executor("host: 10.20.3.4")),
                                      playbook="reachable.yml", hosts=["c01-r01-n01"], directory=tmp_path / "run",
                                      executor=here()), lambda progress: None)
    assert result.status == "failed"
    assert len(calls) == 1 and calls[0][0] == "exec1" and calls[0][1].startswith("/tmp/ecohash-"), calls
    left = f"its directory {calls[0][1]} (with the join token) may be left on it"
    assert (left in result.reason) is not removed, result.reason


def test_the_removal_is_one_rm_of_our_own_directory_over_ssh_without_an_agent():
    executor = Executor(name="exec1", address="10.20.3.4", user="ops", port=2200, path="/srv/ex/bin",
                        ssh_config=Path("/site/ssh_config"))
    argv = executor.removal_command("/tmp/ecohash-abc")
    assert argv[:3] == ["ssh", "-F", "/site/ssh_config"] and "StrictHostKeyChecking=yes" in argv
    assert "ForwardAgent=no" in argv
    assert argv[-3:] == ["--", "10.20.3.4", "rm -rf /tmp/ecohash-abc"]


def test_a_canceled_run_on_the_executor_ends_at_once_as_canceled(tmp_path, write_site, monkeypatch, token):
    lines = [{"status": "starting"}, started("c01-r01-n01", 1)]

    @contextlib.contextmanager
    def transport(self: Executor, remote_command: str, access: NodeAccess) -> Iterator[list[str]]:
        text = "".join(json.dumps(line) + "\n" for line in lines)
        yield ["sh", "-c", f"printf %s {shlex.quote(text)}; exec sleep 60"]

    monkeypatch.setattr(Executor, "transport", transport)
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    result = run_playbook(PlaybookRun(site_name="tx-odessa", site_file=write_site(with_executor("host: 10.20.3.4")),
                                      playbook="reachable.yml", hosts=["c01-r01-n01"], directory=tmp_path / "run",
                                      executor=here()), lambda progress: None, cancel)
    assert (result.status, result.reason) == ("canceled", None)
    assert list(result.hosts) == ["c01-r01-n01"]


def test_a_wave_past_its_timeout_the_agents_lifetime_is_stopped_naming_it(tmp_path, write_site, monkeypatch, token):
    # The forwarded keys expire with the wave's timeout: past it the wave could reach no
    # node, so it is stopped rather than left to fail node by node.
    monkeypatch.setattr(remote, "WAVE_TIMEOUT_S", 1)

    @contextlib.contextmanager
    def transport(self: Executor, remote_command: str, access: NodeAccess) -> Iterator[list[str]]:
        yield ["sh", "-c", f"printf %s {shlex.quote(json.dumps({'status': 'starting'}) + chr(10))}; exec sleep 60"]

    monkeypatch.setattr(Executor, "transport", transport)
    monkeypatch.setattr(remote, "remove_worker_directory", lambda executor, directory: True)
    result = run_playbook(PlaybookRun(site_name="tx-odessa", site_file=write_site(with_executor("host: 10.20.3.4")),
                                      playbook="reachable.yml", hosts=["c01-r01-n01"], directory=tmp_path / "run",
                                      executor=here()), lambda progress: None)
    assert (result.status, result.reason) == ("failed", "executor exec1 did not end the wave within its timeout of 1 s")


def test_here_runs_the_waves_on_the_controller(tmp_path, verified, stack_rendered, executor_drops,  # noqa: F811
                                               monkeypatch):
    runs: list[PlaybookRun] = []

    def run_playbook_here(request: PlaybookRun, on_update: Any, cancel: Any = None) -> Any:
        runs.append(request)
        raise EcohashError("stop here (test)")

    # provision runs each wave through run_sharded, which calls run_playbook once per shard.
    monkeypatch.setattr("ecohash.ansible.shards.run_playbook", run_playbook_here)
    with pytest.raises(EcohashError):
        run_provision(williston_with_executor(tmp_path), here=True)
    with pytest.raises(EcohashError):
        run_provision(williston_with_executor(tmp_path))
    assert [run.executor.name if run.executor else None for run in runs] == [None, "c01-cp-n01"]


def test_a_drift_check_whose_executor_dies_is_an_error_naming_it(tmp_path, executor_drops):
    site = williston_with_executor(tmp_path)
    with pytest.raises(EcohashError) as raised:
        drift_module.find_drift(drift_module.DriftRequest(site, limit=SERVER), lambda progress: None,
                                threading.Event())
    assert str(raised.value).startswith(f"the check run of {site.name} failed: executor c01-cp-n01 ("), str(raised.value)
