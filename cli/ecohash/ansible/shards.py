"""One playbook run as several ansible-runner jobs over disjoint slices of its hosts.

One ansible-playbook process handles every result of its run on one thread (ansible-core's
StrategyBase has one results thread), and forks do not lift that ceiling: independent
processes do. A wave of a rollout, or a drift check, is cut into slices; each slice is
one run_playbook (its own process and private data directory, `<directory>/shard-<k>`),
all of them at once in threads, and their results are merged into the one RunResult that
a single run would have given: the same hosts, stats and a status that hides no shard's
failure or cancelation.

Ansible's order between hosts holds only inside one job: bootstrap.yml brings the
Kubernetes servers up one at a time before any agent joins them. The servers of a run
therefore stay together in one slice (`together`), and a rollout never shards a wave
that holds a server (ecohash.rollout.provision), since its agents need those servers up.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path

from ecohash.ansible.runner import HostProgress, PlaybookRun, RunResult, new_run_directory, run_playbook

# The fewest nodes a default shard gets. Each shard pays its own ansible-playbook start,
# inventory parse included (2.4-3.2 s of CPU to the first task at 10,000 nodes:
# bench/results/inventory_scaling.txt), against ~3.5 s of controller CPU for each node it
# converges (ansible.cfg, forks): at 25 nodes the fixed cost is under 4% of a shard's work,
# while smaller slices would pay it again and again for little more parallelism. It also
# keeps a small site (the 4-node lab) in one job.
MIN_NODES_PER_SHARD = 25

# How a merged run reads when its shards ended differently: the worst one speaks for all.
# A canceled shard first (the run was stopped), then a failed one; "successful" only when
# every shard was.
_STATUS_RANK = {"canceled": 0, "failed": 1, "timeout": 2, "successful": 4}
_OTHER_STATUS_RANK = 3
# How often the waiting thread looks at the caller's cancel event.
_POLL_S = 0.2


def controller_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def shard_count(requested: int | None, nodes: int) -> int:
    """How many jobs `nodes` hosts run as: the request, or one per core but never slices
    smaller than MIN_NODES_PER_SHARD; never more jobs than nodes, never fewer than one.

    One per core: each shard's ansible-playbook has its one thread of result handling,
    the ceiling shards lift; more of them than cores would only take turns.
    """
    wanted = requested if requested is not None else min(controller_cores(), nodes // MIN_NODES_PER_SHARD)
    return max(1, min(wanted, nodes))


def slice_hosts(hosts: Sequence[str], shards: int, together: Collection[str] = ()) -> list[list[str]]:
    """`hosts` cut into at most `shards` disjoint, non-empty slices that cover them all.

    Slices are as even as allowed and keep the hosts' order (a site's order keeps racks
    and containers together); the hosts in `together` are all in the first slice.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    group = [name for name in hosts if name in together]
    rest = [name for name in hosts if name not in together]
    count = min(shards, len(rest) + (1 if group else 0))
    if count <= 1:
        return [list(hosts)] if hosts else []
    first_size = len(hosts) // count + (1 if len(hosts) % count else 0)
    taken = max(0, first_size - len(group))
    in_first = set(group) | set(rest[:taken])
    slices = [[name for name in hosts if name in in_first]]
    left = rest[taken:]
    others = count - 1
    start = 0
    for index in range(others):
        size = len(left) // others + (1 if index < len(left) % others else 0)
        slices.append(left[start:start + size])
        start += size
    return slices


def run_sharded(request: PlaybookRun, shards: int, on_update: Callable[[HostProgress], None],
                cancel: threading.Event | None = None, together: Collection[str] = ()) -> RunResult:
    """Run `request` as up to `shards` jobs over slices of its hosts, at once; merge the results.

    `on_update` is called from every shard's thread: it must be safe to call from several
    threads at once (ProgressView's is). Setting `cancel` stops every shard; a shard that
    raises stops the others too, and its error is raised once all have stopped. With one
    slice, or no host list to cut, this is run_playbook itself.
    """
    hosts = request.hosts
    slices = slice_hosts(hosts, shards, together) if hosts else []
    if len(slices) <= 1:
        return run_playbook(request, on_update, cancel)
    directory = request.directory or new_run_directory(request.site_name, request.playbook)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    requests = [replace(request, hosts=part, directory=directory / f"shard-{index}")
                for index, part in enumerate(slices, start=1)]
    stop = threading.Event()  # the shards' own: set by the caller's cancel or a broken shard
    results: list[RunResult | None] = [None] * len(requests)
    errors: list[BaseException] = []

    def shard(index: int) -> None:
        try:
            results[index] = run_playbook(requests[index], on_update, stop)
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=shard, args=(index,), name=f"shard-{index + 1}", daemon=True)
               for index in range(len(requests))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                if cancel is not None and cancel.is_set():
                    stop.set()
                thread.join(_POLL_S)
    except BaseException:
        # Interrupted while waiting (a second Ctrl-C): no shard may go on converging hosts.
        stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
    result = merge_results([r for r in results if r is not None], directory)
    (directory / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    return result


def merge_results(results: Sequence[RunResult], directory: Path) -> RunResult:
    """The shards' results as one run's: every host and stat, the worst status and its rc."""
    hosts: dict[str, HostProgress] = {}
    stats: dict[str, dict[str, int]] = {}
    for result in results:
        hosts.update(result.hosts)
        for key, per_host in result.stats.items():
            if isinstance(per_host, dict):
                stats.setdefault(key, {}).update(per_host)
    ordered = sorted(results, key=lambda r: _STATUS_RANK.get(r.status, _OTHER_STATUS_RANK))
    status = ordered[0].status if ordered else "successful"
    rc = next((r.rc for r in ordered if r.rc), 0)
    # An executor that died is the wave's reason even when other shards finished.
    reason = next((r.reason for r in ordered if r.reason), None)
    return RunResult(rc=rc, status=status, directory=directory, hosts=hosts, stats=stats, reason=reason)
