"""The lab's private network: one bridge with no uplink, one namespace and veth per host.

The bridge holds the lab's only address on this machine (the hosts' gateway to the proxy
and mirror). Hosts get no default route, this machine does not forward, and nothing is
NATed, so hosts can reach only each other and the bridge address.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from ecohash import process
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.lab import mounts
from ecohash.lab.layout import BRIDGE_ADDRESS, BRIDGE_NAME, NAME_PREFIX, SUBNET

NETNS_DIR = Path("/run/netns")


def check_subnet_unused() -> None:
    """Refuse to start if anything on this machine other than the lab uses the lab's subnet."""
    addresses = json.loads(process.run(["ip", "-j", "address", "show"]) or "[]")
    for link in addresses:
        if link.get("ifname") == BRIDGE_NAME:
            continue
        for info in link.get("addr_info", []):
            if info.get("family") != "inet":
                continue
            network = ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            if network.overlaps(SUBNET):
                raise InvalidInputError(
                    f"the lab's subnet {SUBNET} overlaps {network} on {link['ifname']}; "
                    "free it or stop whatever uses it before `ecohash lab up`"
                )
    routes = json.loads(process.run(["ip", "-j", "route", "show"]) or "[]")
    for route in routes:
        destination = route.get("dst", "")
        if destination in ("default", "") or route.get("dev") == BRIDGE_NAME:
            continue
        network = ipaddress.IPv4Network(destination if "/" in destination else f"{destination}/32")
        if network.overlaps(SUBNET):
            raise InvalidInputError(
                f"the lab's subnet {SUBNET} overlaps the route to {network} via {route.get('dev')}"
            )


def create_bridge() -> None:
    process.run(["ip", "link", "add", BRIDGE_NAME, "type", "bridge"])
    process.run(
        ["ip", "address", "add", f"{BRIDGE_ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE_NAME]
    )
    process.run(["ip", "link", "set", BRIDGE_NAME, "up"])


def run_netns_is_mounted() -> bool:
    """True when /run/netns is a mount point (iproute2 makes it one on first `netns add`)."""
    return mounts.is_mount_point(NETNS_DIR)


def add_host_network(netns: str, veth: str, address: str) -> None:
    """A namespace for one host, wired to the bridge; the host side is named `veth`."""
    process.run(["ip", "netns", "add", netns])
    process.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    process.run(["ip", "link", "set", veth, "master", BRIDGE_NAME, "up"])
    process.run(["ip", "-n", netns, "link", "set", "lo", "up"])
    process.run(
        ["ip", "-n", netns, "address", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0"]
    )
    process.run(["ip", "-n", netns, "link", "set", "eth0", "up"])


def netns_path(netns: str) -> Path:
    return NETNS_DIR / netns


def lab_namespaces() -> list[str]:
    """Network namespaces named like the lab's, whoever recorded them."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{NAME_PREFIX}-"))


def lab_links() -> list[str]:
    """Links named like the lab's bridge and veths."""
    links = json.loads(process.run(["ip", "-j", "link", "show"]) or "[]")
    return sorted(
        link["ifname"] for link in links if link.get("ifname", "").startswith(NAME_PREFIX)
    )


def delete_namespace(netns: str) -> None:
    """Delete a host's namespace; its end of the veth pair, and so the pair, goes with it."""
    if netns_path(netns).exists():
        process.run(["ip", "netns", "delete", netns])


def delete_link(name: str) -> None:
    link = Path(f"/sys/class/net/{name}")
    if not link.exists():
        return
    try:
        process.run(["ip", "link", "delete", name])
    except EcohashError:
        # A veth goes with its pair when the host's namespace is deleted, and the kernel
        # finishes that after `ip netns delete` returns: gone by now is what was wanted.
        if link.exists():
            raise


def release_run_netns_mount() -> None:
    """Drop the /run/netns mount iproute2 made for the lab once no namespace is left in it.

    Mount propagation can stack several mounts there (one per peer group the bind mount
    reached), so unmount until none is left.
    """
    for _attempt in range(10):
        if not run_netns_is_mounted() or any(NETNS_DIR.iterdir()):
            break
        try:
            process.run(["umount", NETNS_DIR])
        except EcohashError:
            # Busy means someone else now has namespaces there: theirs to keep.
            return
    if NETNS_DIR.is_dir() and not run_netns_is_mounted() and not any(NETNS_DIR.iterdir()):
        NETNS_DIR.rmdir()
