"""Where ecohash finds its Ansible content and site inventories, and keeps its own state."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ecohash.errors import ContentNotFoundError, SiteNotFoundError

if TYPE_CHECKING:
    from ecohash.inventory.site import Site

SITE_FILE_NAME = "site.yaml"
# What ecohash reads from its Ansible content at run time (project_root). A wheel ships
# exactly these, copied by setup.py, so this list is the one to change when a command
# comes to read another file of the repository.
CONTENT = ("ansible.cfg", "galaxy.yml", "meta", "node-standard.lock.yml", "playbooks", "plugins",
           "requirements.lock", "roles", "stacks", "templates")
# Where a wheel keeps the content inside the package: where Ansible looks for the
# collection ecohash.site under a collections path, as the checkout's collections/ has it.
PACKAGED_COLLECTIONS = "collections"
COLLECTION_PATH = ("ansible_collections", "ecohash", "site")


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
    """Turn a SITE argument (a site name, a site file, or a directory holding one) into a path.

    Refused in the words that fit what was given: a path that is missing or a directory
    without a site file says so; a name found under no inventory root gets the closest
    known site name, since a typo is the likely cause.
    """
    given = Path(argument)
    if given.is_file():
        return given
    if given.is_dir() and (given / SITE_FILE_NAME).is_file():
        return given / SITE_FILE_NAME
    is_name = "/" not in argument and not argument.endswith((".yaml", ".yml"))
    if is_name:
        for root in inventory_roots():
            candidate = root / argument / SITE_FILE_NAME
            if candidate.is_file():
                return candidate
    if given.is_dir():
        raise SiteNotFoundError(f"{argument}: is a directory with no {SITE_FILE_NAME} in it")
    if not is_name:
        raise SiteNotFoundError(f"{argument}: no such file")
    raise SiteNotFoundError(
        f"no site {argument!r}: no <inventory>/{argument}/{SITE_FILE_NAME} under "
        f"{', '.join(str(r) for r in inventory_roots())}{_closest_site(argument)}"
    )


def _closest_site(name: str) -> str:
    known = sorted(known_sites())
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; known sites: {', '.join(known)}" if known else ""


def known_sites() -> set[str]:
    """Names of the sites found under the inventory roots."""
    names: set[str] = set()
    for root in inventory_roots():
        if root.is_dir():
            names.update(p.parent.name for p in root.glob(f"*/{SITE_FILE_NAME}"))
    return names


def project_root() -> Path:
    """Where ecohash's Ansible content is: ansible.cfg, roles/, playbooks/, templates/, the node standard.

    The one rule for both layouts: a wheel carries the content inside the package (setup.py
    copies it there), else this is a checkout and the content is the repository root. A
    content root that lacks part of it is refused here, naming what is missing, rather
    than failing later on the first file some command happens to read.
    """
    return content_root(Path(__file__).resolve().parent)


def collections_dir() -> Path:
    """The only directory Ansible searches for collections: ecohash.site is in it, the content itself.

    In a checkout that is collections/ (its ecohash/site a symlink to the root, ansible.cfg's
    collections_path); in a wheel, the package directory that holds the copied collection.
    """
    root = project_root()
    checkout = root / "collections"
    return checkout if checkout.is_dir() else root.parents[len(COLLECTION_PATH) - 1]


def content_root(package: Path) -> Path:
    """The content root of the ecohash package in `package` (see project_root)."""
    packaged = _packaged_collection(package / PACKAGED_COLLECTIONS)
    if packaged.is_dir():
        root, layout = packaged, "the installed package's copy"
    else:
        root, layout = package.parents[1], f"a checkout's root; no wheel's copy at {packaged}"
    missing = [name for name in CONTENT if not (root / name).exists()]
    if missing:
        raise ContentNotFoundError(
            f"ecohash's Ansible content is incomplete: no {', '.join(missing)} in {root} ({layout});"
            " reinstall ecohash from a wheel built from its repository, or run it from a checkout"
        )
    return root


def _packaged_collection(collections: Path) -> Path:
    return collections.joinpath(*COLLECTION_PATH)


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
