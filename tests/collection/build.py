"""The ecohash.site collection as Galaxy and AWX get it: built from this checkout, installed alone.

Shared by the collection tests and the role tests (tests/roles/bootstraps.py), which run the
installed copy's bootstrap playbook on the lab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
TARBALL_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"


def build_collection(output: Path) -> Path:
    """`ansible-galaxy collection build` of the repository root; the tarball's path."""
    subprocess.run([BIN / "ansible-galaxy", "collection", "build", "--output-path", output, REPO],
                   check=True, capture_output=True, text=True, env=installed_environment(None))
    return output / TARBALL_NAME


def install_collection(tarball: Path, collections: Path) -> Path:
    """Install TARBALL into an empty collections path; the installed collection's directory."""
    subprocess.run([BIN / "ansible-galaxy", "collection", "install", tarball, "-p", collections],
                   check=True, capture_output=True, text=True, env=installed_environment(collections))
    return collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]


def installed_environment(collections: Path | None) -> dict[str, str]:
    """Ansible as a user of the installed collection has it: none of the checkout's ansible.cfg
    (run outside the checkout too), and COLLECTIONS as the only collections path."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    environment["PATH"] = os.pathsep.join([str(BIN), environment.get("PATH", "")])
    if collections is not None:
        environment["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
        # Not even a copy found on sys.path (ansible_collections in site-packages) may stand in.
        environment["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
    return environment
