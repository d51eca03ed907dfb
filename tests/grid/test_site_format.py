"""The site format's curtailment keys: flex on containers, spec.power.curtailment.programs."""

import json
from decimal import Decimal

import pytest

from ecohash.errors import InventoryError
from ecohash.inventory import load_site, load_site_text
from ecohash.inventory.reference import schema_text
from tests.conftest import EXAMPLE_SITE, REPO

PROGRAMS = "    pue: 1.25\n    curtailment:\n      programs:\n"


def with_programs(*lines: str) -> str:
    return EXAMPLE_SITE.replace("    pue: 1.25\n", PROGRAMS + "".join(f"        - {line}\n" for line in lines))


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load_site_text(text, "t.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_flex_defaults_to_1_and_takes_0_to_3():
    assert load_site_text(EXAMPLE_SITE, "t.yaml").containers[0].flex == 1
    for flex in (0, 3):
        text = EXAMPLE_SITE.replace("      cooling_kw: 950\n", f"      cooling_kw: 950\n      flex: {flex}\n")
        assert load_site_text(text, "t.yaml").containers[0].flex == flex


@pytest.mark.parametrize(("value", "message"), [
    ("4", "spec.containers[0].flex: must be less than or equal to 3 (got 4)"),
    ("-1", "spec.containers[0].flex: must be greater than or equal to 0 (got -1)"),
    ("1.5", "spec.containers[0].flex: must be a whole number (got 1.5)"),
    ("yes", "spec.containers[0].flex: must be a whole number (got True)"),
])
def test_flex_out_of_range_is_named_at_its_line(value, message):
    text = EXAMPLE_SITE.replace("      cooling_kw: 950\n", f"      cooling_kw: 950\n      flex: {value}\n")
    assert problems(text) == [f"t.yaml:25: {message}"]


def test_programs_load_with_exact_figures():
    site = load_site_text(with_programs("{name: ers-10, to_mw: 9.5, max_hours: 8}",
                                        "{name: 4cp, by_pct: 25, max_hours: 3, restore_minutes: 15}",
                                        "{name: dr, by_mw: 0.25}"), "t.yaml")
    ers, cp, dr = site.curtailment_programs
    assert (ers.name, ers.to_mw, ers.max_hours, ers.by_pct) == ("ers-10", Decimal("9.5"), 8, None)
    assert (cp.by_pct, cp.restore_minutes) == (25, 15)
    assert dr.by_mw == Decimal("0.25") and dr.max_hours is None
    assert load_site_text(EXAMPLE_SITE, "t.yaml").curtailment_programs == []


def test_a_program_needs_exactly_one_target():
    assert problems(with_programs("{name: a, to_mw: 9, by_pct: 20}", "{name: b, max_hours: 2}")) == [
        "t.yaml:13: spec.power.curtailment.programs[0]: needs exactly one of to_mw, by_mw or by_pct "
        "(got to_mw, by_pct)",
        "t.yaml:14: spec.power.curtailment.programs[1]: needs exactly one of to_mw, by_mw or by_pct "
        "(got none)",
    ]


@pytest.mark.parametrize(("program", "message"), [
    ("{name: a, by_pct: 100}", "programs[0].by_pct: must be less than 100 (got 100)"),
    ("{name: a, to_mw: 0}", "programs[0].to_mw: must be greater than 0 (got 0)"),
    ("{name: a, by_mw: 1, max_hours: 0}", "programs[0].max_hours: must be greater than 0 (got 0)"),
    ("{name: a, by_mw: 1, restore_minutes: -1}",
     "programs[0].restore_minutes: must be greater than or equal to 0 (got -1)"),
    ("{name: A_1, by_mw: 1}", "programs[0].name: must be a DNS label"),
    ("{name: a, by_mw: 1, ramp: 3}", "programs[0]: unknown key 'ramp'"),
])
def test_program_values_are_checked_at_their_line(program, message):
    found = problems(with_programs(program))
    assert len(found) == 1 and found[0].startswith(f"t.yaml:13: spec.power.curtailment.{message}"), found


def test_program_names_are_unique():
    assert problems(with_programs("{name: ers, to_mw: 9}", "{name: ers, by_pct: 20}")) == [
        "t.yaml:14: duplicate curtailment program name 'ers' (also at line 13)",
    ]


def test_schema_has_the_keys_and_bounds_of_optional_numbers():
    schema = json.loads(schema_text())
    program = schema["$defs"]["CurtailmentProgram"]
    assert program["oneOf"] == [{"required": ["to_mw"]}, {"required": ["by_mw"]}, {"required": ["by_pct"]}]
    assert program["properties"]["by_pct"]["anyOf"][0] == {
        "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100}
    # An optional number's bounds are JSON Schema keywords (pydantic's "gt" is not one).
    assert schema["$defs"]["Rack"]["properties"]["power_kw"]["anyOf"][0] == {
        "type": "number", "exclusiveMinimum": 0}
    assert schema["$defs"]["Container"]["properties"]["flex"]["maximum"] == 3


def test_example_sites_define_programs_and_flex():
    site = load_site(REPO / "inventories" / "tx-odessa" / "site.yaml")
    assert [p.name for p in site.curtailment_programs] == ["ers-10", "4cp"]
    assert {c.name: c.flex for c in site.containers} == {"c01": 1, "c02": 1, "c03": 1, "c04": 3}
