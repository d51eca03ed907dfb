import gc
import tracemalloc
from decimal import Decimal
from ipaddress import IPv4Address

import pytest

from ecohash.errors import InventoryError, SiteNotFoundError
from ecohash.inventory import load_site
from ecohash.inventory.model import MAX_SITE_NODES
from tests.conftest import EXAMPLE_SITE

NODE_LINE = 29  # the single node entry
COUNT_LINE = 30  # the entry with count: 3


def problems(path):
    with pytest.raises(InventoryError) as raised:
        load_site(path)
    return [f"{p.line}: {p.message}" for p in raised.value.problems]


def test_example_site_expands_counts_with_consecutive_ips(write_site):
    site = load_site(write_site())
    assert [(n.name, n.mgmt_ip) for n in site.nodes] == [
        ("c01-r01-n01", IPv4Address("10.20.1.11")),
        ("c01-r01-n02", IPv4Address("10.20.1.12")),
        ("c01-r01-n03", IPv4Address("10.20.1.13")),
        ("c01-r01-n04", IPv4Address("10.20.1.14")),
    ]
    assert site.power.grid_mw == Decimal("12.5")
    assert {n.rack for n in site.nodes} == {"r01"}
    assert site.nodes[0].gpu.tdp_w == 700 and site.nodes[0].host_w == 2600


def test_site_skus_merge_field_by_field_over_the_catalog(write_site):
    path = write_site(EXAMPLE_SITE, ("hgx-h100-8: {gpu: h100-sxm, gpus: 8, host_w: 2600}",
                                     "hgx-h100-8: {host_w: 1234}"))
    sku = load_site(path).skus["hgx-h100-8"]
    assert (sku.gpu, sku.gpus, sku.host_w) == ("h100-sxm", 8, 1234)


@pytest.mark.parametrize(
    ("replacements", "expected"),
    [
        ([("pue: 1.25", "pue: 0.9")], ["10: spec.power.pue: must be greater than or equal to 1 (got 0.9)"]),
        ([("grid_mw: 12.5", "grid_mwx: 12.5")], [
            "8: spec.power: missing required key 'grid_mw'",
            "8: spec.power: unknown key 'grid_mwx' (did you mean 'grid_mw'?)",
        ]),
        ([("count: 3,", "count: -3,")],
         [f"{COUNT_LINE}: spec.containers[0].racks[0].nodes[1].count: must be greater than or equal to 1 (got -3)"]),
        ([("mgmt_cidr: 10.20.0.0/20", "mgmt_cidr: 10.20.0.0/40")],
         ["12: spec.network.mgmt_cidr: must be an IPv4 CIDR such as 10.20.0.0/20 (got '10.20.0.0/40')"]),
        ([("cooling: hydro", "cooling: water")],
         ["22: spec.containers[0].cooling: must be 'air', 'hydro' or 'immersion' (got 'water')"]),
        ([("apiVersion: ecohash.io/v1", "apiVersion: ecohash.io/v2")],
         ["1: apiVersion must be 'ecohash.io/v1' (got 'ecohash.io/v2')"]),
        ([("kind: Site", "kind: Deployment")], ["2: kind must be 'Site' (got 'Deployment')"]),
        ([("sku: hgx-h100-8, mgmt_ip: 10.20.1.11", "sku: hgx-h100-9, mgmt_ip: 10.20.1.11")],
         [f"{NODE_LINE}: unknown sku 'hgx-h100-9' (did you mean 'hgx-h100-8'?)"]),
        ([("gpu: h100-sxm,", "gpu: h100-sxn,")],
         ["16: spec.skus.hgx-h100-8.gpu: unknown gpu model 'h100-sxn' (did you mean 'h100-sxm'?)"]),
        ([("mgmt_ip: 10.20.1.12", "mgmt_ip: 10.20.1.11")],
         [f"{COUNT_LINE}: duplicate mgmt_ip 10.20.1.11 (also at line {NODE_LINE})"]),
        ([("name: c01-r01-n01, sku", "name: c01-r01-n03, sku"), ("servers: [c01-r01-n01]", "servers: [c01-r01-n02]")],
         [f"{COUNT_LINE}: duplicate node name c01-r01-n03 (also at line {NODE_LINE})"]),
        ([("mgmt_ip: 10.20.1.11", "mgmt_ip: 10.30.1.11")],
         [f"{NODE_LINE}: mgmt_ip 10.30.1.11 is outside mgmt_cidr 10.20.0.0/20"]),
        ([("mgmt_ip: 10.20.1.12", "mgmt_ip: 10.20.15.254")],
         [f"{COUNT_LINE}: count 3 runs past mgmt_cidr 10.20.0.0/20: the last node would get "
          "10.20.16.0, the network ends at 10.20.15.255"]),
        ([("name: \"c01-r01-n{i:02d}\"", "name: \"c01-r01-nx\"")],
         [f"{COUNT_LINE}: name 'c01-r01-nx' has count but no {{i}} placeholder (for example 'n{{i:02d}}')"]),
        ([("name: \"c01-r01-n{i:02d}\"", "name: \"c01-r01-n{i.__class__}\"")],
         [f"{COUNT_LINE}: name 'c01-r01-n{{i.__class__}}': the only placeholders allowed are {{i}} and {{i:02d}}-style"]),
        ([("servers: [c01-r01-n01]", "servers: [c01-r01-n1]")],
         ["19: kubernetes server 'c01-r01-n1' is not a node of this site (did you mean 'c01-r01-n01'?)"]),
        ([("servers: [c01-r01-n01]", "servers: [c01-r01-n01, c01-r01-n01]")],
         ["19: kubernetes server 'c01-r01-n01' is listed twice"]),
        ([("name: c01\n", "name: C01\n")], [
            "21: spec.containers[0].name: must be a DNS label (lowercase letters, digits and '-', "
            "at most 63, starting and ending alphanumeric) (got 'C01')",
        ]),
        ([("region: us-south", "region: us-south\n  region: eu")],
         ["6: duplicate key 'region': a key may appear once"]),
        ([("h100-sxm: {tdp_w: 700, min_cap_w: 200}", "h100-sxm: {tdp_w: 700, min_cap_w: 800}")],
         ["14: spec.gpu_models.h100-sxm: needs min_cap_w <= tdp_w <= max_cap_w (got 800 <= 700 <= 700)"]),
        ([("h100-sxm: {tdp_w: 700, min_cap_w: 200}", "x100: {tdp_w: 700}"),
          ("gpu: h100-sxm,", "gpu: x100,")],
         ["14: spec.gpu_models.x100: not in the built-in catalog, so it needs min_cap_w"]),
        ([("grid_mw: 12.5", "grid_mw: yes")], ["8: spec.power.grid_mw: must be a number (got True)"]),
        ([("power_kw: 45", "power_kw: .inf")],
         ["27: spec.containers[0].racks[0].power_kw: must be a finite number (got Infinity)"]),
    ],
)
def test_each_problem_is_reported_at_its_line(write_site, replacements, expected):
    assert problems(write_site(EXAMPLE_SITE, *replacements)) == expected


