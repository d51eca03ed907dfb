"""Which known_hosts lines name a site's hosts (ecohash.ssh.known_hosts): what travels to an executor."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ecohash.ssh.known_hosts import host_name, lines_naming, names_host, parse_line

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyFakeKeyFakeKeyFakeKeyFakeKeyFakeKey"


def hashed(tmp_path: Path, name: str) -> str:
    """`name`'s line hashed by ssh-keygen -H, as HashKnownHosts yes writes it."""
    path = tmp_path / f"hash-{len(list(tmp_path.iterdir()))}"
    path.write_text(f"{name} {KEY}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    return path.read_text().strip()


@pytest.mark.parametrize(("hosts", "name", "expected"), [
    ("c01-r01-n01,10.20.1.11", "10.20.1.11", True),
    ("c01-r01-n01,10.20.1.11", "C01-R01-N01", True),  # ssh compares names in lowercase
    ("c01-r01-n01,10.20.1.11", "10.20.1.1", False),
    ("10.20.1.*", "10.20.1.11", True),
    ("10.20.1.?", "10.20.1.11", False),
    ("10.20.*,!10.20.9.9", "10.20.9.9", False),
    ("[10.20.1.11]:2222", "[10.20.1.11]:2222", True),
    ("[10.20.1.11]:2222", "10.20.1.11", False),
])
def test_a_line_names_a_host_as_ssh_matches_it(hosts, name, expected):
    assert names_host(hosts, name) is expected


def test_only_the_sites_lines_travel_hashed_ones_included(tmp_path):
    node = hashed(tmp_path, "10.20.1.11")
    ported = hashed(tmp_path, "[10.20.1.12]:2222")
    known = tmp_path / "known_hosts"
    known.write_text(f"# the controller's file\n{node}\nother-site-n01,10.99.0.1 {KEY}\n{ported}\n"
                     f"@revoked 10.20.1.13 {KEY}\n@cert-authority *.other.example {KEY}\nnot a line\n")
    names = ["c01-r01-n01", "10.20.1.11", host_name("10.20.1.12", 2222), "10.20.1.13"]
    found = lines_naming(names, [known, tmp_path / "missing"])
    assert [entry.line() for entry in found] == [node, ported, f"@revoked 10.20.1.13 {KEY}"]
    assert "10.99.0.1" not in "".join(entry.line() for entry in found)


def test_a_line_keeps_its_marker_and_key_under_another_name():
    entry = parse_line(f"@cert-authority *.site.example {KEY} ca@site")
    assert entry is not None and entry.marker == "@cert-authority"
    assert entry.line("ecohash-site-nodes") == f"@cert-authority ecohash-site-nodes {KEY} ca@site"
    assert parse_line("# comment") is None and parse_line("host-only") is None
