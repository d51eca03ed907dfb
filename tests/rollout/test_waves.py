"""Waves: the canary takes the servers and one node per container; batches follow serial."""

from __future__ import annotations

from ecohash.rollout.waves import WaveNode, batch_sizes, plan_waves


def nodes(*specs: str) -> list[WaveNode]:
    # "c01/n1*" is node n1 in container c01, a Kubernetes server when starred.
    return [WaveNode(spec.split("/")[1].rstrip("*"), spec.split("/")[0], spec.endswith("*")) for spec in specs]


def test_canary_holds_the_servers_and_one_node_of_every_container_without_one() -> None:
    site = nodes("c01/a1*", "c01/a2", "c01/a3", "c02/b1", "c02/b2", "c03/d1", "c03/d2*")
    waves = plan_waves(site, 2)
    assert waves[0].name == "canary"
    # c01 and c03 have a server in the canary already; c02 gets its first node.
    assert waves[0].nodes == ("a1", "d2", "b1")
    assert [w.nodes for w in waves[1:]] == [("a2", "a3"), ("b2", "d1")]
    assert [w.index for w in waves] == [1, 2, 3]


def test_more_canary_nodes_per_container_and_no_canary() -> None:
    site = nodes("c01/a1", "c01/a2", "c01/a3", "c02/b1", "c02/b2")
    assert plan_waves(site, 10, canary_per_container=2)[0].nodes == ("a1", "a2", "b1", "b2")
    waves = plan_waves(site, 10, canary_per_container=0)
    assert [(w.name, w.nodes) for w in waves] == [("wave 1", ("a1", "a2", "a3", "b1", "b2"))]


def test_every_node_is_in_exactly_one_wave() -> None:
    site = nodes(*(f"c{c:02d}/n{c}-{i}" for c in range(1, 6) for i in range(37)))
    waves = plan_waves(site, "10%")
    names = [name for wave in waves for name in wave.nodes]
    assert sorted(names) == sorted(node.name for node in site)
    assert len(names) == len(set(names))


def test_batch_sizes_follow_ansible_serial() -> None:
    assert batch_sizes(3, 10) == [3, 3, 3, 1]
    assert batch_sizes("25%", 10) == [2, 2, 2, 2, 2]  # 25% of 10 rounds down to 2
    assert batch_sizes("1%", 10) == [1] * 10  # never less than one
    assert batch_sizes([1, "50%"], 10) == [1, 5, 4]  # the last entry repeats
    assert batch_sizes(5, 0) == []
