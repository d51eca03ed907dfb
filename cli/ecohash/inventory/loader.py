"""Loading a site file: parse, validate every rule, report every problem at once, expand.

Validation runs in two passes. The models check structure, types and ranges; then
cross-checks that need the whole site (references, duplicates after expansion, IPs
inside the management network) run over every node entry that is itself valid, so a
typo in one container does not hide a duplicate IP in another.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ecohash.errors import InventoryError, Problem, SiteNotFoundError
from ecohash.inventory import messages
from ecohash.inventory.catalog import builtin_catalog
from ecohash.inventory.expand import TemplateError, expand
from ecohash.inventory.model import (
    _DNS_LABEL,
    _LABEL_VALUE,
    API_VERSION,
    DNS_LABEL_RULE,
    KIND,
    MAX_SITE_NODES,
    GpuModel,
    GpuModelFields,
    NodeEntry,
    SiteFile,
    Sku,
    SkuFields,
)
from ecohash.inventory.services import check_services
from ecohash.inventory.site import Container, Node, Rack, Site, YamlPath
from ecohash.inventory.yaml_source import Parsed, YamlSyntaxError, decode, parse


def load_site(path: str | Path) -> Site:
    """Load and validate a site file; raise InventoryError listing every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SiteNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SiteNotFoundError(f"{path}: is a directory, not a site file") from None
    except OSError as error:
        raise SiteNotFoundError(f"{path}: {error.strerror}") from None
    try:
        text = decode(data)
    except YamlSyntaxError as error:
        raise InventoryError([_syntax_problem(path, error)]) from None
    return load_site_text(text, path)


def load_site_text(text: str, file: str | Path) -> Site:
    """Validate site YAML given as text; `file` is only used in messages."""
    with collector_paused():
        site = _Validation(Path(file)).run(text)
        if len(text) >= _FREEZE_FROM_CHARS:
            # The collector's next collections would walk the new site once in each
            # generation (2 s at 50,000 nodes); frozen, it is left out of them, as
            # long-lived as it is: a command holds it until it exits. Freezing also keeps
            # for good whatever cyclic garbage the process holds now, which a small site
            # is not worth (a test run loads hundreds).
            gc.freeze()
    return site


# About 1,200 nodes; a 10,000-node site file is 790 KB.
_FREEZE_FROM_CHARS = 100_000


@contextmanager
def collector_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector off while a site is built.

    A site is a great many small objects (YAML nodes, dicts, pydantic models: millions at
    50,000 nodes) and none of them is garbage, yet the collector, started by allocation
    counts, walks them again and again as the heap grows. That was half of `plan --json`
    after start-up on a 10,000-node site (0.64 s of 1.40 s) and more at 50,000 (3.1 of 5.4 s).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Entry:
    """A node entry that passed its own checks, with where it sits in the site."""

    container: str
    rack: str
    entry: NodeEntry
    path: YamlPath


