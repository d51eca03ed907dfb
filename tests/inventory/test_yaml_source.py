from decimal import Decimal

import pytest

from ecohash.inventory.yaml_source import YamlSyntaxError, parse


def test_floats_are_exact_decimals_from_their_text():
    parsed = parse("a: 0.1\nb: 1_000.5\nc: 3\n")
    assert parsed.data == {"a": Decimal("0.1"), "b": Decimal("1000.5"), "c": 3}
    assert isinstance(parsed.data["a"], Decimal)


def test_special_floats_become_non_finite_decimals():
    assert not parse("a: .inf\n").data["a"].is_finite()
    assert parse("a: .nan\n").data["a"].is_nan()


def test_duplicate_keys_are_recorded_with_their_line():
    parsed = parse("a: 1\nb:\n  x: 1\n  x: 2\n")
    assert parsed.duplicate_keys == [(4, "x")]


def test_line_of_follows_mappings_and_sequences():
    parsed = parse("a:\n  - x: 1\n  - x: 2\n    y: 3\n")
    assert parsed.line_of(["a", 1, "y"]) == 4
    assert parsed.line_of(["a", 1, "y"], key=True) == 4
    assert parsed.line_of(["a", 0]) == 2


def test_line_of_falls_back_to_closest_existing_ancestor():
    parsed = parse("a:\n  b: 1\n")
    assert parsed.line_of(["a", "missing", "deeper"]) == 2


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: [1, 2\nb: 3\n", 2, 2),
        ("a: 1\nb: c: d\n", 2, 5),
        ("a: 1\n\tb: 2\n", 2, 1),
    ],
)
def test_syntax_errors_carry_line_and_column(text, line, column):
    with pytest.raises(YamlSyntaxError) as raised:
        parse(text)
    assert (raised.value.problem.line, raised.value.problem.column) == (line, column)
    assert raised.value.problem.message.startswith("YAML syntax error: ")


def test_control_characters_are_a_syntax_problem_not_a_crash():
    with pytest.raises(YamlSyntaxError) as raised:
        parse("a: 1\nb: \x07\n")
    assert raised.value.problem.line == 2


def test_key_line_is_the_last_steps_even_when_an_earlier_step_is_equal():
    parsed = parse("x:\n  y: 1\n  x: 2\n")
    assert parsed.line_of(["x", "x"], key=True) == 3
