"""The site as an Ansible inventory: groups, host vars and caps, without running Ansible.

(No __init__.py in tests/ansible: as a package it would be importable as `ansible` and
shadow Ansible itself, since pytest puts tests/ on sys.path. Hence the file names, which
must not clash with tests/lab/test_inventory.py either.)
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from bench.sites import site_text

from ecohash.ansible.inventory import K8S_LABEL_PARTS, Inventory, build_inventory, k8s_labels, load_inventory
from ecohash.budget import Plan, compile_budget
from ecohash.errors import InfeasibleSiteError, InvalidInputError, InventoryError, ProblemsError
from ecohash.inventory import load_site
from ecohash.inventory.labels import node_labels
from ecohash.inventory.site import Site
from ecohash.standard import load_standard
from tests.conftest import EXAMPLE_SITE, REPO
from tests.rollout.sshserver import SshServer, new_ed25519_key
from tests.sitegen import C, R, S

EXAMPLE_SITES = sorted((REPO / "inventories").glob("*/site.yaml"))
LOCK_TEXT = (REPO / "node-standard.lock.yml").read_text()

# Budget test figures (tests/test_budget.py): a 4 x 500 W GPU node with a 1000 W host.
GPU = {"g500": (500, 100)}
SKUS = {"n4": ("g500", 4, 1000), "cpu": (None, 0, 400)}

# EXAMPLE_SITE has 30 lines; `provisioning:` appended to its spec is line 31.
PROVISIONING_LINE = 31


def with_provisioning(block: str, site: str = EXAMPLE_SITE) -> str:
    """The site text with `block` (YAML, any indentation) as its spec.provisioning."""
    return site + "  provisioning:\n" + textwrap.indent(textwrap.dedent(block), "    ")


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory, monkeypatch) -> Path:
    # ecohash_secrets_dir comes from the state directory; keep it off /var/lib/ecohash.
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(path))
    return path


def test_example_sites_are_all_here():
    assert [p.parent.name for p in EXAMPLE_SITES] == ["ga-dalton", "nd-williston", "tx-odessa"]


@pytest.mark.parametrize("site_file", EXAMPLE_SITES, ids=lambda p: p.parent.name)
def test_every_cap_is_the_budget_compilers(site_file):
    # One source of truth: the inventory hands Ansible exactly what compile_budget decided.
    plan = compile_budget(load_site(site_file))
    inventory = load_inventory(site_file)
    assert list(inventory.hosts) == [n.node.name for n in plan.nodes]
    for node_plan in plan.nodes:
        host = inventory.hosts[node_plan.node.name]
        assert (host["ecohash_gpu_cap_w"], host["ecohash_gpu_capped_by"]) == (
            node_plan.gpu_cap_w, node_plan.capped_by
        ), node_plan.node.name


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        # The caps each example site's header comment works out by hand.
        ("tx-odessa", {("c01", 612), ("c02", 612), ("c03", 612), ("c04", 664)}),
        ("nd-williston", {("c01", None), ("c01", 350), ("c02", 337)}),
        ("ga-dalton", {("c01", 636), ("c02", 350), ("c02", 400), ("c03", 636)}),
    ],
)
def test_example_caps_match_the_hand_computed_ones(site, expected):
    inventory = load_inventory(REPO / "inventories" / site / "site.yaml")
    hosts = [inventory.host_vars(name) for name in inventory.hosts]
    assert {(h["ecohash_container"], h["ecohash_gpu_cap_w"]) for h in hosts} == expected


def test_hand_computed_caps_on_a_small_site(write_site):
    # Rack r1 (5 kW) holds 2 nodes: hosts 2000 W, 8 GPUs -> (5000 - 2000) / 8 = 375 W.
    # Rack r2 has no limit, and container and site are far from binding: TDP, 500 W.
    path = write_site(S([C([R(["n4", "n4"], "5"), R(["cpu", "n4"])])], gpu_models=GPU, skus=SKUS).yaml())
    site = load_site(path)
    inventory = build_inventory(site, compile_budget(site), load_standard())
    assert {name: (h["ecohash_gpu_cap_w"], h["ecohash_gpu_capped_by"]) for name, h in inventory.hosts.items()} == {
        "c1-r1-n1": (375, "rack c1/r1"),
        "c1-r1-n2": (375, "rack c1/r1"),
        "c1-r2-n1": (None, None),
        "c1-r2-n2": (500, None),
    }
    assert inventory.hosts["c1-r1-n1"] == {
        "ansible_host": "10.0.0.2", "ecohash_gpu_cap_w": 375, "ecohash_gpu_capped_by": "rack c1/r1",
    }
    assert inventory.host_vars("c1-r1-n1") == {
        "ansible_host": "10.0.0.2",
        "ansible_user": "root",
        "ansible_port": 22,
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes",
        "ecohash_container": "c1",
        "ecohash_rack": "r1",
        "ecohash_sku": "n4",
        "ecohash_gpu_model": "g500",
        "ecohash_gpu_count": 4,
        "ecohash_gpu_nvidia_smi_name": None,
        "ecohash_gpu_cap_w": 375,
        "ecohash_gpu_capped_by": "rack c1/r1",
        "ecohash_k8s_role": None,
    }
    cpu = inventory.host_vars("c1-r2-n1")
    assert (cpu["ecohash_gpu_model"], cpu["ecohash_gpu_count"], cpu["ecohash_gpu_nvidia_smi_name"]) == (None, 0, None)


def test_groups_of_the_example_site(write_site):
    inventory = load_inventory(write_site())
    nodes = ["c01-r01-n01", "c01-r01-n02", "c01-r01-n03", "c01-r01-n04"]
    assert dict(inventory.children) == {
        "all": ["site_tx_odessa"],
        "site_tx_odessa": ["container_c01"],
        "container_c01": ["rack_c01_r01"],
    }
    # '-' becomes '_' in every group name (hgx-h100-8, h100-sxm, tx-odessa).
    assert dict(inventory.groups) == {
        "rack_c01_r01": nodes,
        "sku_hgx_h100_8": nodes,
        "gpu_h100_sxm": nodes,
        "gpu_nodes": nodes,
        "k8s_servers": ["c01-r01-n01"],
        "k8s_agents": nodes[1:],
    }
    # What every node of a group shares sits on the group, once.
    assert inventory.group_vars == {
        "site_tx_odessa": {"ansible_user": "root", "ansible_port": 22,
                           "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes",
                           "ecohash_k8s_site_labels": {"ecohash.io/site": "tx-odessa"}},
        "container_c01": {"ecohash_container": "c01",
                          "ecohash_k8s_container_labels": {"ecohash.io/container": "c01",
                                                           "ecohash.io/cooling": "hydro"}},
        "rack_c01_r01": {"ecohash_rack": "r01", "ecohash_k8s_rack_labels": {"ecohash.io/rack": "r01"}},
        "sku_hgx_h100_8": {"ecohash_sku": "hgx-h100-8", "ecohash_gpu_model": "h100-sxm", "ecohash_gpu_count": 8,
                           "ecohash_gpu_nvidia_smi_name": "NVIDIA H100 80GB HBM3",
                           "ecohash_k8s_taints": ["nvidia.com/gpu=present:PreferNoSchedule"],
                           "ecohash_k8s_sku_labels": {"ecohash.io/sku": "hgx-h100-8",
                                                      "ecohash.io/gpu-model": "h100-sxm",
                                                      "ecohash.io/gpu-count": "8"}},
        "k8s_servers": {"ecohash_k8s_role": "server"},
        "k8s_agents": {"ecohash_k8s_role": "agent"},
    }
    assert [inventory.host_vars(n)["ecohash_k8s_role"] for n in nodes] == ["server", "agent", "agent", "agent"]
    assert [inventory.hosts[n]["ansible_host"] for n in nodes] == [
        "10.20.1.11", "10.20.1.12", "10.20.1.13", "10.20.1.14",
    ]


def test_groups_of_a_site_with_cpu_only_nodes():
    inventory = load_inventory(REPO / "inventories" / "nd-williston" / "site.yaml")
    gpu_nodes = [f"c0{c}-r0{r}-n0{n}" for c, racks in ((1, 2), (2, 5)) for r in range(1, racks + 1)
                 for n in range(1, 9)]
    assert inventory.children["site_nd_williston"] == ["container_c01", "container_c02"]
    assert inventory.children["container_c01"] == ["rack_c01_cp", "rack_c01_r01", "rack_c01_r02"]
    assert inventory.children["container_c02"] == [f"rack_c02_r0{r}" for r in range(1, 6)]
    assert inventory.groups["rack_c01_cp"] == ["c01-cp-n01"]
    assert inventory.groups["rack_c02_r03"] == [f"c02-r03-n0{n}" for n in range(1, 9)]
    assert inventory.groups["sku_cpu_1u"] == ["c01-cp-n01"]
    # The CPU-only control-plane node is in no GPU group.
    assert inventory.groups["gpu_nodes"] == gpu_nodes
    assert inventory.groups["gpu_l40s"] == gpu_nodes
    assert inventory.groups["sku_l40s_8"] == gpu_nodes
    assert inventory.groups["k8s_servers"] == ["c01-cp-n01"]
    assert inventory.groups["k8s_agents"] == gpu_nodes
    assert set(inventory.groups) | set(inventory.children) == {
        "all", "site_nd_williston", "container_c01", "container_c02", "rack_c01_cp", "rack_c01_r01",
        "rack_c01_r02", *(f"rack_c02_r0{r}" for r in range(1, 6)), "sku_cpu_1u", "sku_l40s_8", "gpu_l40s",
        "gpu_nodes", "k8s_servers", "k8s_agents",
    }


@pytest.mark.parametrize("site_file", EXAMPLE_SITES, ids=lambda p: p.parent.name)
def test_every_node_is_in_exactly_its_rack_sku_and_gpu_groups(site_file):
    site = load_site(site_file)
    inventory = load_inventory(site_file)
    membership: dict[str, set[str]] = {}
    for group, hosts in inventory.groups.items():
        assert len(hosts) == len(set(hosts)), group
        for host in hosts:
            membership.setdefault(host, set()).add(group)
    servers = set(site.kubernetes.servers)
    for node in site.nodes:
        expected = {f"rack_{node.container}_{node.rack}".replace("-", "_"),
                    f"sku_{node.sku_name}".replace("-", "_"),
                    "k8s_servers" if node.name in servers else "k8s_agents"}
        if node.gpu is not None:
            expected |= {f"gpu_{node.sku.gpu}".replace("-", "_"), "gpu_nodes"}
        assert membership[node.name] == expected, node.name


def test_a_site_without_kubernetes_has_no_k8s_groups(write_site):
    inventory = load_inventory(write_site(S([C([R(["n4", "cpu"])])], gpu_models=GPU, skus=SKUS).yaml()))
    assert set(inventory.groups) == {"rack_c1_r1", "sku_n4", "sku_cpu", "gpu_g500", "gpu_nodes"}
    assert inventory.groups["gpu_nodes"] == ["c1-r1-n1"]
    assert [inventory.host_vars(n)["ecohash_k8s_role"] for n in inventory.hosts] == [None, None]
    assert (inventory.all_vars["ecohash_k8s_distribution"], inventory.all_vars["ecohash_k8s_servers"]) == (None, [])


def test_k8s_servers_var_lists_each_server_with_its_address():
    inventory = load_inventory(REPO / "inventories" / "ga-dalton" / "site.yaml")
    assert inventory.all_vars["ecohash_k8s_distribution"] == "rke2"
    assert inventory.all_vars["ecohash_k8s_servers"] == [
        {"name": "c01-r01-n01", "address": "10.60.0.11"},
        {"name": "c02-r01-n01", "address": "10.60.1.11"},
        {"name": "c03-r01-n01", "address": "10.60.2.11"},
    ]


def test_site_vars_of_a_site_without_provisioning(write_site, state_dir):
    path = write_site()
    all_vars = load_inventory(path).all_vars
    assert all_vars == {
        "ecohash_site": "tx-odessa",
        "ecohash_secrets_dir": str(state_dir / "secrets" / "tx-odessa"),
        "ecohash_site_file": str(path),
        "ecohash_kubeconfig_file": str(state_dir / "secrets" / "tx-odessa" / "kubeconfig"),
        "ecohash_standard": load_standard().for_ansible(),
        "ecohash_apt_proxy": None,
        "ecohash_mirror_url": None,
        "ecohash_mirror_keyring_sha256": None,
        "ecohash_mirror_only": False,
        "ecohash_registry": None,
        "ecohash_executor_path": None,
        "ecohash_ntp_servers": [],
        "ecohash_rollout_serial": "10%",
        "ecohash_rollout_max_fail_percentage": 25,
        "ecohash_k8s_distribution": "k3s",
        "ecohash_k8s_label_prefix": "ecohash.io/",
        "ecohash_k8s_taint_keys": ["nvidia.com/gpu"],
        "ecohash_k8s_servers": [{"name": "c01-r01-n01", "address": "10.20.1.11"}],
    }


def test_fetched_kubeconfig_goes_to_the_secrets_directory_even_when_the_site_names_one(
        write_site, state_dir):
    # spec.kubernetes.kubeconfig is the user's, read by apply; credentials fetched from the
    # first server must never land there (it usually sits in the inventory repository).
    path = write_site(EXAMPLE_SITE, ("    servers: [c01-r01-n01]\n",
                                     "    servers: [c01-r01-n01]\n    kubeconfig: cluster.kubeconfig\n"))
    all_vars = load_inventory(path).all_vars
    assert all_vars["ecohash_kubeconfig_file"] == str(state_dir / "secrets" / "tx-odessa" / "kubeconfig")


def test_provisioning_vars(write_site):
    keyring = "ab" * 32
    all_vars = load_inventory(write_site(with_provisioning(f"""\
        apt_proxy: http://10.20.0.5:3142
        mirror: {{url: "http://mirror.odessa.example:8080/", keyring_sha256: {keyring}}}
        registry: registry.odessa.example:5000
        ntp_servers: [10.20.0.1, ntp.odessa.example]
        rollout: {{serial: [1, "5", 10%, 50%], max_fail_percentage: 0}}
    """))).all_vars
    assert all_vars["ecohash_apt_proxy"] == "http://10.20.0.5:3142"
    # The trailing '/' goes, so roles can append /apt and /files.
    assert all_vars["ecohash_mirror_url"] == "http://mirror.odessa.example:8080"
    assert all_vars["ecohash_mirror_keyring_sha256"] == keyring
    assert all_vars["ecohash_mirror_only"] is False
    assert all_vars["ecohash_registry"] == "registry.odessa.example:5000"
    assert all_vars["ecohash_ntp_servers"] == ["10.20.0.1", "ntp.odessa.example"]
    # Ansible's serial takes ints and "N%" strings; a quoted count becomes an int.
    assert all_vars["ecohash_rollout_serial"] == [1, 5, "10%", "50%"]
    assert all_vars["ecohash_rollout_max_fail_percentage"] == 0


def test_a_mirror_may_be_the_only_source(write_site):
    keyring = "cd" * 32
    all_vars = load_inventory(write_site(with_provisioning(
        f'mirror: {{url: "http://10.20.0.5:8080", keyring_sha256: {keyring}, only: true}}\n'))).all_vars
    assert all_vars["ecohash_mirror_only"] is True


def test_a_registry_may_say_it_speaks_http(write_site):
    # The roles read the scheme (containerd's hosts.toml); without one, https.
    all_vars = load_inventory(write_site(with_provisioning("registry: http://10.20.0.5:5000\n"))).all_vars
    assert all_vars["ecohash_registry"] == "http://10.20.0.5:5000"


def test_example_site_provisioning_reaches_ansible_as_written():
    site_file = REPO / "inventories" / "tx-odessa" / "site.yaml"
    written = yaml.safe_load(site_file.read_text())["spec"]["provisioning"]
    inventory = load_inventory(site_file)
    all_vars = inventory.all_vars
    assert all_vars["ecohash_apt_proxy"] == written["apt_proxy"]
    assert all_vars["ecohash_mirror_url"] == written["mirror"]["url"].rstrip("/")
    assert all_vars["ecohash_mirror_keyring_sha256"] == written["mirror"]["keyring_sha256"]
    assert all_vars["ecohash_registry"] == written["registry"]
    assert all_vars["ecohash_ntp_servers"] == written["ntp_servers"]
    assert all_vars["ecohash_rollout_serial"] == written["rollout"]["serial"]
    assert all_vars["ecohash_rollout_max_fail_percentage"] == written["rollout"]["max_fail_percentage"]
    assert written["ssh"]["user"] != "root"
    for name in inventory.hosts:
        host = inventory.host_vars(name)
        assert (host["ansible_user"], host["ansible_become"]) == (written["ssh"]["user"], True)


def test_connection_vars_for_root_need_no_become(write_site):
    host = load_inventory(write_site()).host_vars("c01-r01-n01")
    assert (host["ansible_user"], host["ansible_port"]) == ("root", 22)
    assert "ansible_become" not in host
    # Without a site ssh_config, ssh reads ~/.ssh/config and /etc/ssh/ssh_config: neither
    # may turn host key checking off either.
    assert host["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=yes"


def test_connection_vars_for_another_user_and_an_ssh_config(tmp_path, monkeypatch):
    sites = tmp_path / "inventories" / "tx-odessa"
    sites.mkdir(parents=True)
    (sites / "site.yaml").write_text(with_provisioning("""\
        ssh: {user: deploy, port: 2222, config_file: ../../ssh/odessa.conf}
    """))
    # Loaded through a relative path from elsewhere: -F still names the file beside the site.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    inventory = load_inventory(Path("..") / "inventories" / "tx-odessa" / "site.yaml")
    expected_config = (tmp_path / "ssh" / "odessa.conf").resolve()
    for name in inventory.hosts:
        host = inventory.host_vars(name)
        assert (host["ansible_user"], host["ansible_port"], host["ansible_become"]) == ("deploy", 2222, True)
        assert host["ansible_ssh_common_args"] == f"-F {expected_config} -o StrictHostKeyChecking=yes"


def test_ssh_config_path_with_a_space_survives_ansibles_split(tmp_path):
    site_dir = tmp_path / "my sites"
    site_dir.mkdir()
    (site_dir / "site.yaml").write_text(with_provisioning("ssh: {config_file: ssh_config}\n"))
    host = load_inventory(site_dir / "site.yaml").host_vars("c01-r01-n01")
    # Ansible's ssh connection plugin splits ssh_common_args with shlex.
    assert shlex.split(host["ansible_ssh_common_args"]) == [
        "-F", str((site_dir / "ssh_config").resolve()), "-o", "StrictHostKeyChecking=yes"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("StrictHostKeyChecking no", "StrictHostKeyChecking no turns host key checking off"),
        ("  stricthostkeychecking=accept-new", "StrictHostKeyChecking accept-new turns host key checking off"),
        ("StrictHostKeyChecking = off", "StrictHostKeyChecking off turns host key checking off"),
        ("UserKnownHostsFile /dev/null", "UserKnownHostsFile /dev/null leaves no host key to check against"),
        ('UserKnownHostsFile "none"', "UserKnownHostsFile none leaves no host key to check against"),
    ],
)
def test_an_ssh_config_that_turns_host_key_checking_off_is_refused_at_its_line(
    tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "site.yaml").write_text(with_provisioning("ssh: {config_file: ssh_config}\n"))
    config = tmp_path / "ssh_config"
    config.write_text(f"# the site's jump host\nHost c01-*\n    ProxyJump bastion\n{line}\n")

    with pytest.raises(InventoryError) as raised:
        load_inventory(tmp_path / "site.yaml")

    assert str(raised.value) == (
        f"{config}:4: {message}, and ecohash always checks host keys; "
        "list the nodes' keys in a known_hosts file the ssh_config names"
    )


def test_an_ssh_config_that_checks_host_keys_is_taken(tmp_path: Path) -> None:
    # The lab's ssh_config: a global known_hosts file of /dev/null trusts the site's file alone.
    (tmp_path / "site.yaml").write_text(with_provisioning("ssh: {config_file: ssh_config}\n"))
    (tmp_path / "ssh_config").write_text(
        "Host *\n    UserKnownHostsFile /site/known_hosts /dev/null\n    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
    )

    assert load_inventory(tmp_path / "site.yaml").host_vars("c01-r01-n01")["ansible_ssh_common_args"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh")
def test_ansible_s_ssh_checks_host_keys_whatever_an_ssh_config_says(tmp_path: Path) -> None:
    # The usual way to stop checking, in a file the site's ssh_config includes: ssh with
    # the connection's arguments still refuses a host whose key it does not know.
    (tmp_path / "lax.conf").write_text("StrictHostKeyChecking no\nUserKnownHostsFile /dev/null\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    Include {tmp_path / 'lax.conf'}\n    GlobalKnownHostsFile /dev/null\n"
                      "    BatchMode yes\n")
    (tmp_path / "site.yaml").write_text(with_provisioning("ssh: {config_file: ssh_config}\n"))
    common_args = load_inventory(tmp_path / "site.yaml").host_vars("c01-r01-n01")["ansible_ssh_common_args"]

    # The server takes no key of this controller's: getting as far as its refusal means
    # the host key was accepted.
    with SshServer([new_ed25519_key()], new_ed25519_key(), {}) as server:
        def ssh(*args: str) -> subprocess.CompletedProcess[str]:
            # As Ansible's ssh connection runs it, less the options that play no part here.
            return subprocess.run(["ssh", *args, "-o", "User=root", "-o", f"Port={server.port}", "127.0.0.1",
                                   "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=60, check=False)

        unchecked = ssh("-F", str(config))
        checked = ssh(*shlex.split(common_args))

    assert "Permission denied (publickey)" in unchecked.stderr  # the files alone let any host in
    assert checked.returncode == 255
    assert "Host key verification failed." in checked.stderr
    assert "Permission denied" not in checked.stderr


def test_site_names_its_own_standard(tmp_path, monkeypatch):
    site_dir = tmp_path / "site"
    (tmp_path / "standards").mkdir()
    site_dir.mkdir()
    text = LOCK_TEXT
    for key, value in (("name", "test-standard"), ("simulated", "true")):
        # metadata's keys are the lock file's only keys indented by two spaces
        text, replaced = re.subn(rf"^  {key}: .*$", f"  {key}: {value}", text, flags=re.MULTILINE)
        assert replaced == 1, f"test setup: no single metadata.{key} in the lock file"
    (tmp_path / "standards" / "test.lock.yml").write_text(text)
    (site_dir / "site.yaml").write_text(with_provisioning("standard: ../standards/test.lock.yml\n"))
    monkeypatch.chdir(tmp_path)  # from here the path would miss: it is relative to the site file
    standard = load_inventory(site_dir / "site.yaml").all_vars["ecohash_standard"]
    assert standard["metadata"] == {"name": "test-standard", "simulated": True}
    assert standard == {**load_standard().for_ansible(), "metadata": {"name": "test-standard", "simulated": True}}


def test_a_broken_standard_is_reported_in_its_own_file(tmp_path):
    standard_file = tmp_path / "node.lock.yml"
    standard_file.write_text(LOCK_TEXT.replace("kind: NodeStandard", "kind: NodeStandards"))
    line = LOCK_TEXT[: LOCK_TEXT.index("kind: NodeStandard")].count("\n") + 1
    (tmp_path / "site.yaml").write_text(with_provisioning("standard: node.lock.yml\n"))
    with pytest.raises(ProblemsError) as raised:
        load_inventory(tmp_path / "site.yaml")
    assert str(raised.value) == f"{standard_file.resolve()}:{line}: kind: must be 'NodeStandard' (got 'NodeStandards')"


def test_a_missing_standard_is_an_invalid_input_error(tmp_path):
    (tmp_path / "site.yaml").write_text(with_provisioning("standard: nope.lock.yml\n"))
    with pytest.raises(InvalidInputError) as raised:
        load_inventory(tmp_path / "site.yaml")
    assert str(raised.value) == f"{(tmp_path / 'nope.lock.yml').resolve()}: cannot read the node standard: No such file or directory"


def test_an_infeasible_site_raises_the_budget_error(write_site):
    # Two n4 nodes need 2000 + 8 x 100 = 2800 W at their lowest caps; the rack (line 18) has 2.5 kW.
    path = write_site(S([C([R(["n4", "n4"], "2.5")])], gpu_models=GPU, skus=SKUS).yaml())
    with pytest.raises(InfeasibleSiteError) as raised:
        load_inventory(path)
    assert str(raised.value) == (
        f"{path}:18: rack c1/r1 is infeasible: budget 2.500 kW, but its 2 nodes need 2.800 kW even at "
        "the lowest settable GPU caps (hosts alone 2.000 kW)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EXAMPLE_SITE.replace("pue: 1.25", "pue: 0.9"),
         "10: spec.power.pue: must be greater than or equal to 1 (got 0.9)"),
        (with_provisioning("rollout: {max_fail_percentage: 101}\n"),
         f"{PROVISIONING_LINE + 1}: spec.provisioning.rollout.max_fail_percentage: must be less than or equal to 100 (got 101)"),
        (with_provisioning("ssh: {port: 0}\n"),
         f"{PROVISIONING_LINE + 1}: spec.provisioning.ssh.port: must be greater than or equal to 1 (got 0)"),
        (with_provisioning("mirror: {url: http://mirror.example}\n"),
         f"{PROVISIONING_LINE + 1}: spec.provisioning.mirror: missing required key 'keyring_sha256'"),
        (with_provisioning("apt_proxy: ftp://proxy.example\n"),
         f"{PROVISIONING_LINE + 1}: spec.provisioning.apt_proxy: must be an http(s) URL such as "
         "http://mirror.site.example:8080 (got 'ftp://proxy.example')"),
        (with_provisioning("registry: ftp://10.20.0.5:5000\n"),
         f"{PROVISIONING_LINE + 1}: spec.provisioning.registry: must be a registry [http://|https://]host[:port][/path] "
         "such as registry.site.example:5000 (got 'ftp://10.20.0.5:5000')"),
        (with_provisioning("rollout: {batch: 1}\n"),
         f"{PROVISIONING_LINE + 1}: spec.provisioning.rollout: unknown key 'batch'; valid: serial, max_fail_percentage"),
    ],
)
def test_an_invalid_site_raises_the_inventory_error(write_site, text, expected):
    path = write_site(text)
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert str(raised.value) == f"{path}:{expected}"


def test_an_invalid_rollout_serial_is_refused_at_its_line(write_site):
    path = write_site(with_provisioning("rollout: {serial: [1, 0%]}\n"))
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert {p.line for p in raised.value.problems} == {PROVISIONING_LINE + 1}
    assert [p.message for p in raised.value.problems] == [
        "spec.provisioning.rollout.serial: each batch must be a number of hosts (>= 1) or a percentage "
        "such as 10%; '0%' is not"
    ]


def test_an_invalid_rollout_serial_has_one_plain_message(write_site):
    path = write_site(with_provisioning("rollout: {serial: 0}\n"))
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert str(raised.value) == (
        f"{path}:{PROVISIONING_LINE + 1}: spec.provisioning.rollout.serial: must be a number of hosts (>= 1) "
        "or a percentage such as 10%, or a list of them (got 0)"
    )


def test_two_racks_never_share_a_group(write_site):
    site = S([C([R(["n4"])]), C([R(["n4"])])], gpu_models=GPU, skus=SKUS).yaml()
    site = site.replace("- name: c1\n", "- name: a\n").replace("{name: r1, nodes: [\n            {name: c1-r1-n1",
                                                               "{name: b-c, nodes: [\n            {name: n1", 1)
    site = site.replace("- name: c2\n", "- name: a-b\n").replace("{name: r1, nodes: [\n            {name: c2-r1-n1",
                                                                 "{name: c, nodes: [\n            {name: n2", 1)
    path = write_site(site)
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    [problem] = raised.value.problems
    assert problem.message == "rack a-b/c and rack a/b-c both make the Ansible group rack_a_b_c; rename one"
    rack_lines = [number for number, line in enumerate(site.splitlines(), 1) if "{name: c, nodes" in line]
    assert [problem.line] == rack_lines


# --- where each value lives -----------------------------------------------------------------
# Ansible keeps a variable dictionary per host: a value every node of a group shares sits on
# that group once, and a host holds only what is its own.

HOST_OWN_VARS = {"ansible_host", "ecohash_gpu_cap_w", "ecohash_gpu_capped_by"}


def reference_host_vars(site: Site, plan: Plan) -> dict[str, dict[str, Any]]:
    """Each node's variables, `all`'s aside, as the inventory gave every host before commit 9b0644b
    moved shared values onto groups: worked out here from the site and its plan alone."""
    ssh = site.document.spec.provisioning.ssh
    config = site.ssh_config_file
    connection: dict[str, Any] = {
        "ansible_user": ssh.user, "ansible_port": ssh.port,
        **({"ansible_become": True} if ssh.user != "root" else {}),
        "ansible_ssh_common_args": shlex.join([*(["-F", str(config)] if config else []),
                                               "-o", "StrictHostKeyChecking=yes"]),
    }
    kubernetes = site.kubernetes
    containers = {container.name: container for container in site.containers}
    expected = {}
    for node_plan in plan.nodes:
        node = node_plan.node
        role = None if kubernetes is None else "server" if node.name in kubernetes.servers else "agent"
        expected[node.name] = {
            "ansible_host": str(node.mgmt_ip), **connection,
            "ecohash_container": node.container, "ecohash_rack": node.rack, "ecohash_sku": node.sku_name,
            "ecohash_gpu_model": node.sku.gpu, "ecohash_gpu_count": node.sku.gpus,
            "ecohash_gpu_nvidia_smi_name": node.gpu.nvidia_smi_name if node.gpu else None,
            "ecohash_gpu_cap_w": node_plan.gpu_cap_w, "ecohash_gpu_capped_by": node_plan.capped_by,
            "ecohash_k8s_role": role,
        }
        if kubernetes is not None:
            expected[node.name]["ecohash_k8s_labels"] = node_labels(site.name, containers[node.container], node)
            expected[node.name]["ecohash_k8s_taints"] = ["nvidia.com/gpu=present:PreferNoSchedule"] if node.gpus else []
    return expected


def generated_site(tmp_path: Path) -> Path:
    """bench/sites.py's 1,000-node site: five containers of five designs, eleven SKUs, capped racks."""
    path = tmp_path / "bench-1000" / "site.yaml"
    path.parent.mkdir()
    path.write_text(site_text(1_000))
    return path