def test_every_problem_is_reported_at_once(write_site):
    path = write_site(
        EXAMPLE_SITE,
        ("pue: 1.25", "pue: 0.5"),
        ("cooling: hydro", "cooling: water"),
        ("mgmt_ip: 10.20.1.12", "mgmt_ip: 10.20.1.11"),
        ("sku: hgx-h100-8, mgmt_ip: 10.20.1.11", "sku: nope, mgmt_ip: 10.20.1.11"),
    )
    found = problems(path)
    assert len(found) == 4, found
    assert [p.split(":")[0] for p in found] == ["10", "22", str(NODE_LINE), str(COUNT_LINE)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1: file is empty: a site file is a mapping with apiVersion, kind, metadata and spec"),
        ("- a\n- b\n", "1: file is a list: a site file is a mapping with apiVersion, kind, metadata and spec"),
        ("just text\n", "1: file is a string: a site file is a mapping with apiVersion, kind, metadata and spec"),
    ],
)
def test_files_that_are_not_mappings(write_site, text, expected):
    assert problems(write_site(text)) == [expected]


def test_yaml_syntax_error_has_line_and_column(write_site):
    with pytest.raises(InventoryError) as raised:
        load_site(write_site(EXAMPLE_SITE, ("pue: 1.25", "pue: [1.25")))
    (problem,) = raised.value.problems
    assert (problem.line, problem.column) is not None
    assert str(problem).startswith(f"{problem.file}:{problem.line}:{problem.column}: YAML syntax error")
    assert problem.line == 11


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SiteNotFoundError, match="no such file"):
        load_site(tmp_path / "nope.yaml")


def test_non_utf8_file_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_site(path)


def test_a_byte_that_is_not_utf8_is_reported_at_its_line_and_column(tmp_path):
    # A Latin-1 "ã" after a UTF-8 "é" on line 5: the column counts characters, not bytes.
    head, tail = EXAMPLE_SITE.encode().split(b"us-south")
    path = tmp_path / "site.yaml"
    path.write_bytes(head + "café ".encode() + b"S\xe3o Paulo" + tail)
    with pytest.raises(InventoryError) as raised:
        load_site(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:5:17: not UTF-8 text (invalid continuation byte)"
    ]


def test_huge_count_is_refused_before_expanding(write_site):
    path = write_site(EXAMPLE_SITE, ("count: 3,", "count: 2000000000,"))
    assert problems(path) == [
        f"{COUNT_LINE}: spec.containers[0].racks[0].nodes[1].count: must be less than or equal to 100000 (got 2000000000)"
    ]
    path = write_site(EXAMPLE_SITE, ("count: 3,", "count: 99999,"))
    assert problems(path) == [
        f"{COUNT_LINE}: count 99999 runs past mgmt_cidr 10.20.0.0/20: the last node would get "
        "10.21.135.170, the network ends at 10.20.15.255"
    ]