class _Validation:
    def __init__(self, file: Path):
        self.file = file
        self.problems: list[Problem] = []
        self.parsed: Parsed | None = None
        # Names of every node that could be expanded, and whether that is all of them:
        # an unknown kubernetes server can only be told apart from an unreadable entry then.
        self.node_names: set[str] = set()
        self.all_entries_read = True

    def problem(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        line = self.parsed.line_of(path, key=key) if self.parsed else 1
        self.problems.append(Problem(str(self.file), line, message))

    def run(self, text: str) -> Site:
        try:
            self.parsed = parse(text)
        except YamlSyntaxError as error:
            raise InventoryError([_syntax_problem(self.file, error)]) from None
        for line, duplicate in self.parsed.duplicate_keys:
            self.problems.append(
                Problem(str(self.file), line, f"duplicate key {duplicate!r}: a key may appear once")
            )
        data = self.parsed.data
        if not isinstance(data, dict):
            what = "empty" if data is None else f"a {_yaml_type(data)}"
            raise InventoryError([Problem(
                str(self.file), 1,
                f"file is {what}: a site file is a mapping with apiVersion, kind, metadata and spec",
            )])
        if not self._is_site_document(data):
            raise InventoryError(self.problems)
        oversized = _past_node_bound(_mapping(data, "spec"))
        if oversized is not None:
            path, total = oversized
            # Named by its path too: an entry repeated by an alias is written at its anchor.
            self.problem(path, f"{messages.dotted(path)}: the site has {total} nodes up to this "
                               f"entry, more than the {MAX_SITE_NODES} a site may have")
            raise InventoryError(self.problems)

        document: SiteFile | None = None
        try:
            document = SiteFile.model_validate(data)
        except ValidationError as error:
            for detail in error.errors():
                path, key, message = messages.describe(dict(detail), SiteFile)
                self.problem(path, message, key=key)

        spec = _mapping(data, "spec")
        gpu_models = self._merge_catalog(spec, "gpu_models", GpuModelFields, GpuModel)
        skus = self._merge_catalog(spec, "skus", SkuFields, Sku)
        self._check_catalog(gpu_models, skus, spec)
        cidr = document.spec.network.mgmt_cidr if document else _valid_cidr(spec)
        entries = list(_entries_of(document) if document else self._entries_of_raw(spec))
        self._check_names(spec)
        self._check_openadr_levels(spec)
        nodes = self._expand_and_check(entries, cidr, skus, gpu_models, spec)
        self._check_servers(spec)
        self._check_executor(document, cidr)
        # Placement is judged on the whole site: with unreadable node entries it would mislead.
        if spec.get("services") and self.all_entries_read:
            self._check_services(spec, nodes, gpu_models, skus)

        if self.problems or document is None or cidr is None:
            raise InventoryError(self.problems)
        return _build_site(document, self.file, self.parsed, gpu_models, skus, nodes)

    def _is_site_document(self, data: dict[str, Any]) -> bool:
        # A file of another kind would otherwise drown in 'unknown key' messages.
        ok = True
        for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
            if key not in data:
                self.problem((), f"missing required key {key!r} (expected {expected!r})")
                ok = False
            elif data[key] != expected:
                self.problem((key,), f"{key} must be {expected!r} (got {data[key]!r})")
                ok = False
        return ok

    def _merge_catalog(self, spec: dict[str, Any], section: str,
                       fields_model: type[BaseModel], complete_model: type[BaseModel]
                       ) -> dict[str, Any]:
        """Built-in entries with the site's fields merged over them, field by field."""
        merged = {key: complete_model.model_validate(value)
                  for key, value in builtin_catalog()[section].items()}
        for key, fields in _mapping(spec, section).items():
            if not isinstance(key, str) or not _LABEL_VALUE.fullmatch(key):
                continue  # already reported by the full validation
            try:
                given = fields_model.model_validate(fields)
            except ValidationError:
                continue  # already reported by the full validation
            base = merged[key].model_dump(exclude_unset=True) if key in merged else {}
            try:
                merged[key] = complete_model.model_validate(
                    {**base, **given.model_dump(exclude_unset=True)}
                )
            except ValidationError as error:
                missing = [str(e["loc"][-1]) for e in error.errors() if e["type"] == "missing"]
                self.problem(
                    ("spec", section, key),
                    f"spec.{section}.{key}: not in the built-in catalog, so it needs "
                    + ", ".join(missing),
                    key=True,
                )
        return merged

    def _check_catalog(self, gpu_models: dict[str, GpuModel], skus: dict[str, Sku],
                       spec: dict[str, Any]) -> None:
        for key, model in gpu_models.items():
            ceiling = model.max_cap_w or model.tdp_w
            if not model.min_cap_w <= model.tdp_w <= ceiling:
                self.problem(
                    ("spec", "gpu_models", key),
                    f"spec.gpu_models.{key}: needs min_cap_w <= tdp_w <= max_cap_w "
                    f"(got {model.min_cap_w} <= {model.tdp_w} <= {ceiling})",
                    key=True,
                )
        site_skus, site_models = _mapping(spec, "skus"), _mapping(spec, "gpu_models")
        for key, sku in skus.items():
            where: YamlPath = ("spec", "skus", key)
            if sku.gpus > 0 and sku.gpu is None:
                self.problem(where, f"spec.skus.{key}: has {sku.gpus} GPUs but no gpu model",
                             key=True)
            elif sku.gpus == 0 and sku.gpu is not None:
                self.problem(where, f"spec.skus.{key}: names gpu {sku.gpu!r} but has gpus: 0",
                             key=True)
            elif sku.gpu is not None and sku.gpu not in gpu_models and sku.gpu not in site_models:
                if key in site_skus:
                    where = (*where, "gpu")
                self.problem(where, f"spec.skus.{key}.gpu: unknown gpu model {sku.gpu!r}"
                             + messages.suggest(sku.gpu, sorted(gpu_models)))

    def _check_names(self, spec: dict[str, Any]) -> None:
        """Container and program names unique in the site, rack names unique in their container."""
        power = _mapping(spec, "power")
        self._report_duplicates([(p.get("name"), ("spec", "power", "curtailment", "programs", i))
                                 for i, p in _items(_mapping(power, "curtailment").get("programs"))],
                                "curtailment program")
        containers = spec.get("containers")
        if not isinstance(containers, list):
            return
        self._report_duplicates([(c.get("name"), ("spec", "containers", i))
                                  for i, c in enumerate(containers) if isinstance(c, dict)],
                           "container")
        for i, container in enumerate(containers):
            racks = container.get("racks") if isinstance(container, dict) else None
            if isinstance(racks, list):
                self._report_duplicates([(r.get("name"), ("spec", "containers", i, "racks", j))
                                          for j, r in enumerate(racks) if isinstance(r, dict)],
                                   "rack")

    def _check_openadr_levels(self, spec: dict[str, Any]) -> None:
        """Every SIMPLE level the OpenADR section maps names a program of the site."""
        curtailment = _mapping(_mapping(spec, "power"), "curtailment")
        programs = [p.get("name") for _, p in _items(curtailment.get("programs"))]
        for level, name in _mapping(_mapping(curtailment, "openadr"), "levels").items():
            if isinstance(name, str) and name not in programs:
                self.problem(("spec", "power", "curtailment", "openadr", "levels", level),
                             f"OpenADR level {level} maps to {name!r}, which is not a curtailment "
                             "program of this site" + messages.suggest(name, [p for p in programs
                                                                              if isinstance(p, str)]))

    def _report_duplicates(self, named: list[tuple[Any, YamlPath]], what: str) -> None:
        first: dict[str, YamlPath] = {}
        for name, path in named:
            if not isinstance(name, str):
                continue
            if name in first:
                line = self.parsed.line_of(first[name]) if self.parsed else 1
                self.problem((*path, "name"), f"duplicate {what} name {name!r} (also at line {line})")
            else:
                first[name] = path

    def _entries_of_raw(self, spec: dict[str, Any]) -> Iterator[_Entry]:
        """The valid node entries of a site whose full validation failed."""
        for ci, container in _items(spec.get("containers")):
            for ri, rack in _items(container.get("racks")):
                for ni, raw in _items(rack.get("nodes"), self):
                    try:
                        entry = NodeEntry.model_validate(raw)
                    except ValidationError:
                        self.all_entries_read = False
                        continue
                    path = ("spec", "containers", ci, "racks", ri, "nodes", ni)
                    yield _Entry(str(container.get("name")), str(rack.get("name")), entry, path)

    def _expand_and_check(self, entries: list[_Entry], cidr: IPv4Network | None,
                          skus: dict[str, Sku], gpu_models: dict[str, GpuModel],
                          spec: dict[str, Any]) -> list[Node]:
        nodes: list[Node] = []
        name_seen: dict[str, YamlPath] = {}
        # Keyed by the address as an int: an IPv4Address hashes through hex() in Python.
        ip_seen: dict[int, YamlPath] = {}
        raw_skus = _mapping(spec, "skus")
        for placed in entries:
            entry, path = placed.entry, placed.path
            sku = skus.get(entry.sku)
            if sku is None and entry.sku not in raw_skus:  # a broken site sku is reported there
                self.problem((*path, "sku"), f"unknown sku {entry.sku!r}"
                             + messages.suggest(entry.sku, sorted(skus)))
            if cidr is not None and not self._check_ip_range(cidr, entry, path):
                self.all_entries_read = False
                continue
            try:
                expanded = self._expand(entry, path, name_seen, ip_seen)
            except TemplateError as error:
                self.problem((*path, "name"), str(error))
                expanded = None
            except OverflowError:
                self.problem((*path, "count"), f"count {entry.count} runs past 255.255.255.255")
                expanded = None
            if expanded is None:
                self.all_entries_read = False
                continue
            if sku is None:
                continue
            gpu = gpu_models.get(sku.gpu) if sku.gpu else None
            nodes.extend(
                Node(name, placed.container, placed.rack, entry.sku, sku, gpu, ip, path)
                for name, ip in expanded
            )
        return nodes

    def _expand(self, entry: NodeEntry, path: YamlPath, name_seen: dict[str, YamlPath],
                ip_seen: dict[int, YamlPath]) -> list[tuple[str, IPv4Address]] | None:
        """The entry's (name, mgmt_ip) pairs, each recorded as seen; None once one is wrong.

        Expansion stops at the entry's first wrong node (one line per entry is all that is
        reported), so an entry of 100,000 nodes that collides at its first builds no other.
        """
        expanded = []
        for name, ip in _expansion(entry):
            address = int(ip)
            if not _DNS_LABEL.fullmatch(name):
                self.problem((*path, "name"),
                             f"node name {name!r} is not a DNS label ({DNS_LABEL_RULE})")
                return None
            if name in name_seen:
                self._duplicate(path, f"node name {name}", name_seen[name])
                return None
            if address in ip_seen:
                self._duplicate(path, f"mgmt_ip {ip}", ip_seen[address])
                return None
            name_seen[name] = ip_seen[address] = path
            self.node_names.add(name)
            expanded.append((name, ip))
        return expanded

    def _duplicate(self, path: YamlPath, what: str, earlier: YamlPath) -> None:
        line = self.parsed.line_of(earlier) if self.parsed else 1
        self.problem(path, f"duplicate {what} (also at line {line})")

    def _check_ip_range(self, cidr: IPv4Network, entry: NodeEntry, path: YamlPath) -> bool:
        """Whether the entry's IPs lie in the management network; checked before expanding."""
        # On ints: this runs for every entry, and IPv4Address compares and hashes in Python.
        first = entry.mgmt_ip
        first_int = int(first)
        last_int = first_int + (entry.count or 1) - 1
        network_int, broadcast_int = int(cidr.network_address), int(cidr.broadcast_address)
        if not network_int <= first_int <= broadcast_int:
            self.problem((*path, "mgmt_ip"), f"mgmt_ip {first} is outside mgmt_cidr {cidr}")
            return False
        if last_int > broadcast_int:
            last = IPv4Address(last_int) if last_int <= 0xFFFFFFFF else "beyond 255.255.255.255"
            self.problem(
                (*path, "count"),
                f"count {entry.count} runs past mgmt_cidr {cidr}: the last node would get "
                f"{last}, the network ends at {cidr.broadcast_address}",
            )
            return False
        if cidr.prefixlen < 31:
            reserved = {network_int: "network", broadcast_int: "broadcast"}
            for ip in sorted({first_int, last_int}):
                if ip in reserved:
                    self.problem((*path, "mgmt_ip"),
                                 f"{IPv4Address(ip)} is the {reserved[ip]} address of {cidr}")
        return True

    def _check_servers(self, spec: dict[str, Any]) -> None:
        kubernetes = spec.get("kubernetes")
        servers = kubernetes.get("servers") if isinstance(kubernetes, dict) else None
        if not isinstance(servers, list):
            return
        known = self.node_names
        seen: set[str] = set()
        for i, server in enumerate(servers):
            path: YamlPath = ("spec", "kubernetes", "servers", i)
            if not isinstance(server, str):
                continue
            if server in seen:
                self.problem(path, f"kubernetes server {server!r} is listed twice")
            elif server not in known and self.all_entries_read:
                self.problem(path, f"kubernetes server {server!r} is not a node of this site"
                             + messages.suggest(server, sorted(known)[:5000]))
            seen.add(server)

    def _check_executor(self, document: SiteFile | None, cidr: IPv4Network | None) -> None:
        """The executor is a node, an address on the site's network, or a qualified host name:
        a bare name that is no node is a misspelt node far more often than a machine."""
        executor = document.spec.provisioning.executor if document else None
        host = executor.host if executor else None
        if host is None or not self.all_entries_read or host in self.node_names:
            return
        path: YamlPath = ("spec", "provisioning", "executor", "host")
        try:
            address = IPv4Address(host)
        except ValueError:
            if "." not in host:
                self.problem(path, f"executor {host!r} is not a node of this site nor a qualified "
                             "host name or IPv4 address"
                             + messages.suggest(host, sorted(self.node_names)[:5000]))
            return
        if cidr is not None and address not in cidr:
            self.problem(path, f"executor {host} is not on the site's network {cidr} "
                         "(network.mgmt_cidr)")

    def _check_services(self, spec: dict[str, Any], nodes: list[Node],
                        gpu_models: dict[str, GpuModel], skus: dict[str, Sku]) -> None:
        if not isinstance(spec.get("kubernetes"), dict):
            self.problem(("spec", "services"), "services need a spec.kubernetes cluster to run in",
                         key=True)
            return
        names = [name for _, c in _items(spec.get("containers")) if isinstance(name := c.get("name"), str)]
        check_services(spec["services"], nodes, gpu_models, skus, names, self.problem)


def _syntax_problem(file: Path, error: YamlSyntaxError) -> Problem:
    p = error.problem
    return Problem(str(file), p.line, p.message, p.column)


def _expansion(entry: NodeEntry) -> Iterable[tuple[str, IPv4Address]]:
    """(name, mgmt_ip) of each node the entry stands for, made one at a time."""
    if entry.count is None:  # most entries: skip the generator, nothing to expand
        return ((entry.name, entry.mgmt_ip),)
    return expand(entry.name, entry.mgmt_ip, entry.count, entry.start)


def _entries_of(document: SiteFile) -> Iterator[_Entry]:
    for ci, container in enumerate(document.spec.containers):
        for ri, rack in enumerate(container.racks):
            for ni, entry in enumerate(rack.nodes):
                path = ("spec", "containers", ci, "racks", ri, "nodes", ni)
                yield _Entry(container.name, rack.name, entry, path)


def _past_node_bound(spec: dict[str, Any]) -> tuple[YamlPath, int] | None:
    """The node entry at which the site passes MAX_SITE_NODES nodes, with its total there.

    Counted on the file as loaded, before anything is validated or expanded: each entry's
    `count` as written (one the model refuses counts as one node), and every use of a YAML
    alias. A list of racks or of nodes is summed once however often aliases repeat it, so
    the count costs what the file's text does.
    """
    sums: dict[int, int] = {}  # id() of a list of racks or of node entries -> its nodes

    def entry_nodes(entry: dict[str, Any]) -> int:
        count = entry.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_SITE_NODES:
            return count
        return 1

    def nodes_in(items: Any, of_item: Callable[[dict[str, Any]], int]) -> int:
        if id(items) not in sums:
            sums[id(items)] = sum(of_item(item) for _, item in _items(items))
        return sums[id(items)]

    def rack_nodes(rack: dict[str, Any]) -> int:
        return nodes_in(rack.get("nodes"), entry_nodes)

    def container_nodes(container: dict[str, Any]) -> int:
        return nodes_in(container.get("racks"), rack_nodes)

    total = 0
    for ci, container in _items(spec.get("containers")):
        if total + container_nodes(container) <= MAX_SITE_NODES:
            total += container_nodes(container)
            continue
        for ri, rack in _items(container.get("racks")):
            if total + rack_nodes(rack) <= MAX_SITE_NODES:
                total += rack_nodes(rack)
                continue
            for ni, entry in _items(rack.get("nodes")):
                total += entry_nodes(entry)
                if total > MAX_SITE_NODES:
                    return ("spec", "containers", ci, "racks", ri, "nodes", ni), total
    return None


def _mapping(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key] when it is a mapping, else an empty one: raw data may be any shape."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _items(value: Any, validation: _Validation | None = None
           ) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item
            elif validation is not None:
                validation.all_entries_read = False


