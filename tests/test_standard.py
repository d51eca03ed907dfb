"""The node standard: the repository's lock file loads, and bad files are FILE:LINE errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ecohash.errors import InvalidInputError, ProblemsError
from ecohash.standard import default_standard_file, image_reference, load_standard
from tests.conftest import REPO

LOCK_FILE = REPO / "node-standard.lock.yml"
LOCK_TEXT = LOCK_FILE.read_text()
RAW = yaml.safe_load(LOCK_TEXT)


def line_of(text: str, needle: str) -> int:
    """The 1-based line holding `needle`, which must occur once: expected lines follow the file."""
    assert text.count(needle) == 1, f"test setup: {needle!r} is not unique in the text"
    return text[: text.index(needle)].count("\n") + 1


def whole_line(start: str) -> str:
    """The lock file's one line that starts with `start`, so cases survive a bumped pin."""
    (line,) = [line for line in LOCK_TEXT.splitlines() if line.startswith(start)]
    return line


def write_standard(tmp_path: Path, *replacements: tuple[str, str]) -> tuple[Path, str]:
    """A copy of the repository's lock file with (old, new) replacements, and its text."""
    text = LOCK_TEXT
    for old, new in replacements:
        assert old in text, f"test setup: {old!r} not in the lock file"
        text = text.replace(old, new, 1)
    path = tmp_path / "standard.lock.yml"
    path.write_text(text)
    return path, text


def problems(path: Path) -> list[str]:
    with pytest.raises(ProblemsError) as raised:
        load_standard(path)
    return [str(p) for p in raised.value.problems]


def test_default_standard_is_the_repository_lock_file():
    assert default_standard_file() == LOCK_FILE
    assert load_standard() == load_standard(LOCK_FILE)


def test_repository_standard_is_exactly_what_the_file_says():
    # The roles read ecohash_standard, so it must carry the file's values unchanged:
    # nothing dropped, renamed, defaulted in or coerced on the way.
    assert load_standard(LOCK_FILE).for_ansible() == RAW


def test_repository_standard_pins_are_consistent():
    standard = load_standard(LOCK_FILE)
    assert standard.simulated is False
    assert standard.k3s.version == RAW["k3s"]["version"]
    assert re.fullmatch(r"[0-9a-f]{64}", standard.k3s.sha256)
    # The k3s URL is the release of the pinned version ('+' is %2B in the release path).
    assert standard.k3s.version.replace("+", "%2B") in standard.k3s.url
    driver = standard.nvidia_driver
    assert driver.version == RAW["nvidia_driver"]["version"]
    assert driver.version.startswith(f"{driver.branch}.")
    assert driver.apt_version.startswith(f"{driver.version}-")
    assert set(driver.packages) == {"debian12", "ubuntu2204", "ubuntu2404"}
    assert all(f"cuda-drivers-{driver.branch}" in packages for packages in driver.packages.values())
    for packages in standard.containerd.values():
        for deb in packages.values():
            assert re.fullmatch(r"[0-9a-f]{64}", deb.sha256)
            assert deb.url.endswith(f"_{deb.version}_amd64.deb")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", standard.inference_runtime.digest)


@pytest.mark.parametrize(
    ("replacement", "at", "expected"),
    [
        # A version that is not a k3s release tag.
        ((whole_line("  version: v1."), '  version: "1.35"'), '  version: "1.35"',
         r"k3s.version: String should match pattern '^v\d+\.\d+\.\d+\+k3s\d+$' (got '1.35')"),
        # A bare YAML number where a version string belongs is refused, not turned into '550'.
        ((whole_line("  branch: "), "  branch: 550"), "  branch: 550",
         "nvidia_driver.branch: must be a string (got 550)"),
        ((f'  version: "{RAW["nvidia_driver"]["version"]}"', "  version: 550.127"), "  version: 550.127",
         "nvidia_driver.version: must be a string (got 550.127)"),
        ((whole_line("  simulated: "), "  simulated: maybe"), "  simulated: maybe",
         "metadata.simulated: must be boolean (got 'maybe')"),
        # (The k3s sha256 is the only one indented by two spaces.)
        ((whole_line("  sha256: 2b52"), "  sha256: 2b52a2c1"), "  sha256: 2b52a2c1\n",
         "k3s.sha256: must be a sha256 in lowercase hex such as 'e3b0c442...' (64 characters) (got '2b52a2c1')"),
        ((whole_line("  digest: "), "  digest: sha512:0123"), "  digest: sha512:0123",
         "inference_runtime.digest: String should match pattern '^sha256:[0-9a-f]{64}$' (got 'sha512:0123')"),
        # A missing key points at the mapping that should hold it: its first line.
        ((whole_line("  tag: ") + "\n", ""), "  image: docker.io/",
         "inference_runtime: missing required key 'tag'"),
        # An unknown key points at itself, with the likely intended key.
        (("  image: docker.io/", "  tags: [latest]\n  image: docker.io/"), "  tags: [latest]",
         "inference_runtime: unknown key 'tags' (did you mean 'tag'?)"),
        (("kind: NodeStandard", "kind: Site"), "kind: Site", "kind: must be 'NodeStandard' (got 'Site')"),
        (("    ubuntu2404: [cuda", "    ubuntu2604: [cuda"), "    ubuntu2604: [cuda",
         "nvidia_driver.packages.ubuntu2604: key must be 'debian12', 'ubuntu2204' or 'ubuntu2404'"),
    ],
)
def test_each_problem_is_reported_at_its_line(tmp_path, replacement, at, expected):
    path, text = write_standard(tmp_path, replacement)
    assert problems(path) == [f"{path}:{line_of(text, at)}: {expected}"]