def sites_to_compare(tmp_path: Path) -> list[Path]:
    no_kubernetes = tmp_path / "no-k8s" / "site.yaml"
    no_kubernetes.parent.mkdir()
    no_kubernetes.write_text(S([C([R(["n4", "cpu"])]), C([R(["n4"], "5")])], gpu_models=GPU, skus=SKUS).yaml())
    other_user = tmp_path / "deploy" / "site.yaml"
    other_user.parent.mkdir()
    other_user.write_text(with_provisioning("ssh: {user: deploy, port: 2222, config_file: ssh_config}\n"))
    (other_user.parent / "ssh_config").write_text("Host *\n    StrictHostKeyChecking yes\n")
    return [*EXAMPLE_SITES, generated_site(tmp_path), no_kubernetes, other_user]


def test_every_host_resolves_every_variable_as_before(tmp_path):
    # What the roles, playbooks and CLI read does not change, wherever it is kept.
    for site_file in sites_to_compare(tmp_path):
        site = load_site(site_file)
        inventory = load_inventory(site_file)
        expected = reference_host_vars(site, compile_budget(site))
        assert list(inventory.hosts) == list(expected), site_file
        for name, variables in expected.items():
            assert as_before(inventory.host_vars(name)) == variables, (site_file, name)


def as_before(host_vars: dict[str, Any]) -> dict[str, Any]:
    """A host's variables with its labels' parts combined into the one dictionary it once held
    (as the k8s_node role combines them): a site without Kubernetes has neither."""
    if not any(part in host_vars for part in K8S_LABEL_PARTS):
        return host_vars
    own = {key: value for key, value in host_vars.items() if key not in K8S_LABEL_PARTS}
    return {**own, "ecohash_k8s_labels": k8s_labels(host_vars)}


