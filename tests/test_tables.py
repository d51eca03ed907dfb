"""Plans as text: identical racks are one line with a count, not a line each."""

from __future__ import annotations

from rich.console import Console

from ecohash.budget import compile_budget
from ecohash.inventory.loader import load_site
from ecohash.tables import print_plan
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
