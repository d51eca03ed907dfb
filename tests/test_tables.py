"""Plans as text: identical racks are one line with a count, not a line each."""

from __future__ import annotations

from rich.console import Console

from ecohash.budget import compile_budget
from ecohash.inventory.loader import load_site
from ecohash.tables import print_plan, print_status
from tests.conftest import REPO


def plan_text(site: str) -> str:
    console = Console(record=True, width=200, color_system=None)
    print_plan(compile_budget(load_site(REPO / "inventories" / site / "site.yaml")), console)
    return console.export_text()


def test_racks_capped_alike_are_one_line_with_their_names_as_a_range():
    text = plan_text("tx-odessa")
    assert "h100-sxm 612 W ×64 each (12 racks c01/r01..c01/r12)" in text
    assert "c01/r05" not in text
    assert "Caps set by: 36 racks c01/r01..c03/r12 at 612 W; container c04 at 664 W" in text


def test_a_cap_set_once_keeps_its_one_name():
    assert "l40s 337 W ×320 (container c02)" in plan_text("nd-williston")
    assert "l40s 350 W ×128 (TDP)" in plan_text("nd-williston")


def status_node(name: str, container: str, status: str = "passed", current: bool = True) -> dict:
    return {"name": name, "container": container, "status": status, "current": current, "changed": [],
            "gpu_cap_w": 612, "recorded_gpu_cap_w": 612, "recorded_fingerprint": "f" * 64, "recorded_at": None, "run": None,
            "reason": None}


def status_text(nodes: list[dict], show_all: bool = False) -> str:
    console = Console(record=True, width=200, color_system=None)
    print_status({"site": "tx-odessa", "counts": {"passed": len(nodes)}, "nodes": nodes}, console, show_all)
    return console.export_text()


def large_status() -> list[dict]:
    return ([status_node(f"c01-n{i:03d}", "c01") for i in range(60)]
            + [status_node(f"c02-n{i:03d}", "c02", "failed", current=False) for i in range(40)])


def test_status_of_many_nodes_is_a_row_per_container_with_counts_and_the_first_not_current():
    text = status_text(large_status())
    assert "c01-n000" not in text
    row = next(line for line in text.splitlines() if "│ c02" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "c02", "40", "40 failed", "40", "c02-n000, c02-n001, c02-n002, … 37 more"]
    assert "--all or --json lists every one" in text


def test_status_with_all_or_of_a_few_nodes_has_a_row_per_node():
    assert "c01-n059" in status_text(large_status(), show_all=True)
    assert "c01-n004" in status_text([status_node(f"c01-n{i:03d}", "c01") for i in range(5)])
