"""Where the lab keeps things, and the fixed names and addresses it uses on this machine.

Everything lives under ecohash's state directory: the cached base root filesystem and the
apt proxy's cache survive `lab down`; the run directory (hosts' writable layers, keys,
logs, state) belongs to one running lab and goes with it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ecohash.paths import state_dir

# The lab's subnet exists only on this machine: a bridge with no uplink and no NAT.
SUBNET = ipaddress.IPv4Network("10.213.0.0/24")
BRIDGE_ADDRESS = ipaddress.IPv4Address("10.213.0.1")
FIRST_HOST_ADDRESS = ipaddress.IPv4Address("10.213.0.11")
MAX_NODES = 200  # .11 to .210 stays clear of the bridge and the broadcast address
# `lab up --executor`: one more host, no node of the site, above every node's address.
EXECUTOR_NAME = "lab-executor"
EXECUTOR_ADDRESS = ipaddress.IPv4Address("10.213.0.250")

# Every kernel object the lab creates carries this prefix, so `down` can find leftovers
# of a lab whose state file was lost.
NAME_PREFIX = "ecolab"
BRIDGE_NAME = f"{NAME_PREFIX}0"

PROXY_PORT = 3142  # apt-cacher-ng's usual port
MIRROR_PORT = 8080
REGISTRY_PORT = 5000  # docker-registry's usual port


@dataclass(frozen=True)
class LabPaths:
    """The lab's directories and files under one state directory."""

    root: Path

    @classmethod
    def current(cls) -> LabPaths:
        return cls(root=state_dir() / "lab")

    @property
    def base_cache(self) -> Path:
        return self.root / "base"

    @property
    def apt_cache(self) -> Path:
        return self.root / "apt-cache"

    @property
    def deb_cache(self) -> Path:
        """Pinned .debs the mirror carries, downloaded once and kept like the base."""
        return self.root / "debs"

    @property
    def mirror_key(self) -> Path:
        """The GnuPG home holding the mirror's signing key, kept across labs."""
        return self.root / "mirror-key"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def hosts(self) -> Path:
        return self.run / "hosts"

    @property
    def ssh_dir(self) -> Path:
        return self.run / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def proxy_dir(self) -> Path:
        return self.run / "proxy"

    @property
    def mirror_dir(self) -> Path:
        return self.run / "mirror"

    @property
    def standard_file(self) -> Path:
        """The lab's SIMULATED node standard, written by `up`."""
        return self.run / "node-standard.lock.yml"

    @property
    def bundle(self) -> Path:
        """The bundle `up` builds from the lab's content, verifies and loads."""
        return self.run / "bundle"

    @property
    def simulated_debs(self) -> Path:
        """The SIMULATED driver and toolkit .debs at the lab standard's versions, written by `up`:
        what `ecohash bundle build lab --deb DIR` takes, as a site's build takes NVIDIA's."""
        return self.run / "simulated-debs"

    @property
    def bundle_public_key(self) -> Path:
        return self.run / "bundle-signing.pub"

    @property
    def registry_dir(self) -> Path:
        """The lab's site registry: docker-registry's config and storage."""
        return self.run / "registry"

    @property
    def logs(self) -> Path:
        return self.run / "logs"


def inventory_file() -> Path:
    """The lab's generated site inventory, found by `ecohash plan lab`."""
    return state_dir() / "inventories" / "lab" / "site.yaml"


def host_address(index: int) -> ipaddress.IPv4Address:
    return FIRST_HOST_ADDRESS + index


def netns_name(host: str) -> str:
    return f"{NAME_PREFIX}-{host}"


def veth_name(index: int) -> str:
    # Interface names are limited to 15 characters; the index keeps them short and unique.
    return f"{NAME_PREFIX}-h{index + 1:03d}"


EXECUTOR_VETH = f"{NAME_PREFIX}-exec"
