"""The fleet summary: every site's plan, sheddable power and rollout state, summed by region.

Each site is read as `ecohash plan --json` reads it (load_site, compile_budget, and
report.site_figures, plan_data's site-wide part), so a site's figures are its plan's, and
a region's or the fleet's totals are the sums of its sites' figures as plan prints them
(kW to 3 decimals, summed exactly). What caps alone could shed is the curtailment rule's
(grid.rule.at_floors: every GPU of a flex tier at its floor) with the catalog's throughput
curves (grid.throughput). Rollout and drift figures come from this machine's state, and a
site without any says so: nothing is assumed current.

A site that cannot be read, is infeasible, or repeats another site's name is listed with
its FILE:LINE error and left out of every total; it never stops the others.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from ecohash.budget import compile_budget, it_budget_w
from ecohash.errors import EcohashError, InvalidInputError, Problem, ProblemsError
from ecohash.grid.events import curtailment_data, event_in_force
from ecohash.grid.rule import TIERS, at_floors
from ecohash.grid.throughput import Kept, combined, percent, throughput_kept
from ecohash.inventory import Site, load_site
from ecohash.inventory.loader import collector_paused
from ecohash.paths import SITE_FILE_NAME, inventory_roots, source_path
from ecohash.report import site_figures
from ecohash.rollout.drift import last_drift
from ecohash.rollout.state import RolloutState
from ecohash.rollout.status import site_status
from ecohash.standard import NodeStandard, load_standard, standard_file_of

FLEET_SCHEMA = 1
NO_STATE = "no state here"
NO_REGION = "(no region)"
# Forking a worker costs ~50 ms; a 1,000-node site file (~80 KB) takes ~100 ms to summarise.
PARALLEL_BYTES_PER_WORKER = 400_000
# The plan --json figures a fleet sums, kW to 3 decimals.
PLAN_FIGURES = ("it_budget_kw", "draw_at_tdp_kw", "draw_kw", "headroom_kw")


def site_files(directory: Path | None = None) -> list[Path]:
    """`<dir>/*/site.yaml` under DIR, or under every inventory root a site name is looked up
    in (paths.inventory_roots: ./inventories, then the state directory's, where the lab's
    site is written); each file once."""
    roots = [directory] if directory is not None else inventory_roots()
    seen: set[Path] = set()
    files = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.glob(f"*/{SITE_FILE_NAME}")):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                files.append(path)
    return files


@dataclass(frozen=True)
class TierShed:
    """One flex tier's GPUs at their floors, every other GPU at its plan."""

    flex: int
    gpus: int
    shed_w: int  # at the meter (IT draw saved x pue), to the watt
    kept: Kept  # the throughput the tier's GPUs keep, of what they have at plan


@dataclass(frozen=True)
class SiteSummary:
    """One site's figures; the site itself is not kept, so a fleet holds one site at a time."""

    name: str
    name_line: int  # where the file names the site, for a repeated name's FILE:LINE
    region: str | None
    file: Path
    lab: bool
    plan: dict[str, Any]  # report.site_figures: the site-wide figures of `plan --json`
    models: dict[str | None, tuple[int, int]]  # GPU model (None: no GPU) -> (nodes, GPUs)
    budget_facility_w: int  # the IT budget x pue: what the grid allows after its reserve
    planned_facility_w: int
    tiers: tuple[TierShed, ...]
    shed_w: int  # every tier at its floors, at the meter
    kept: Kept  # the site's throughput with every tier at its floors
    curtailment: dict[str, Any] | None
    standard: dict[str, Any]
    rollout: dict[str, Any] | None  # None: no rollout state on this machine
    drift: dict[str, Any] | None  # None: no drift check on this machine


@dataclass(frozen=True)
class InvalidSite:
    file: str
    error: str  # FILE:LINE: message, the first problem
    problems: int


@dataclass
class Fleet:
    sites: list[SiteSummary] = field(default_factory=list)
    invalid: list[InvalidSite] = field(default_factory=list)


def summarise(files: Sequence[Path], lab_file: Path | None = None) -> Fleet:
    """Every site file's summary, or its error; `lab_file` is the lab's site, marked as such."""
    lab = lab_file.resolve() if lab_file is not None else None
    jobs = [(path, path.resolve() == lab) for path in files]
    fleet = Fleet()
    names: dict[str, Path] = {}
    for (path, _), result in zip(jobs, _read_all(jobs), strict=True):
        if isinstance(result, InvalidSite):
            fleet.invalid.append(result)
        elif result.name in names:
            fleet.invalid.append(InvalidSite(str(path), str(Problem(
                str(path), result.name_line,
                f"site name {result.name!r} is also the name of {names[result.name]}: a site's "
                "name is unique across the fleet (its state is kept by name)")), 1))
        else:
            names[result.name] = path
            fleet.sites.append(result)
    return fleet


