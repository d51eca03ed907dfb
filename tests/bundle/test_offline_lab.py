"""`ecohash lab up --offline`: hosts with no route to Debian and no apt proxy provision
from the lab's signed bundle alone (packages with their dependencies, k3s, the image)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecohash.bundle.contents import role_packages
from ecohash.lab import lifecycle, mirror, state
from ecohash.lab.layout import BRIDGE_ADDRESS, PROXY_PORT, inventory_file
from ecohash.standard import image_reference, load_standard
from tests.labhosts import Lab

pytestmark = pytest.mark.lab

NODE = "c01-r01-n01"


def test_the_hosts_have_no_proxy_and_no_route_out(provisioned_lab: Lab) -> None:
    assert provisioned_lab.status().proxy == "none: the lab is offline"
    assert "apt_proxy" not in inventory_file().read_text()
    for name in provisioned_lab.host_names:
        assert provisioned_lab.ssh(name, "apt-config dump Acquire::http::Proxy").stdout.strip() == ""
        # Nothing answers where the proxy was, and Debian's mirror is out of reach.
        for host, port in ((str(BRIDGE_ADDRESS), PROXY_PORT), ("deb.debian.org", 80)):
            probe = provisioned_lab.ssh(
                name, f"python3 -c 'import socket; socket.create_connection((\"{host}\", {port}), 3)'",
                check=False)
            assert probe.returncode != 0, f"{name} reached {host}:{port}"


def test_apt_reads_the_mirror_alone(provisioned_lab: Lab) -> None:
    provisioned_lab.ssh(NODE, "apt-get update -q")
    uris = provisioned_lab.ssh(NODE, "apt-get indextargets --format '$(URI)'").stdout.split()
    assert uris and all(uri.startswith(f"{mirror.mirror_url()}/apt/") for uri in uris), uris
    # The host's own sources are still on disk, unread.
    assert "deb.debian.org" in provisioned_lab.ssh(NODE, "cat /etc/apt/sources.list").stdout


def test_every_package_the_roles_install_came_from_the_bundle(provisioned_lab: Lab) -> None:
    standard = load_standard(provisioned_lab.paths.standard_file)
    names = [package.split("=", 1)[0] for package in role_packages(standard, "debian12", gpus=True)]
    manifest = json.loads((provisioned_lab.paths.bundle / "manifest.json").read_text())
    carried = {entry["destination"].removeprefix("apt/").split("_", 1)[0]
               for entry in manifest["entries"] if entry["kind"] == "deb"}
    record = state.load(provisioned_lab.paths.state_file)
    assert record is not None
    in_base = installed_in(Path(record.base))
    # A package the base (a freshly installed node) lacks came in the bundle; so did what apt
    # pulled in for it (pciutils -> libpci3).
    assert {name for name in names if name not in in_base} <= carried
    assert {"chrony", "containerd", "nvidia-driver-sim", "libpci3"} <= carried
    installed = provisioned_lab.ssh(
        NODE, "dpkg-query --show --showformat='${Package} ${db:Status-Abbrev}\\n' " + " ".join(names)
    ).stdout.splitlines()
    # Status "ii", or "hi" for the packages the roles hold: installed either way.
    assert sorted(line.split()[0] for line in installed if line.split()[1][1:] == "i") == sorted(names)


def installed_in(root: Path) -> set[str]:
    """The packages dpkg lists as installed in a root file system."""
    installed = set()
    for stanza in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Status") == "install ok installed":
            installed.add(fields["Package"])
    return installed


def test_the_image_came_from_the_site_registry(provisioned_lab: Lab) -> None:
    reference = image_reference(load_standard(provisioned_lab.paths.standard_file), lifecycle.registry_url())
    for name in provisioned_lab.host_names:
        assert reference in provisioned_lab.ssh(name, "ctr --namespace k8s.io images list --quiet").stdout.split()
