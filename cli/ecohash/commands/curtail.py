"""`ecohash curtail start|status|release`: cut a site's draw to a grid target by lowering GPU caps,
and restore it."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TypedDict

import click

from ecohash.commands.options import CONTEXT_SETTINGS, console, json_option, load, print_json, site_argument
from ecohash.errors import InvalidInputError
from ecohash.summarise import problem_lines

_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
# The options that name a target; exactly one is given (see _one_target).
_TARGET_OPTIONS = ("--to", "--by", "--program")
# The legacy spelling's mode flags, and the subcommand each became.
_LEGACY_MODES = {"--release": "release", "--status": "status"}


class _TargetArgs(TypedDict, total=False):
    """grid.rule.target_for's keyword arguments for --to or --by: one of them."""

    to_mw: Decimal
    by_mw: Decimal
    by_pct: Decimal


class _CurtailGroup(click.Group):
    """`curtail start|release|status`, still accepting the one-command spelling of the last release.

    `ecohash curtail SITE --to 3` and `ecohash curtail SITE --release` are rewritten to
    their subcommand before parsing, so the old spelling runs exactly the new code (and is
    refused by exactly its checks), with one line on stderr naming the new spelling.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = _new_spelling(args, quiet=ctx.resilient_parsing)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the order of use: start, status, release


def _new_spelling(args: list[str], quiet: bool) -> list[str]:
    """The legacy arguments as the subcommand that replaced them; says so on stderr unless quiet."""
    modes = [flag for flag in _LEGACY_MODES if flag in args]
    if len(modes) > 1:
        raise InvalidInputError("give one of --release or --status, not both "
                                "(now: `ecohash curtail release SITE`, `ecohash curtail status SITE`)")
    subcommand = _LEGACY_MODES[modes[0]] if modes else "start"
    rest = [arg for arg in args if arg not in _LEGACY_MODES]
    if not quiet:
        shown = f"start SITE {' | '.join(_TARGET_OPTIONS)} ..." if subcommand == "start" else \
            f"{subcommand} SITE"
        click.echo(f"ecohash: `ecohash curtail SITE {modes[0] if modes else '--to|--by|--program'}` is "
                   f"deprecated and goes in the next release; use `ecohash curtail {shown}`", err=True)
    return [subcommand, *rest]


@click.group(cls=_CurtailGroup, context_settings=CONTEXT_SETTINGS)
def curtail() -> None:
    """Cut a site's draw to a grid target by lowering GPU caps; show it; release it.

    The target is the facility draw at the meter. Containers give power back by
    their flex tier, 3 first, then 2, then 1; flex 0 never goes below its planned
    caps. The rule: docs/grid.md. `ecohash grid watch` starts and ends the same
    events by itself, following the grid's signals.

    Example:

        ecohash curtail start tx-odessa --program ers-10 --dry-run

        ecohash curtail status tx-odessa

        ecohash curtail release tx-odessa --ramp 15m
    """


@curtail.command(context_settings=CONTEXT_SETTINGS,
                 short_help="Cut SITE's draw to a target: --to, --by or --program.")
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
              "change nothing (the GPUs' draw is read where the nodes answer).")
@click.option("--measured", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --dry-run: measured draw, a JSON object of node name to a list of W per "
                   "GPU, to say what the cut should save.")
@click.option("--settle", metavar="DURATION", help="How long a curtailment samples every GPU's draw "
              "after its caps are verified, waiting for the measured draw to go below the target. "
              "Default: 60s.")
@json_option
def start(site: str, to_mw: str | None, by: str | None, program: str | None, for_: str | None,
          dry_run: bool, measured: Path | None, settle: str | None, as_json: bool) -> None:
    """Cut SITE's draw to a grid target (--to, --by or --program) by lowering GPU caps.

    The target is the facility draw at the meter: --to MW, --by MW or --by P%
    below the planned facility draw (the plan's draw at its caps × PUE), or a
    program's. Containers give power back by their flex tier, 3 first, then 2,
    then 1; flex 0 never goes below its planned caps. Caps bound the draw with
    every GPU flat out. A target caps cannot reach exits with status 2, naming
    the lowest facility draw they can reach. The rule: docs/grid.md.

    For real, every GPU node gets its cap over SSH at once and every GPU's
    enforced limit is read back: exit 0 only when every GPU that answered
    enforces its cap. A node that does not answer is held at its last known
    cap and the others go lower. The event, its samples and its report are
    kept under the state directory (grid/SITE/events/ID/).

    Example:

        ecohash curtail start tx-odessa --program ers-10 --dry-run

        ecohash curtail start tx-odessa --by 20% --for 3h --dry-run --json

        ecohash curtail start tx-odessa --to 3.5 --settle 2m
    """
    _one_target(to_mw, by, program)
    if settle is not None and dry_run:
        raise InvalidInputError("--settle goes with a real curtailment, not --dry-run")
    if measured is not None and not dry_run:
        raise InvalidInputError("--measured goes with --dry-run")
    from ecohash.grid import actuate

    length = _duration("--for", for_) if for_ is not None else None
    if length is not None and length <= timedelta(0):
        raise InvalidInputError(f"--for: {for_!r} must be longer than 0")
    target_args: _TargetArgs = _target_args(to_mw, by) if program is None else {}

    settle_length = _duration("--settle", settle) if settle is not None else None

    loaded = load(site)
    from ecohash.budget import compile_budget

    compiled = compile_budget(loaded)
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
        request = actuate.CurtailRequest(
            loaded, compiled, target, program=chosen, duration=duration.length,
            settle_s=settle_length.total_seconds() if settle_length is not None else actuate.DEFAULT_SETTLE_S)
        outcome = actuate.start_event(request, display=_Display(as_json))
        _finish(outcome, outcome.lines, as_json)
        return
    unread: dict[str, str] = {}
    if measured is not None:
        draws: dict[str, list[float]] | None = read_measured(measured)
    else:
        # A live read where the nodes answer: what the cut saves depends on today's draw.
        draws, unread = actuate.read_draws(loaded, compiled)
    data = preview_data(compiled, solution, duration, chosen.name if chosen else None, draws or None)
    if unread:
        data["measured_not_read"] = _not_read(unread)
    if as_json:
        print_json("curtail-preview", data)
    else:
        print_preview(data, console())


@curtail.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@json_option
def status(site: str, as_json: bool) -> None:
    """Show SITE's curtailment event and its measured draw now.

    The event in force (or the last one, released or ended), its target, and
    every GPU node's draw read now over SSH, against the event's IT target. A
    node enforcing another cap than the event asks is named.

    Example:

        ecohash curtail status tx-odessa

        ecohash curtail status tx-odessa --json | jq .measured.below_target
    """
    from ecohash.budget import compile_budget
    from ecohash.grid import actuate

    loaded = load(site)
    _print_status(actuate.event_status(loaded, compile_budget(loaded)), as_json)


@curtail.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--ramp", metavar="DURATION", help="Restore in steps over this long (flex 1 first, "
              "flex 3 last). Default: the program's restore_minutes, else at once.")
@json_option
def release(site: str, ramp: str | None, as_json: bool) -> None:
    """End SITE's curtailment event: restore the planned caps.

    Every GPU node gets its planned cap back over SSH and the caps are read
    back: exit 0 only when every GPU that answered enforces its planned cap. A
    site with no event in force says so and exits 0.

    Example:

        ecohash curtail release tx-odessa

        ecohash curtail release tx-odessa --ramp 15m
    """
    from ecohash.budget import compile_budget
    from ecohash.grid import actuate

    ramp_length = _duration("--ramp", ramp) if ramp is not None else None
    loaded = load(site)
    released = actuate.release_event(loaded, compile_budget(loaded), ramp=ramp_length,
                                     display=_Display(as_json))
    if released is None:
        _finish(None, [f"site {loaded.name} has no curtailment event to release"], as_json)
        return
    _finish(released, released.lines, as_json)


def _one_target(to_mw: str | None, by: str | None, program: str | None) -> None:
    """The one check that --to, --by and --program exclude each other, and that one is given."""
    given = [name for name, value in zip(_TARGET_OPTIONS, (to_mw, by, program), strict=True)
             if value is not None]
    if len(given) != 1:
        raise InvalidInputError("give one of --to MW, --by MW, --by P% or --program NAME"
                                + (f" (got {' and '.join(given)})" if given else ""))


class _Display:
    """Progress lines as they come: on stdout, or on stderr when stdout is --json's."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def say(self, text: str) -> None:
        click.echo(text, err=self.as_json)


def _finish(outcome: Any, lines: list[str], as_json: bool) -> None:
    """Print the outcome (lines, or JSON) and exit 1 when a GPU that answered does not enforce its cap."""
    if as_json:
        data: dict[str, Any] = {"ok": outcome is None or outcome.ok, "messages": lines,
                                "event": outcome.event.as_dict() if outcome else None,
                                "report": str(outcome.report) if outcome and outcome.report else None}
        print_json("curtail-outcome", data)
    else:
        for line in lines:
            click.echo(line)
        if outcome is not None and outcome.report is not None:
            click.echo(f"event report: {outcome.report}")
    if outcome is not None and not outcome.ok:
        sys.exit(1)


def _not_read(unread: dict[str, str]) -> str:
    reasons = sorted(set(unread.values()))
    return f"{len(unread)} GPU node(s): {reasons[0]}" + (
        f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1 else "")


def _print_status(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json("curtail-status", data)
        return
    event, measured = data["event"], data["measured"]
    if event is None:
        click.echo(f"site {data['site']}: no curtailment event recorded")
    else:
        click.echo(f"curtailment event {event['id']} {data['state']}: {event['target_label']} "
                   f"(target {event['target_mw']:g} MW), since {event['start_at']} "
                   + (f"until {event['end_at']}" if event["end_at"] else "until released"))
    target = measured.get("it_target_w")
    against = (f" against the IT target {target / 1000:,.1f} kW: "
               + ("below" if measured["below_target"] else "ABOVE")) if target is not None else ""
    click.echo(f"measured IT draw now {measured['it_draw_w'] / 1000:,.1f} kW (facility "
               f"{measured['facility_draw_w'] / 1000:,.1f} kW){against}")
    by_name = {node["name"]: node for node in measured["nodes"]}
    unread = [(name, node.get("container", "-"), f"not read: {node.get('problem')}")
              for name, node in ((name, by_name.get(name, {})) for name in measured["unanswered"])]
    for line in problem_lines(unread):  # past 50 nodes, a line per container
        click.echo(line)
    for node in measured["nodes"] if data["state"] == "active" else []:
        asked = node["event_gpu_cap_w"]
        if asked is not None and node["enforced_w"] and any(round(w) != asked for w in node["enforced_w"]):
            click.echo(f"{node['name']}: enforces {', '.join(f'{w:g}' for w in node['enforced_w'])} W, "
                       f"the event asks {node['event_gpu_cap_w']} W")


def _duration(option: str, text: str) -> timedelta:
    from ecohash.grid.rule import parse_duration

    try:
        return parse_duration(text)
    except InvalidInputError as error:
        raise InvalidInputError(f"{option}: {error}") from None


def _target_args(to_mw: str | None, by: str | None) -> _TargetArgs:
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
