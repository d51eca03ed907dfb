"""A site's inventory kept between Ansible runs, so that a run whose inputs are unchanged
skips loading, validating and planning the site.

Every `ansible-playbook` and `ansible-inventory` run of a site starts by reading it
through the inventory plugin; at 10,000 nodes importing the site's models and building
the inventory is a third of the plugin's time (docs/benchmarks.md, inventory cost). A
cached inventory is used only when everything it was built from is unchanged:

- the site file's bytes and its resolved path (the inventory names the file);
- every other file the inventory was built from (the node standard, the site's
  ssh_config), by content, read again on every use;
- ecohash itself: its version and the size and modification time of each of its files,
  so that a changed mapping in a checkout is never served from an old cache;
- the state directory, which the inventory's secrets and kubeconfig paths are under.

The cache is only ever a copy: a file that is not this user's, that others may write,
that is not valid JSON of the expected shape, or that names other inputs is ignored and
rebuilt. A site that fails to load is never cached; it fails every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ecohash
from ecohash.ansible.inventory_data import Inventory
from ecohash.atomic import write_atomic
from ecohash.paths import state_dir
from ecohash.untrusted_files import open_regular

# Bumped whenever what a cache file holds changes shape.
FORMAT = 1
_PACKAGE_DIR = Path(ecohash.__file__).parent


def inventory_cache_dir() -> Path:
    """Where cached inventories are kept: one file per site path, 0600 in a 0700 directory."""
    return state_dir() / "cache" / "inventory"


def cached_inventory(site_file: str | Path) -> Inventory:
    """The site's inventory: from the cache when every input is unchanged, else built and cached."""
    site_path = Path(site_file).resolve()
    site_bytes = _read(site_path)
    key = _key(site_path, site_bytes) if site_bytes is not None else None
    cache_file = inventory_cache_dir() / f"{hashlib.sha256(str(site_path).encode()).hexdigest()}.json"
    if key is not None:
        inventory = _load(cache_file, key)
        if inventory is not None:
            return inventory
    inventory, inputs = _build(site_file)
    if key is not None:
        _store(cache_file, key, inputs, inventory)
    return inventory


def _build(site_file: str | Path) -> tuple[Inventory, dict[str, str | None]]:
    """The inventory, and the digest of every other file it was read from, taken before it was read."""
    # Imported here, not above: a cache hit must not pay for importing the site's models
    # and the budget compiler (0.3 s), which is what this module exists to save.
    from ecohash.ansible.inventory import inventory_for
    from ecohash.inventory.loader import load_site
    from ecohash.standard import standard_file_of

    site = load_site(site_file)
    # Hashed before inventory_for reads them: a file changed in between leaves a digest
    # that no longer matches, so the next run rebuilds rather than serving a stale copy.
    others = [standard_file_of(site), *([site.ssh_config_file] if site.ssh_config_file else [])]
    inputs = {str(path): _digest(_read(path)) for path in others}
    return inventory_for(site), inputs


def _key(site_path: Path, site_bytes: bytes) -> str:
    text = json.dumps([FORMAT, ecohash.__version__, _code_fingerprint(), str(site_path),
                       str(state_dir()), hashlib.sha256(site_bytes).hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()


def _code_fingerprint() -> str:
    """ecohash's own files by name, size and modification time (a few ms for the package)."""
    entries = []
    for directory, subdirectories, files in os.walk(_PACKAGE_DIR):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(files):
            status = os.stat(os.path.join(directory, name))
            entries.append(f"{os.path.join(directory, name)} {status.st_size} {status.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _load(cache_file: Path, key: str) -> Inventory | None:
    """The cached inventory, or None when there is none or it cannot be trusted to match."""
    try:
        with open_regular(cache_file) as file:
            status = os.fstat(file.fileno())
            if status.st_uid != os.geteuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None  # someone else could have written it
            entry = json.loads(file.read())
    except (OSError, ValueError):
        return None
    try:
        if entry["format"] != FORMAT or entry["key"] != key:
            return None
        inputs = entry["inputs"]
        if not isinstance(inputs, dict) or any(
                _digest(_read(Path(path))) != digest for path, digest in inputs.items()):
            return None
        return _inventory_of(entry["inventory"])
    except (KeyError, TypeError, ValueError):
        return None


def _inventory_of(data: Any) -> Inventory:
    """An Inventory from its cached form; ValueError when any part has the wrong shape."""
    hosts, groups, children = data["hosts"], data["groups"], data["children"]
    group_vars, all_vars = data["group_vars"], data["all_vars"]
    if not (_mapping_of(hosts, dict) and _mapping_of(group_vars, dict) and isinstance(all_vars, dict)
            and _mapping_of(groups, list) and _mapping_of(children, list)
            and _all_strings(name for names in (*groups.values(), *children.values()) for name in names)):
        raise ValueError("not a cached inventory")
    return Inventory(hosts=hosts, groups=defaultdict(list, groups), children=defaultdict(list, children),
                     group_vars=group_vars, all_vars=all_vars)


def _mapping_of(value: Any, kind: type) -> bool:
    return isinstance(value, dict) and all(isinstance(item, kind) for item in value.values())


def _all_strings(values: Iterable[Any]) -> bool:
    return all(isinstance(value, str) for value in values)


def _store(cache_file: Path, key: str, inputs: dict[str, str | None], inventory: Inventory) -> None:
    entry = {"format": FORMAT, "key": key, "inputs": inputs, "inventory": {
        "hosts": inventory.hosts, "groups": inventory.groups, "children": inventory.children,
        "group_vars": inventory.group_vars, "all_vars": inventory.all_vars}}
    try:
        cache_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(cache_file, json.dumps(entry, separators=(",", ":")), mode=0o600)
    except OSError:
        pass  # a cache that cannot be written costs the next run time, never this one its inventory