def test_every_problem_is_reported_at_once(tmp_path):
    path, text = write_standard(
        tmp_path,
        (whole_line("  branch: "), "  branch: 550"),
        (whole_line("  version: v1."), "  version: v1.35"),
        (whole_line("  tag: ") + "\n", ""),
    )
    assert [p.split(": ")[0] for p in problems(path)] == [
        f"{path}:{line_of(text, '  branch: 550')}",
        f"{path}:{line_of(text, '  version: v1.35')}",
        f"{path}:{line_of(text, '  image: docker.io/')}",
    ]


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path, text = write_standard(tmp_path, ("kind: NodeStandard", "kind: [NodeStandard"))
    # The parser notices the unclosed list on the next line, at the ':' after `metadata`.
    line = line_of(text, "kind: [NodeStandard") + 1
    assert problems(path) == [
        f"{path}:{line}:9: YAML syntax error: while parsing a flow sequence; did not find expected ',' or ']'"
    ]


def test_empty_file_reports_every_missing_section(tmp_path):
    path = tmp_path / "standard.lock.yml"
    path.write_text("# nothing pinned yet\n")
    assert problems(path) == [
        f"{path}:1: missing required key '{key}'"
        for key in sorted(["apiVersion", "kind", "metadata", "nvidia_driver", "nvidia_container_toolkit",
                           "containerd", "k3s", "inference_runtime", "gpu_operator"])
    ]


def test_a_list_is_not_a_standard(tmp_path):
    path = tmp_path / "standard.lock.yml"
    path.write_text("- k3s\n")
    assert problems(path) == [f"{path}:1: must be a mapping"]


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing.lock.yml", lambda tmp: tmp],
                         ids=["missing", "directory"])
def test_unreadable_file_is_an_invalid_input_error(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(InvalidInputError) as raised:
        load_standard(path)
    assert not isinstance(raised.value, ProblemsError)
    reason = "No such file or directory" if path != tmp_path else "Is a directory"
    assert str(raised.value) == f"{path}: cannot read the node standard: {reason}"


def test_non_utf8_file_is_an_invalid_input_error(tmp_path):
    path = tmp_path / "standard.lock.yml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        load_standard(path)


def test_duplicate_key_is_a_problem(tmp_path):
    # A lock file where a second `k3s:` silently replaces the first would install a
    # binary nobody reviewed; site files report duplicate keys, so must the standard.
    second = "k3s:\n  version: v1.30.0+k3s1\n  url: https://example.com/k3s\n  sha256: " + "ab" * 32 + "\n"
    path, text = write_standard(tmp_path, ("inference_runtime:", second + "inference_runtime:"))
    line = line_of(text, "  version: v1.30.0+k3s1") - 1
    with pytest.raises(ProblemsError) as raised:
        load_standard(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:{line}: duplicate key 'k3s': a key may appear once"
    ]


def test_a_byte_that_is_not_utf8_is_reported_at_its_line(tmp_path):
    path, text = write_standard(tmp_path)
    line = line_of(text, "version: v1.")  # k3s's, far below line 1
    path.write_bytes(text.encode().replace(b"version: v1.", b"version: \xff v1.", 1))
    assert problems(path) == [f"{path}:{line}:12: not UTF-8 text (invalid start byte)"]


@pytest.mark.parametrize("registry", ["10.20.0.5:5000", "http://10.20.0.5:5000", "https://10.20.0.5:5000"])
def test_the_image_reference_names_the_registry_without_its_scheme(registry):
    standard = load_standard()
    assert image_reference(standard, registry) == (
        f"10.20.0.5:5000/{standard.inference_runtime.image.split('/', 1)[1]}@{standard.inference_runtime.digest}"
    )
