"""Where ecohash finds site inventories and keeps its own state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ecohash.errors import SiteNotFoundError

if TYPE_CHECKING:
    from ecohash.inventory.site import Site

SITE_FILE_NAME = "site.yaml"


def state_dir() -> Path:
    """The directory for ecohash's state: $ECOHASH_STATE_DIR, else a per-user default.

    Root gets /var/lib/ecohash, where the lab's base image and rollout state belong on
    a shared machine; anyone else gets $XDG_STATE_HOME/ecohash.
    """
    configured = os.environ.get("ECOHASH_STATE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/ecohash")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "ecohash"


def secrets_dir(site_name: str) -> Path:
    """Where the controller keeps a site's secrets (join token, kubeconfig, passphrase), 0700."""
    return state_dir() / "secrets" / site_name


def facts_dir(site_name: str) -> Path:
    """Ansible's fact cache for one site: node names repeat across sites, so never shared."""
    return state_dir() / "facts" / site_name


def fetched_kubeconfig_file(site_name: str) -> Path:
    """Where bootstrap keeps the cluster-admin kubeconfig it fetches from the first server.

    Always the secrets directory: spec.kubernetes.kubeconfig usually sits in the inventory
    repository, and credentials must never be written there.
    """
    return secrets_dir(site_name) / "kubeconfig"


def kubeconfig_file(site: Site) -> Path:
    """The kubeconfig the site stack reads: spec.kubernetes.kubeconfig (the user's, only
    ever read), else the one bootstrap fetched."""
    named = site.kubernetes.kubeconfig if site.kubernetes else None
    if named:
        return site.path_from_file(named)
    return fetched_kubeconfig_file(site.name)


def runs_dir(site_name: str) -> Path:
    """Where a site's Ansible runs keep their directories (provision waves, drift checks)."""
    return state_dir() / "runs" / site_name


def inventory_roots() -> list[Path]:
    """Directories searched, in order, for `<name>/site.yaml` when a site is named.

    $ECOHASH_INVENTORIES (a path list) comes first, then ./inventories, then the state
    directory's inventories/, where generated sites such as the lab's are written.
    """
    roots = [Path(p) for p in os.environ.get("ECOHASH_INVENTORIES", "").split(os.pathsep) if p]
    roots.append(Path("inventories"))
    roots.append(state_dir() / "inventories")
    return roots


def resolve_site(argument: str) -> Path:
    """Turn a SITE argument (a site name, a site file, or a directory holding one) into a path."""
    given = Path(argument)
    if given.is_file():
        return given
    if given.is_dir() and (given / SITE_FILE_NAME).is_file():
        return given / SITE_FILE_NAME
    if "/" not in argument and not argument.endswith((".yaml", ".yml")):
        for root in inventory_roots():
            candidate = root / argument / SITE_FILE_NAME
            if candidate.is_file():
                return candidate
    known = sorted(known_sites())
    hint = f"; known sites: {', '.join(known)}" if known else ""
    raise SiteNotFoundError(
        f"no site {argument!r}: not a site file, and no <inventory>/{argument}/{SITE_FILE_NAME}"
        f" under {', '.join(str(r) for r in inventory_roots())}{hint}"
    )


def known_sites() -> set[str]:
    """Names of the sites found under the inventory roots."""
    names: set[str] = set()
    for root in inventory_roots():
        if root.is_dir():
            names.update(p.parent.name for p in root.glob(f"*/{SITE_FILE_NAME}"))
    return names


def project_root() -> Path:
    """The checkout ecohash runs from: ansible.cfg, roles/, playbooks/ and the node standard.

    ecohash is installed from its repository (editable), and the Ansible content is part
    of the product, so it is found next to the package rather than copied into it.
    """
    return Path(__file__).resolve().parents[2]


def source_path(path: Path) -> str:
    """A file as outputs name it: relative to its git repository's root when it is in one.

    So `plan --json` and reports read the same whatever the working directory or the
    checkout's location (inventories/tx-odessa/site.yaml), and a PR bot's diff is quiet.
    """
    resolved = path.resolve()
    for parent in resolved.parents:
        if (parent / ".git").exists():
            return resolved.relative_to(parent).as_posix()
    return str(path)
