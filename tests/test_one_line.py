"""Quoted reasons kept to one line (ecohash.one_line)."""

from __future__ import annotations

from ecohash.one_line import first_line, one_line


def test_one_line_joins_every_run_of_whitespace() -> None:
    assert one_line("  Permission denied\n\t(publickey).\r\n") == "Permission denied (publickey)."


def test_first_line_skips_blank_lines() -> None:
    assert first_line("\n   \n  sudo: a password is required  \nsecond\n") == "sudo: a password is required"
    assert first_line(" \n") == ""
