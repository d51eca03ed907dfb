"""`ecohash curtail`: cut a site's draw to a grid target by lowering GPU caps, and restore it."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import click

from ecohash.commands.options import CONTEXT_SETTINGS, console, json_option, load, print_json, site_argument
from ecohash.errors import InvalidInputError

_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
# The options that say what to do; exactly one is given.
_MODES = ("--to", "--by", "--program", "--release", "--status")


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--to", "to_mw", metavar="MW", help="Target: the site's facility draw at the meter, MW.")
@click.option("--by", "by", metavar="MW|P%",
              help="Target: this many MW, or this percentage, below the planned facility draw.")
@click.option("--program", metavar="NAME", help="Target, duration and ramp from one of the site's "
              "curtailment programs (spec.power.curtailment.programs).")
@click.option("--for", "for_", metavar="DURATION",
              help="How long the event lasts, e.g. 90s, 15m, 3h, 1h30m. Default: the program's "
                   "max_hours, else until released.")
@click.option("--dry-run", is_flag=True, help="Show what the event would set, draw and keep; "
              "contact nothing.")
@click.option("--measured", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --dry-run: measured draw, a JSON object of node name to a list of W per "
                   "GPU, to say what the cut should save.")
@click.option("--release", is_flag=True, help="End the active event: restore the planned caps.")
@click.option("--ramp", metavar="DURATION", help="With --release: restore in steps over this long "
              "(flex 1 first, flex 3 last). Default: the program's restore_minutes, else at once.")
@click.option("--status", is_flag=True, help="Show the active event and the site's measured draw now.")
@json_option
def curtail(site: str, to_mw: str | None, by: str | None, program: str | None, for_: str | None,
            dry_run: bool, measured: Path | None, release: bool, ramp: str | None, status: bool,
            as_json: bool) -> None:
    """Cut SITE's draw to a grid target by lowering GPU caps; release it; show it.

    The target is the facility draw at the meter: --to MW, --by MW or --by P%
    below the planned facility draw (the plan's draw at its caps × PUE), or a
    program's. Containers give power back by their flex tier, 3 first, then 2,
    then 1; flex 0 never goes below its planned caps. Caps bound the draw with
    every GPU flat out. A target caps cannot reach exits with status 2, naming
    the lowest facility draw they can reach. The rule: docs/grid.md.

    Example:

        ecohash curtail tx-odessa --program ers-10 --dry-run

        ecohash curtail tx-odessa --by 20% --for 3h --dry-run --json

        ecohash curtail tx-odessa --release --ramp 15m
    """
    given = [name for name, value in zip(_MODES, (to_mw, by, program, release, status), strict=True)
             if value]
    if len(given) != 1:
        raise InvalidInputError(
            "give one of --to MW, --by MW, --by P%, --program NAME, --release or --status"
            + (f" (got {' and '.join(given)})" if given else ""))
    mode = given[0]
    _only_with(mode, ("--to", "--by", "--program"), for_=for_, dry_run=dry_run)
    _only_with(mode, ("--release",), ramp=ramp)
    if measured is not None and not dry_run:
        raise InvalidInputError("--measured goes with --dry-run")
    from ecohash.grid import actuate

    ramp_length = _duration("--ramp", ramp) if ramp is not None else None
    length = _duration("--for", for_) if for_ is not None else None
    if length is not None and length <= timedelta(0):
        raise InvalidInputError(f"--for: {for_!r} must be longer than 0")
    target_args = _target_args(to_mw, by) if mode in ("--to", "--by") else {}

    loaded = load(site)
    if mode == "--status":
        actuate.event_status(loaded, as_json=as_json)
        return
    from ecohash.budget import compile_budget

    compiled = compile_budget(loaded)
    if mode == "--release":
        actuate.release_event(compiled, ramp=ramp_length, as_json=as_json)
        return
    from ecohash.grid.preview import Duration, preview_data, print_preview, read_measured
    from ecohash.grid.rule import find_program, program_target, solve, target_for

    chosen = find_program(loaded, program) if program is not None else None
    target = program_target(compiled, chosen) if chosen else target_for(compiled, **target_args)
    duration = Duration(length, "--for") if length is not None else Duration(None, "")
    if chosen is not None and chosen.max_hours is not None:
        most = timedelta(seconds=float(Fraction(chosen.max_hours) * 3600))
        if length is not None and length > most:
            raise InvalidInputError(f"--for {for_} is longer than program {chosen.name}'s max_hours "
                                    f"({chosen.max_hours})")
        if length is None:
            duration = Duration(most, f"program {chosen.name}'s max_hours")
    solution = solve(compiled, target)
    if not dry_run:
        actuate.start_event(compiled, solution, program=chosen, duration=duration.length,
                            as_json=as_json)
        return
    data = preview_data(compiled, solution, duration, chosen.name if chosen else None,
                        read_measured(measured) if measured is not None else None)
    if as_json:
        print_json(data)
    else:
        print_preview(data, console())


def _only_with(mode: str, modes: tuple[str, ...], **options: object) -> None:
    """Refuse an option given with a mode it means nothing in."""
    for name, value in options.items():
        if value and mode not in modes:
            option = "--" + name.rstrip("_").replace("_", "-")
            allowed = modes[0] if len(modes) == 1 else f"{', '.join(modes[:-1])} or {modes[-1]}"
            raise InvalidInputError(f"{option} goes with {allowed}, not {mode}")


def _duration(option: str, text: str) -> timedelta:
    from ecohash.grid.rule import parse_duration

    try:
        return parse_duration(text)
    except InvalidInputError as error:
        raise InvalidInputError(f"{option}: {error}") from None


def _target_args(to_mw: str | None, by: str | None) -> dict[str, Decimal]:
    """--to MW, --by MW or --by P% as target_for's keyword arguments; one line on a bad value."""
    if to_mw is not None:
        return {"to_mw": _positive("--to", to_mw, "a number of MW such as 9.5")}
    assert by is not None
    if by.endswith("%"):
        pct = _positive("--by", by[:-1], "a number of MW such as 2 or a percentage such as 20%",
                        shown=by)
        if pct >= 100:
            raise InvalidInputError(f"--by: a percentage must be below 100% (got {by})")
        return {"by_pct": pct}
    return {"by_mw": _positive("--by", by, "a number of MW such as 2 or a percentage such as 20%")}


def _positive(option: str, text: str, what: str, shown: str | None = None) -> Decimal:
    shown = text if shown is None else shown
    if not _NUMBER.fullmatch(text):
        raise InvalidInputError(f"{option}: {shown!r} is not {what}")
    value = Decimal(text)
    if value <= 0:
        raise InvalidInputError(f"{option}: must be greater than 0 (got {shown})")
    return value
