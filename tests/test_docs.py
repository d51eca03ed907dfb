"""Generated docs are up to date with the model and the commands (run scripts/gen-docs to fix)."""

import re
import subprocess
import sys
from pathlib import Path

from ecohash.inventory.reference import render_into, schema_text
from tests.conftest import REPO

# What a reader of the repository cannot open: an issue tracker's numbers and notes kept
# outside it. A public source is cited by its URL instead (github.com/.../issues/N passes).
UNFOLLOWABLE = re.compile(r"\bissues? #?\d+|project notes|shared/notes", re.I)


def test_inventory_reference_is_current():
    text = (REPO / "docs" / "inventory.md").read_text()
    assert render_into(text) == text, "docs/inventory.md is stale: run scripts/gen-docs"


def test_committed_schema_is_current():
    assert (REPO / "docs" / "site.schema.json").read_text() == schema_text(), \
        "docs/site.schema.json is stale: run scripts/gen-docs"


def test_command_reference_is_current():
    """docs/cli.md is every command's --help, written by its cog block; --check regenerates it
    in memory and compares, so a changed option or help text fails here until it is rerun."""
    checked = subprocess.run([sys.executable, "-m", "cogapp", "--check", "--diff", "docs/cli.md"],
                             cwd=REPO, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, \
        f"docs/cli.md is stale: run scripts/gen-docs\n{checked.stdout}{checked.stderr}"


def test_reference_documents_every_key_of_the_issue_format():
    text = (REPO / "docs" / "inventory.md").read_text()
    for key in ("grid_mw", "reserve_pct", "pue", "mgmt_cidr", "gpu_models", "skus", "distribution",
                "servers", "cooling", "power_kw", "cooling_kw", "count", "start", "mgmt_ip", "tdp_w",
                "min_cap_w", "host_w"):
        assert f"| `{key}` |" in text, key


def test_every_test_docs_security_names_exists():
    """docs/security.md names the test behind each promise: a renamed or removed test must
    not leave a promise pointing at nothing. `::name` alone continues the file named before it."""
    text = (REPO / "docs" / "security.md").read_text()
    named, missing, current = 0, [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?(?:\[[^\]]*\])?`", text):
        current = path or current
        if not name:
            if path:
                assert (REPO / path).is_file(), path
            continue
        assert current is not None, name
        named += 1
        if not re.search(rf"^(?:async )?def {name}\(", (REPO / current).read_text(), re.M):
            missing.append(f"{current}::{name}")
    assert named > 30
    assert not missing, missing


def test_docs_and_comments_point_to_nothing_outside_the_repository():
    """Docs, comments and scripts state the fact itself, or link a docs page or a public URL."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
         "README.md", "CHANGELOG.md", "docs", "cli", "tests", "bench", "plugins", "roles", "stacks",
         "playbooks", "templates", "scripts", "examples"],
        check=True, capture_output=True, text=True).stdout
    # This file is left out: it spells the pattern.
    files = [REPO / name for name in listed.split("\0")
             if name and (REPO / name).is_file() and (REPO / name).resolve() != Path(__file__).resolve()]
    assert len(files) > 300
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in files
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if UNFOLLOWABLE.search(line)]
    assert not found, "say the fact or link its public source instead:\n" + "\n".join(found)
