"""The lab: a whole site of real Debian hosts (systemd, sshd, apt) on one Linux machine.

Public API: `up(nodes, containers)`, `down()`, `status()` and `ssh_command(node, command)`.
Each function takes the lab's lock, so two `ecohash lab` commands never interleave.
"""

from __future__ import annotations

from ecohash.lab.lifecycle import (
    HostStatus,
    LabStatus,
    down,
    ssh_command,
    status,
    up,
)

__all__ = ["HostStatus", "LabStatus", "down", "ssh_command", "status", "up"]