def test_a_host_holds_only_its_own_variables(tmp_path):
    site_file = generated_site(tmp_path)
    inventory = load_inventory(site_file)
    assert {name for host in inventory.hosts.values() for name in host} == HOST_OWN_VARS
    # Not even its Kubernetes labels: each part is its site's, container's, rack's or SKU's.
    assert not [(host, key) for host, variables in inventory.hosts.items()
                for key, value in variables.items() if isinstance(value, dict | list)]
    for name, group in (("c001-r01-n01", "sku_hgx_h100_8"), ("c003-r01-n02", "sku_l40s_4")):
        assert inventory.group_vars[group]["ecohash_gpu_count"] == inventory.host_vars(name)["ecohash_gpu_count"]
    assert inventory.group_vars["site_bench_1000"]["ansible_user"] == "ecohash"
    assert inventory.group_vars["container_c002"] == {
        "ecohash_container": "c002",
        "ecohash_k8s_container_labels": {"ecohash.io/container": "c002", "ecohash.io/cooling": "immersion"}}
    assert inventory.group_vars["rack_c002_r03"] == {"ecohash_rack": "r03",
                                                     "ecohash_k8s_rack_labels": {"ecohash.io/rack": "r03"}}
    assert inventory.group_vars["site_bench_1000"]["ecohash_k8s_site_labels"] == {"ecohash.io/site": "bench-1000"}
    assert inventory.group_vars["k8s_servers"] == {"ecohash_k8s_role": "server"}
    # The standard is on `all` once (its ~3 KB used to be copied into every host by --list).
    assert "ecohash_standard" in inventory.all_vars
    assert not any("ecohash_standard" in variables for variables in inventory.group_vars.values())