def test_network_and_broadcast_addresses_are_refused(write_site):
    path = write_site(EXAMPLE_SITE, ("mgmt_ip: 10.20.1.11", "mgmt_ip: 10.20.0.0"))
    assert problems(path) == [f"{NODE_LINE}: 10.20.0.0 is the network address of 10.20.0.0/20"]


def test_a_count_that_ends_on_the_broadcast_address_is_refused(write_site):
    # 10.20.15.253 + 3 nodes: .253, .254 and .255, the broadcast address of the /20.
    path = write_site(EXAMPLE_SITE, ("mgmt_ip: 10.20.1.12", "mgmt_ip: 10.20.15.253"))
    assert problems(path) == [f"{COUNT_LINE}: 10.20.15.255 is the broadcast address of 10.20.0.0/20"]


def test_loading_leaves_the_garbage_collector_as_it_found_it(write_site):
    # The loader pauses it while it builds a site (see collector_paused).
    assert gc.isenabled()
    load_site(write_site())
    assert gc.isenabled()
    problems(write_site(EXAMPLE_SITE, ("pue: 1.25", "pue: 0.5")))
    assert gc.isenabled()
    gc.disable()
    try:
        load_site(write_site())
        assert not gc.isenabled()
    finally:
        gc.enable()


def _site_of_entries(entries: list[str], cidr: str = "10.0.0.0/8") -> str:
    """The example site with these node entries (flow mappings) in its one rack."""
    head = EXAMPLE_SITE.split("            - {name: c01-r01-n01")[0]
    return head.replace("10.20.0.0/20", cidr) + "".join(f"            - {e}\n" for e in entries)


def _peak_bytes(load) -> int:
    tracemalloc.start()
    try:
        load()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_site_of_many_large_counts_is_refused_before_anything_is_expanded(write_site):
    # 30 entries of 100,000 nodes in a /8: 3 KB of YAML for 3,000,000 nodes.
    entries = [f'{{name: "c01-e{e:02d}-n{{i}}", count: 100000, sku: hgx-h100-8, mgmt_ip: 10.{e * 2}.0.1}}'
               for e in range(30)]
    path = write_site(_site_of_entries(entries))
    load_site(write_site(name="warm.yaml"))  # catalog and validators built outside the measure
    found: list[str] = []
    peak = _peak_bytes(lambda: found.extend(problems(path)))
    assert found == [f"{NODE_LINE + 1}: spec.containers[0].racks[0].nodes[1]: the site has 200000 "
                     f"nodes up to this entry, more than the {MAX_SITE_NODES} a site may have"]
    assert peak < 50_000_000


def test_nodes_repeated_by_yaml_aliases_count_each_time(write_site):
    # One rack of 2,000 nodes used 10 times in each of 6 containers (a YAML alias each
    # time): 120,000 nodes from a few lines.
    rack = "{name: r01, nodes: [{name: 'n{i}', count: 2000, sku: hgx-h100-8, mgmt_ip: 10.20.1.11}]}"
    text = EXAMPLE_SITE.split("  containers:\n")[0] + (
        "  containers:\n"
        f"    - &c {{name: c01, cooling: air, power_kw: 1, cooling_kw: 1, racks: [&r {rack}"
        + ", *r" * 9 + "]}\n"
        + "    - *c\n" * 5
    )
    path = write_site(text)
    peak = _peak_bytes(lambda: problems(path))
    assert problems(path) == [
        "21: spec.containers[5].racks[0].nodes[0]: the site has 102000 nodes up to this entry, "
        f"more than the {MAX_SITE_NODES} a site may have"
    ]
    assert peak < 50_000_000


@pytest.mark.slow
def test_the_largest_site_allowed_still_loads(write_site):
    entries = [f'{{name: "e{e}-n{{i}}", count: 25000, sku: cpu-1u, mgmt_ip: 10.{e}.0.1}}'
               for e in range(4)]
    site = load_site(write_site(_site_of_entries(entries), ("servers: [c01-r01-n01]", "servers: [e0-n1]")))
    assert len(site.nodes) == MAX_SITE_NODES


def test_an_entry_stops_expanding_at_its_first_collision(write_site):
    # The second entry's first address is the first entry's: one line, and none of its
    # other 99,998 nodes is made.
    path = write_site(_site_of_entries([
        "{name: c01-r01-n01, sku: hgx-h100-8, mgmt_ip: 10.20.1.11}",
        '{name: "big-{i}", count: 99999, sku: hgx-h100-8, mgmt_ip: 10.20.1.11}',
    ]))
    load_site(write_site(name="warm.yaml"))
    found: list[str] = []
    peak = _peak_bytes(lambda: found.extend(problems(path)))
    assert found == [f"{NODE_LINE + 1}: duplicate mgmt_ip 10.20.1.11 (also at line {NODE_LINE})"]
    assert peak < 5_000_000
