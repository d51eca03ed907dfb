"""Random edits of valid inventories never make ecohash crash: exit 0 or 2, never a traceback."""

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecohash.commands.main import cli
from tests.conftest import EXAMPLE_SITE, REPO

SOURCES = [EXAMPLE_SITE] + [(REPO / "inventories" / s / "site.yaml").read_text()
                            for s in ("nd-williston", "ga-dalton")]
JUNK = ["", "-1", "0", "0.0", "1e999", ".nan", "null", "~", "[]", "{}", "yes", '"x"', "'", "{i}",
        "{i:02d}", "::", "- a", "&a", "*a", "<<: *a", "!!binary", "\t", "Ω", "10.20.1.300",
        "10.0.0.0/33", "99999999999999999999", "[1, 2", "name:", "\x00"]


@st.composite
def mutated(draw):
    lines = draw(st.sampled_from(SOURCES)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "replace-value", "replace-key",
                                       "indent", "dedent", "insert"]))
        line = lines[i]
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, line)
        elif action == "replace-value" and ":" in line:
            lines[i] = line.rsplit(":", 1)[0] + ": " + draw(st.sampled_from(JUNK))
        elif action == "replace-key" and ":" in line:
            indent = line[: len(line) - len(line.lstrip())]
            lines[i] = indent + draw(st.sampled_from(["nme", "count", "power_kw", "x"])) + ":" + \
                line.split(":", 1)[1]
        elif action == "indent":
            lines[i] = "  " + line
        elif action == "dedent":
            lines[i] = line[2:]
        elif action == "insert":
            lines.insert(i, draw(st.sampled_from(JUNK)))
        if not lines:
            break
    return "\n".join(lines) + "\n"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
@pytest.mark.slow
def test_mutated_inventories_never_crash(tmp_path, text):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    runner = CliRunner()
    for args in (["validate", str(path)], ["plan", str(path), "--json"],
                 ["capacity", str(path), "--sku", "l40s-8"]):
        result = runner.invoke(cli, args)
        assert result.exit_code in (0, 2), (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
        assert "Traceback" not in result.output
