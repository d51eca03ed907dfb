"""`ecohash grid`: answer the grid's signals (OpenADR, 4CP-style schedules, price) on their own."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from ecohash.commands.options import CONTEXT_SETTINGS, load, site_argument
from ecohash.errors import InvalidInputError, Problem, ProblemsError


@click.group(context_settings=CONTEXT_SETTINGS)
def grid() -> None:
    """Follow the grid's signals and curtail a site with nobody at a keyboard.

    Example:

        ecohash grid watch tx-odessa

        ecohash grid watch lab --vtn http://127.0.0.1:8080/OpenADR2/Simple/2.0b --insecure-vtn --for 10m
    """


@grid.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--vtn", metavar="URL", help="The OpenADR VTN to register with, instead of the site "
              "file's spec.power.curtailment.openadr.vtn_url (for trying it out). It must be https and "
              "pinned by that section's ca_file or vtn_fingerprint, unless --insecure-vtn.")
@click.option("--ven-name", metavar="NAME", help="The VEN name to register under; default the site "
              "file's, else the site's name.")
@click.option("--insecure-vtn", is_flag=True, help="Follow a VTN that is plain http, or https "
              "pinned by neither ca_file nor vtn_fingerprint: anyone on the path could dispatch the "
              "site. Logged as a warning at every start.")
@click.option("--once", is_flag=True, help="Evaluate the schedules and prices once, act, and exit "
              "(no OpenADR).")
@click.option("--for", "for_", metavar="DURATION", help="Stop after this long, e.g. 90s, 15m, 8h.")
def watch(site: str, vtn: str | None, ven_name: str | None, insecure_vtn: bool, once: bool,
          for_: str | None) -> None:
    """Follow SITE's signal sources and start, change and end its curtailments.

    Sources: the site's OpenADR 2.0b VTN (spec.power.curtailment.openadr),
    each program's windows (with its peak alert) and its price trigger. The
    deepest cut asked for wins. Every decision is logged with its reason and
    correlation id on stderr and in the state directory's grid/SITE/watch.log.
    Stopping (SIGTERM, --for) leaves an event in force: its node overrides end
    at its end, and a new watcher resumes it. One watcher per site. Runs as a
    systemd service on a site controller: docs/grid-watch.md.

    Example:

        ecohash grid watch tx-odessa

        ecohash grid watch tx-odessa --once
    """
    from ecohash.budget import compile_budget
    from ecohash.grid import watch as watching
    from ecohash.grid.rule import parse_duration
    from ecohash.grid.vtn_trust import INSECURE_FLAG

    stop_after = parse_duration(for_).total_seconds() if for_ is not None else None
    if stop_after is not None and stop_after <= 0:
        raise InvalidInputError(f"--for: {for_!r} must be longer than 0")
    loaded = load(site)
    openadr = None if once else _openadr(loaded, vtn, ven_name, insecure_vtn)
    plan = compile_budget(loaded)
    with watching.watcher_lock(loaded.name):
        log = watching.DecisionLog(loaded.name, sys.stderr)
        actuator = watching.SiteActuator(loaded, plan)
        watcher = watching.Watcher(loaded, plan, [], actuator, log)
        watcher.sources, ven = watching.build_sources(loaded, openadr, watcher, actuator.measured_facility_w,
                                                      insecure_vtn=insecure_vtn)
        if not watcher.sources:
            raise InvalidInputError(f"site {loaded.name} has no signal source to follow: give a program "
                                    "windows or a price trigger, or spec.power.curtailment.openadr "
                                    "(or --vtn); docs/grid-watch.md")
        log("INFO", "-", f"watching site {loaded.name}: " + ", ".join(s.name for s in watcher.sources))
        _say_next_windows(watcher, log)
        if once:
            watcher.step()
        else:
            import asyncio

            asyncio.run(watching.run(watcher, ven, stop_after))
    # --insecure-vtn's warning at every start is the operator's choice, not a decision that failed.
    if any(line["level"] in ("ERROR", "WARNING") and not line["text"].startswith(INSECURE_FLAG)
           for line in log.lines):
        sys.exit(1)


def _openadr(site, vtn: str | None, ven_name: str | None, insecure_vtn: bool):
    """The site's OpenADR settings with --vtn and --ven-name over them; None when there are none.
    A VTN that is not pinned is refused here, naming where it was given, unless --insecure-vtn."""
    from ecohash.grid.vtn_trust import PIN_IT, SECTION, trust_problem
    from ecohash.inventory.model import OpenAdr

    configured = site.power.curtailment.openadr
    if configured is None and vtn is None:
        if ven_name is not None:
            raise InvalidInputError("--ven-name: the site has no spec.power.curtailment.openadr; "
                                    "give --vtn too")
        return None
    fields = configured.model_dump(exclude_none=True) if configured is not None else {"ven_name": site.name}
    if vtn is not None:
        fields["vtn_url"] = vtn
    if ven_name is not None:
        fields["ven_name"] = ven_name
    try:
        config = OpenAdr.model_validate(fields, strict=False)
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        where = {"vtn_url": "--vtn", "ven_name": "--ven-name"}.get(key, "openadr")
        raise InvalidInputError(f"{where}: {first['msg']}") from None
    problem = trust_problem(config)
    if problem is None or insecure_vtn:
        return config
    message = f"{config.vtn_url} {problem}; {PIN_IT}"
    if vtn is not None:
        raise InvalidInputError(f"--vtn: {message}")
    line = site.line_of([*SECTION.split("."), "vtn_url"])
    raise ProblemsError([Problem(str(site.file), line, f"{SECTION}.vtn_url: {message}")])


def _say_next_windows(watcher, log) -> None:
    """When each scheduled program's next window opens: a season set up wrong shows at once."""
    from ecohash.grid.schedule import ScheduleSource
    from ecohash.timestamps import utc_time

    now = watcher.clock()
    for source in watcher.sources:
        if isinstance(source, ScheduleSource):
            opens = source.next_start(now)
            log("INFO", "-", f"program {source.program.name}: next window opens "
                + (utc_time(opens) if opens is not None else "never"), source="schedule")
