"""`ecohash fleet`: its totals are the sum of each site's own `plan --json`, a broken site is
listed and the rest still summed, and the page renders in a real browser at a phone's width."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from ecohash.paths import project_root
from tests.fleet.labsite import write_lab_site

EXAMPLES = project_root() / "inventories"
PLAN_FIGURES = ("it_budget_kw", "draw_at_tdp_kw", "draw_kw", "headroom_kw")
PHONE = (390, 844)


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fleet_json(*args: str) -> tuple[int, dict]:
    result = run("fleet", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def with_broken(tmp_path: Path) -> Path:
    """The example sites and one whose pue is not a number."""
    directory = tmp_path / "inventories"
    shutil.copytree(EXAMPLES, directory)
    broken = directory / "zz-broken" / "site.yaml"
    broken.parent.mkdir()
    broken.write_text((EXAMPLES / "nd-williston" / "site.yaml").read_text()
                      .replace("nd-williston", "zz-broken").replace("pue: 1.15", "pue: lots", 1))
    return directory


def test_totals_are_the_sum_of_each_site_s_own_plan_json() -> None:
    code, data = fleet_json(str(EXAMPLES))
    assert code == 0 and data["invalid"] == []
    plans = {}
    for path in sorted(EXAMPLES.glob("*/site.yaml")):
        result = run("plan", str(path), "--json")
        assert result.exit_code == 0, result.output
        plans[path.parent.name] = json.loads(result.stdout)
    assert len(plans) == 3
    sites = {site["site"]: site for region in data["regions"] for site in region["sites"]}
    assert sorted(sites) == sorted(plans)
    for name, plan in plans.items():
        assert {key: sites[name][key] for key in (*PLAN_FIGURES, "gpus", "gpu_cap_w", "file")} == \
            {key: plan[key] for key in (*PLAN_FIGURES, "gpus", "gpu_cap_w", "file")}
        assert sites[name]["nodes"] == len(plan["nodes"])
        by_model: dict[str | None, int] = {}
        for node in plan["nodes"]:
            by_model[node["gpu_model"]] = by_model.get(node["gpu_model"], 0) + node["gpus"]
        assert {m["gpu_model"] or None: m["gpus"] for m in sites[name]["models"]} == by_model
    totals = data["totals"]
    for key in PLAN_FIGURES:
        assert Decimal(str(totals[key])) == sum(Decimal(str(plan[key])) for plan in plans.values()), key
    assert totals["gpus"] == sum(plan["gpus"] for plan in plans.values())
    assert totals["nodes"] == sum(len(plan["nodes"]) for plan in plans.values())
    # Each region's totals are its own sites' sums, and the regions add up to the fleet.
    for region in data["regions"]:
        assert region["totals"]["draw_kw"] == float(sum(Decimal(str(s["draw_kw"])) for s in region["sites"]))
    assert totals["meter"]["shed_mw"] == pytest.approx(
        sum(region["totals"]["meter"]["shed_mw"] for region in data["regions"]), abs=1e-9)


def test_the_json_keys_are_the_documented_ones() -> None:
    _, data = fleet_json(str(EXAMPLES))
    assert list(data) == ["schema", "regions", "totals", "invalid"]
    assert data["schema"] == "ecohash.fleet/2"
    assert [region["region"] for region in data["regions"]] == ["us-east", "us-north", "us-south"]
    site = data["regions"][0]["sites"][0]
    assert list(site) == ["site", "file", "region", "lab", "simulated", "nodes", "gpus", *PLAN_FIGURES,
                          "gpu_cap_w", "models", "meter", "curtailment", "standard", "rollout", "drift"]
    assert list(site["meter"]) == ["budget_mw", "draw_mw", "shed_mw", "floor_mw", "throughput_kept_pct",
                                   "throughput_estimate", "tiers"]
    assert list(site["meter"]["tiers"][0]) == ["flex", "gpus", "shed_mw", "throughput_kept_pct",
                                               "throughput_estimate"]
    assert list(data["totals"]) == ["sites", "nodes", "gpus", *PLAN_FIGURES, "models", "meter",
                                    "curtailments", "standards", "rollout"]


def test_a_broken_site_is_listed_with_file_line_and_the_rest_still_summed(with_broken: Path) -> None:
    code, data = fleet_json(str(with_broken))
    assert code == 1
    _, clean = fleet_json(str(EXAMPLES))
    assert data["totals"] == clean["totals"]
    broken = with_broken / "zz-broken" / "site.yaml"
    line = broken.read_text().splitlines().index("    pue: lots             # free-air cooling, fans only") + 1
    (invalid,) = data["invalid"]
    assert invalid["file"] == str(broken)
    assert invalid["error"].startswith(f"{broken}:{line}: ")
    text = run("fleet", str(with_broken))
    assert text.exit_code == 1
    assert f"  {invalid['error']}" in text.stdout.splitlines()
    assert "Fleet: 3 site(s) in 3 region(s), 1 invalid (not summed): 625 nodes, 4,992 GPUs" in text.stdout
    assert "Traceback" not in text.output


def test_no_state_here_in_text_unless_this_machine_has_it() -> None:
    result = run("fleet", str(EXAMPLES))
    assert result.exit_code == 0, result.output
    assert "  node standard ecohash-node-2026.11: no state here" in result.stdout.splitlines()
    assert "current" not in result.stdout.split("\n\n", 1)[1].replace("Nodes current", "")


def test_without_dir_the_examples_and_the_lab_are_summed_and_the_lab_marked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lab_file = write_lab_site()
    monkeypatch.chdir(project_root())  # a checkout: ./inventories holds the examples
    monkeypatch.delenv("ECOHASH_INVENTORIES", raising=False)
    code, data = fleet_json()
    assert code == 0, data["invalid"]
    sites = {site["site"]: site for region in data["regions"] for site in region["sites"]}
    assert sorted(sites) == ["ga-dalton", "lab", "nd-williston", "tx-odessa"]
    assert (sites["lab"]["lab"], sites["lab"]["simulated"], sites["lab"]["file"]) == (True, True, str(lab_file))
    assert not any(site["lab"] or site["simulated"] for name, site in sites.items() if name != "lab")
    text = run("fleet")
    assert "lab (lab, SIMULATED), region lab  " in text.stdout


def test_a_missing_dir_or_one_without_sites_is_bad_input(tmp_path: Path) -> None:
    missing = run("fleet", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    empty = run("fleet", str(tmp_path))
    assert empty.exit_code == 2
    assert empty.output == f"ecohash: no site files (<dir>/*/site.yaml) under {tmp_path}\n"


def test_a_page_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("fleet", str(EXAMPLES), "--html", str(blocker / "fleet.html"))
    assert result.exit_code == 2
    assert result.output.endswith(f"ecohash: {blocker / 'fleet.html'}: cannot write the page: File exists\n")


MEASURE = ("<script>const edges = [...document.querySelectorAll('body *')]"
           ".map(e => e.getBoundingClientRect().right);"
           "document.body.setAttribute('data-right', Math.ceil(Math.max(...edges)) + ' ' + edges.length)</script>")


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed: scripts/install --test installs it (apt)"
    return found


def browse(tmp_path: Path, page: Path, *how: str) -> subprocess.CompletedProcess[str]:
    """Debian's chromium, headless at a phone's size, its profile in tmp_path."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={PHONE[0]},{PHONE[1]}", *how,
         page.as_uri()], capture_output=True, text=True, timeout=120, check=False)