def ansible_depths(inventory: Inventory) -> dict[str, int]:
    """Each group's depth as Ansible counts it: `all` is 0, a group one below its deepest parent."""
    parents: dict[str, set[str]] = {}
    for parent, child_groups in inventory.children.items():
        for child in child_groups:
            parents.setdefault(child, set()).add(parent)
    groups = set(inventory.groups) | set(inventory.children) | set(parents)

    def depth(group: str) -> int:
        return 0 if group == "all" else 1 + max((depth(p) for p in parents.get(group, ())), default=0)

    return {group: depth(group) for group in groups}


@pytest.mark.parametrize("which", ["example", "generated"])
def test_no_two_groups_of_one_depth_set_a_variable_for_one_host(tmp_path, which):
    # Ansible merges group variables by depth, then by name within a depth: two sibling
    # groups (a sku_ and a k8s_ group, say) setting one key would decide by alphabet.
    site_file = REPO / "inventories" / "tx-odessa" / "site.yaml" if which == "example" else generated_site(tmp_path)
    inventory = load_inventory(site_file)
    depths = ansible_depths(inventory)
    groups_of: dict[str, set[str]] = {}
    for group, hosts in inventory.groups.items():
        for host in hosts:
            groups_of.setdefault(host, set()).add(group)
    parents = {child: parent for parent, kids in inventory.children.items() for child in kids if parent != "all"}
    for host, groups in groups_of.items():
        for group in list(groups):
            while group in parents:
                group = parents[group]
                groups.add(group)
        set_by: dict[tuple[int, str], str] = {}
        for group in groups:
            for key in inventory.group_vars.get(group, {}):
                assert key not in inventory.all_vars and key not in inventory.hosts[host], (host, group, key)
                other = set_by.setdefault((depths[group], key), group)
                assert other == group, f"{host}: {key} set by both {other} and {group}"
