"""The lab's site registry, for role tests: Debian's docker-registry on the bridge, which
`ecohash lab up` starts and loads the lab's SIMULATED inference image into from its bundle.

The lab's site file names it, so bootstrap configures containerd for it and pre-pulls the
lab standard's image from it for real; `site_without_registry` takes the name out for a
while, for tests of a site that has none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ecohash.lab.layout import inventory_file
from ecohash.lab.lifecycle import registry_url
from ecohash.standard import NodeStandard, load_standard
from tests.labhosts import Lab

LAB_REGISTRY = registry_url()
REGISTRY_HOST = LAB_REGISTRY.split("://", 1)[1]


def lab_standard(lab: Lab) -> NodeStandard:
    """The SIMULATED node standard the lab's hosts are provisioned to (`lab up` writes it)."""
    return load_standard(lab.paths.standard_file)


@contextmanager
def site_without_registry() -> Iterator[None]:
    """The lab's site file names no registry for a while."""
    site_file = inventory_file()
    original = site_file.read_text()
    line = f"    registry: {LAB_REGISTRY}\n"
    assert original.count(line) == 1, original
    site_file.write_text(original.replace(line, ""))
    try:
        yield
    finally:
        site_file.write_text(original)
