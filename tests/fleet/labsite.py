"""What `ecohash lab up` leaves for the fleet to read, written by the lab's own code without a lab:
its SIMULATED node standard and its site file, in the state directory."""

from __future__ import annotations

from pathlib import Path

from ecohash.lab import inventory, labstandard
from ecohash.lab.layout import LabPaths, inventory_file
from ecohash.standard import load_standard

LAB_NODES = 4


def write_lab_site() -> Path:
    paths = LabPaths.current()
    labstandard.write(paths.standard_file, labstandard.simulated_standard(
        load_standard(), k3s_sha256="0" * 64, image_digest="sha256:" + "0" * 64))
    nodes = inventory.layout_nodes(LAB_NODES, 2, [f"10.213.0.{11 + i}" for i in range(LAB_NODES)])
    inventory.write(inventory_file(), nodes, "10.213.0.0/24", inventory.LabProvisioning(
        ssh_config=paths.ssh_config, apt_proxy=None, mirror_url="http://10.213.0.1:8080",
        mirror_keyring_sha256="ab" * 32, registry_url="http://10.213.0.1:5000",
        standard_file=paths.standard_file))
    return inventory_file()
