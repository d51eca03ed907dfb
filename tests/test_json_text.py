"""dumps_indented writes json.dumps(value, indent=2), byte for byte, whatever the value."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecohash.budget import compile_budget
from ecohash.inventory import load_site_text
from ecohash.json_text import dumps_indented
from ecohash.report import plan_data
from tests.conftest import EXAMPLE_SITE

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text())
keys = st.text() | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=5) | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(st.text(), children, max_size=5)
                      | st.dictionaries(keys, children, max_size=3)),
    max_leaves=40,
)


@settings(max_examples=500)
@given(values)
@pytest.mark.slow
def test_it_is_json_dumps_with_indent_2(value):
    assert dumps_indented(value) == json.dumps(value, indent=2)


def test_a_plan_is_the_same_text():
    plan = plan_data(compile_budget(load_site_text(EXAMPLE_SITE, "site.yaml")))
    assert dumps_indented(plan) == json.dumps(plan, indent=2)


@pytest.mark.parametrize("value", [{"x": {1, 2}}, [object()], {"nan": math.nan, "deep": [[[{}]]]}])
def test_what_json_dumps_refuses_or_writes_specially_it_leaves_to_json_dumps(value):
    try:
        expected = json.dumps(value, indent=2)
    except TypeError as error:
        with pytest.raises(TypeError, match=str(error)):
            dumps_indented(value)
    else:
        assert dumps_indented(value) == expected


def test_a_circular_value_is_refused_as_json_dumps_refuses_it():
    value: list = []
    value.append(value)
    with pytest.raises(ValueError, match="Circular reference detected"):
        dumps_indented(value)