def _valid_cidr(spec: dict[str, Any]) -> IPv4Network | None:
    network = spec.get("network")
    text = network.get("mgmt_cidr") if isinstance(network, dict) else None
    try:
        return IPv4Network(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _yaml_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", bool: "boolean"}.get(type(value), "scalar")


def _build_site(document: SiteFile, file: Path, parsed: Parsed, gpu_models: dict[str, GpuModel],
                skus: dict[str, Sku], nodes: list[Node]) -> Site:
    by_rack: dict[tuple[str, str], list[Node]] = {}
    for node in nodes:
        by_rack.setdefault((node.container, node.rack), []).append(node)
    containers = tuple(
        Container(
            name=c.name, cooling=c.cooling, power_kw=c.power_kw, cooling_kw=c.cooling_kw, flex=c.flex,
            path=("spec", "containers", ci),
            racks=tuple(
                Rack(name=r.name, container=c.name, power_kw=r.power_kw,
                     nodes=tuple(by_rack.get((c.name, r.name), ())),
                     path=("spec", "containers", ci, "racks", ri))
                for ri, r in enumerate(c.racks)
            ),
        )
        for ci, c in enumerate(document.spec.containers)
    )
    return Site(
        name=document.metadata.name, region=document.metadata.region, file=file,
        power=document.spec.power, mgmt_cidr=document.spec.network.mgmt_cidr,
        kubernetes=document.spec.kubernetes, gpu_models=gpu_models, skus=skus,
        containers=containers, document=document, parsed=parsed,
    )
