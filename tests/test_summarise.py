"""The one rule for long lists: every name up to FULL_UP_TO, then per container with counts."""

from __future__ import annotations

from ecohash.summarise import FULL_UP_TO, by_container, name_range, names_line, problem_lines


def nodes(container: str, count: int) -> list[tuple[str, str]]:
    return [(f"{container}-n{i:03d}", container) for i in range(1, count + 1)]


def test_one_name_is_itself_and_a_run_is_a_range_with_a_count():
    assert name_range("rack", ["c01/r01"]) == "rack c01/r01"
    assert name_range("rack", ["c01/r01", "c01/r02", "c01/r03"]) == "3 racks c01/r01..c01/r03"


def test_up_to_the_limit_every_name_is_listed():
    listed = nodes("c01", FULL_UP_TO)
    assert names_line(listed) == ", ".join(name for name, _ in listed)


def test_past_the_limit_each_container_is_one_part_with_its_first_names_and_how_to_see_all():
    line = names_line(nodes("c01", 204) + nodes("c02", 204))
    assert line == ("408 nodes; c01: 204: c01-n001, c01-n002, c01-n003, … 201 more; "
                    "c02: 204: c02-n001, c02-n002, c02-n003, … 201 more (--all or --json lists every one)")


def test_all_lists_every_name_however_many():
    assert names_line(nodes("c01", 408), show_all=True).count(",") == 407


def test_counts_by_state_most_first():
    (summary,) = by_container([("a", "c01", "ok"), ("b", "c01", "failed"), ("c", "c01", "ok")])
    assert summary.line() == "c01: 2 ok, 1 failed: a, b, c"


def test_problems_are_a_line_each_up_to_the_limit_then_a_line_per_container_by_problem():
    few = [("c01-n001", "c01", "not read: timed out")]
    assert problem_lines(few) == ["c01-n001: not read: timed out"]
    many = [(name, container, "not read: timed out") for name, container in nodes("c01", 60)]
    assert problem_lines(many) == ["c01: 60 not read: timed out: c01-n001, c01-n002, c01-n003, … 57 more",
                                   "(60 nodes; --all or --json lists every one)"]
    assert len(problem_lines(many, show_all=True)) == 60