def png_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct pixel values) of an 8-bit RGB or RGBA PNG, decoded here."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw, rows, previous = zlib.decompress(idat), [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                estimate = left + up - corner
                nearest = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                              (abs(estimate - corner), 2, corner))[2]
                line[x] = (line[x] + nearest) & 255
        rows.append(bytes(line))
        previous = line
    colours = {row[x:x + channels] for row in rows for x in range(0, stride, channels)}
    return width, height, len(colours)


@pytest.mark.slow
def test_the_page_renders_in_a_real_browser_and_fits_a_phone(with_broken: Path, tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    result = run("fleet", str(with_broken), "--html", str(page))
    assert result.exit_code == 1
    html = page.read_text()
    # Self-contained: nothing runs, nothing is fetched, nothing links out.
    for forbidden in ("<script", "src=", "href=", "@import", "url("):
        assert forbidden not in html
    dom = browse(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in ("ga-dalton", "nd-williston", "tx-odessa"):
        assert f'<article class="site" id="site-{name}">' in dom.stdout
    # Three bars per site, each as wide as its figure on one scale.
    assert dom.stdout.count('<rect class="bar ') == 9
    assert "pue: lots" not in dom.stdout and "zz-broken/site.yaml:" in dom.stdout
    # Laid out PHONE[0] px wide, no element reaches past the right edge: measured by the
    # browser on a copy given one line of script (the page itself has none). The root is
    # set to that width because headless chromium lays out --dump-dom at least 500 px wide.
    measured = tmp_path / "measured.html"
    measured.write_text(html.replace("<html lang=\"en\">", f"<html lang=\"en\" style=\"width: {PHONE[0]}px\">")
                        .replace("</body>", MEASURE + "</body>"))
    width = browse(tmp_path, measured, "--dump-dom")
    assert width.returncode == 0, width.stderr[-2000:]
    right, elements = (int(float(part)) for part in width.stdout.split('data-right="')[1].split('"')[0].split())
    assert elements > 100
    assert 0 < right <= PHONE[0]
    shot = tmp_path / "fleet.png"
    taken = browse(tmp_path, page, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    columns, rows, colours = png_colours(shot)
    assert (columns, rows) == PHONE
    assert colours > 20  # text, bars and the legend's colours: not a blank page


def test_a_one_site_region_is_shown_once_as_its_site_s_row(tmp_path: Path) -> None:
    # The examples are three regions of one site each: no region row repeats its only site.
    result = run("fleet", str(EXAMPLES), "--html", str(tmp_path / "fleet.html"))
    assert result.exit_code == 0, result.output
    table = result.stdout.split("\n\n", 1)[0]
    assert "1 site(s)" not in table
    assert "│ tx-odessa,  " in table  # its region after it, wrapped at the runner's 80 columns
    page = (tmp_path / "fleet.html").read_text()
    assert " total</h3>" not in page
    assert page.count('class="site"') == 3