def _read_all(jobs: list[tuple[Path, bool]]) -> list[SiteSummary | InvalidSite]:
    """Each site read on its own, in parallel over the cores when the files are large enough to
    be worth a process each (forked: ecohash is imported once, here)."""
    size = sum(path.stat().st_size for path, _ in jobs)
    workers = min(os.cpu_count() or 1, len(jobs), size // PARALLEL_BYTES_PER_WORKER)
    if workers < 2:
        return [_read(path, lab) for path, lab in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_read, *zip(*jobs, strict=True), chunksize=max(1, len(jobs) // (4 * workers))))


def _read(path: Path, lab: bool) -> SiteSummary | InvalidSite:
    try:
        # The collector paused, as the loader pauses it: a site is a great many objects,
        # none garbage while it is summarised, and all freed by reference counts after.
        with collector_paused():
            return site_summary(load_site(path), lab=lab)
    except ProblemsError as error:
        return InvalidSite(str(path), str(error.problems[0]), len(error.problems))
    except EcohashError as error:
        # Not a site file's problem (a damaged rollout state, say): the first line names its file.
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return InvalidSite(str(path), first, 1)


def site_summary(site: Site, lab: bool = False) -> SiteSummary:
    plan = compile_budget(site)
    pue = Fraction(site.power.pue)
    models: dict[str | None, tuple[int, int]] = {}
    for node in site.nodes:
        model = node.sku.gpu if node.gpus else None
        nodes, gpus = models.get(model, (0, 0))
        models[model] = (nodes + 1, gpus + node.gpus)
    tiers = []
    for tier in TIERS:
        names = [c.name for c in site.containers if c.flex == tier]
        if not names:
            continue
        solution = at_floors(plan, (tier,))
        kept_of, _ = throughput_kept(plan, solution)
        tiers.append(TierShed(tier, sum(kept_of[name].gpus for name in names),
                              round((solution.planned_it_draw_w - solution.it_draw_w) * pue),
                              combined(kept_of[name] for name in names)))
    _, kept = throughput_kept(plan, at_floors(plan))
    event = event_in_force(site.name)
    return SiteSummary(
        name=site.name, name_line=site.line_of(("metadata", "name")), region=site.region, file=site.file,
        lab=lab,
        plan=site_figures(plan),
        models=models,
        budget_facility_w=round(it_budget_w(site) * pue),
        planned_facility_w=round(plan.site_domain.draw_w * pue),
        tiers=tuple(tiers),
        shed_w=sum(tier.shed_w for tier in tiers),
        kept=kept,
        curtailment=curtailment_data(event) if event is not None else None,
        standard=_standard(standard_file_of(site)),
        rollout=_rollout(site),
        drift=_drift(site.name),
    )


@cache
def _loaded_standard(path: Path) -> NodeStandard:
    return load_standard(path)


def _standard(path: Path) -> dict[str, Any]:
    standard = _loaded_standard(path.resolve())
    return {"name": standard.metadata.name, "file": source_path(path), "simulated": standard.simulated}


def _rollout(site: Site) -> dict[str, Any] | None:
    """How many nodes are current at the standard and inputs in force, from rollout state."""
    if not RolloutState.file_for(site.name).exists():
        return None
    status = site_status(site)
    nodes = len(status["nodes"])
    current = status["counts"].get("current", 0)
    last = status["runs"][-1] if status["runs"] else None
    return {
        "nodes": nodes,
        "current": current,
        "current_pct": _pct(Fraction(current, nodes)) if nodes else None,
        "counts": dict(sorted(status["counts"].items())),
        "last_provision": {key: last.get(key) for key in ("run", "started", "outcome", "passed", "failed",
                                                          "skipped")} if last else None,
    }


def _drift(site_name: str) -> dict[str, Any] | None:
    report = last_drift(site_name)
    if report is None:
        return None
    return {key: report.get(key) for key in ("run", "finished", "drifted", "counts")}


def _pct(share: Fraction) -> float:
    return float(percent(share))


def _mw(watts: int) -> float:
    """MW to the watt."""
    return float(Fraction(watts, 10**6))


def _kept(kept: Kept) -> dict[str, Any]:
    return {"throughput_kept_pct": _pct(kept.share), "throughput_estimate": kept.estimate}


def _sum_kw(values: Iterable[float | None]) -> float:
    """kW figures as plan prints them, summed exactly (3 decimals each)."""
    return float(sum((Decimal(str(value)) for value in values if value is not None), Decimal(0)))


def _models(models: Iterable[tuple[str | None, tuple[int, int]]]) -> list[dict[str, Any]]:
    totals: dict[str | None, tuple[int, int]] = {}
    for model, (nodes, gpus) in models:
        before = totals.get(model, (0, 0))
        totals[model] = (before[0] + nodes, before[1] + gpus)
    no_gpu_last = sorted(totals.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return [{"gpu_model": model, "nodes": nodes, "gpus": gpus} for model, (nodes, gpus) in no_gpu_last]


def _meter(tiers: Iterable[TierShed], budget_facility_w: int, planned_facility_w: int, kept: Kept
          ) -> dict[str, Any]:
    by_tier: dict[int, list[TierShed]] = {}
    for tier in tiers:
        by_tier.setdefault(tier.flex, []).append(tier)
    rows = [{"flex": flex, "gpus": sum(t.gpus for t in group), "shed_mw": _mw(sum(t.shed_w for t in group)),
             **_kept(combined(t.kept for t in group))}
            for flex, group in sorted(by_tier.items(), reverse=True)]
    shed_w = sum(sum(t.shed_w for t in group) for group in by_tier.values())
    return {"budget_mw": _mw(budget_facility_w), "draw_mw": _mw(planned_facility_w), "shed_mw": _mw(shed_w),
            "floor_mw": _mw(planned_facility_w - shed_w), **_kept(kept), "tiers": rows}


def site_data(summary: SiteSummary) -> dict[str, Any]:
    return {
        "site": summary.name,
        "file": source_path(summary.file),
        "region": summary.region,
        "lab": summary.lab,
        "simulated": summary.standard["simulated"],
        "nodes": sum(nodes for nodes, _ in summary.models.values()),
        **{key: summary.plan[key] for key in ("gpus", *PLAN_FIGURES, "gpu_cap_w")},
        "models": _models(summary.models.items()),
        "meter": _meter(summary.tiers, summary.budget_facility_w, summary.planned_facility_w, summary.kept),
        "curtailment": summary.curtailment,
        "standard": summary.standard,
        "rollout": summary.rollout,
        "drift": summary.drift,
    }


def totals_data(summaries: Sequence[SiteSummary]) -> dict[str, Any]:
    """A group of sites summed: plan figures as plan prints them, shed to the watt, throughput
    over every GPU (weighed equally, as within a site), rollout over the sites with state."""
    with_state = [s.rollout for s in summaries if s.rollout is not None]
    state_nodes = sum(r["nodes"] for r in with_state)
    state_current = sum(r["current"] for r in with_state)
    return {
        "sites": len(summaries),
        "nodes": sum(nodes for s in summaries for nodes, _ in s.models.values()),
        "gpus": sum(s.plan["gpus"] for s in summaries),
        **{key: _sum_kw(s.plan[key] for s in summaries) for key in PLAN_FIGURES},
        "models": _models(item for s in summaries for item in s.models.items()),
        "meter": _meter([tier for s in summaries for tier in s.tiers],
                        sum(s.budget_facility_w for s in summaries),
                        sum(s.planned_facility_w for s in summaries), combined(s.kept for s in summaries)),
        "curtailments": sorted(s.name for s in summaries if s.curtailment is not None),
        "standards": sorted({s.standard["name"] for s in summaries}),
        "rollout": {
            "sites_with_state": len(with_state),
            "sites_without_state": len(summaries) - len(with_state),
            "nodes": state_nodes,
            "current": state_current,
            "current_pct": _pct(Fraction(state_current, state_nodes)) if state_nodes else None,
        },
    }


def fleet_data(fleet: Fleet) -> dict[str, Any]:
    """What `fleet --json` prints: sites by region with each region's totals, the fleet's
    totals, and the sites that could not be summed."""
    by_region: dict[str | None, list[SiteSummary]] = {}
    for summary in fleet.sites:
        by_region.setdefault(summary.region, []).append(summary)
    regions = sorted(by_region.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return {
        "schema": FLEET_SCHEMA,
        "regions": [
            {"region": region,
             "sites": [site_data(s) for s in sorted(group, key=lambda s: s.name)],
             "totals": totals_data(group)}
            for region, group in regions
        ],
        "totals": totals_data(fleet.sites),
        "invalid": [{"file": bad.file, "error": bad.error, "problems": bad.problems}
                    for bad in fleet.invalid],
    }


def no_sites_error(directory: Path | None) -> InvalidInputError:
    where = str(directory) if directory is not None else ", ".join(str(r) for r in inventory_roots())
    return InvalidInputError(f"no site files (<dir>/*/{SITE_FILE_NAME}) under {where}")
