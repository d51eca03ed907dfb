"""Generated docs are up to date with the model (run scripts/gen-docs to fix)."""

from ecohash.inventory.reference import render_into, schema_text
from tests.conftest import REPO


def test_inventory_reference_is_current():
    text = (REPO / "docs" / "inventory.md").read_text()
    assert render_into(text) == text, "docs/inventory.md is stale: run scripts/gen-docs"


def test_committed_schema_is_current():
    assert (REPO / "docs" / "site.schema.json").read_text() == schema_text(), \
        "docs/site.schema.json is stale: run scripts/gen-docs"


def test_reference_documents_every_key_of_the_issue_format():
    text = (REPO / "docs" / "inventory.md").read_text()
    for key in ("grid_mw", "reserve_pct", "pue", "mgmt_cidr", "gpu_models", "skus", "distribution",
                "servers", "cooling", "power_kw", "cooling_kw", "count", "start", "mgmt_ip", "tdp_w",
                "min_cap_w", "host_w"):
        assert f"| `{key}` |" in text, key
