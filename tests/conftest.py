"""Shared fixtures: a small valid site as text, a way to write variants of it, and the lab."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecohash import lab as lab_library
from ecohash.commands.options import WIDTH_WITHOUT_TERMINAL
from ecohash.lab import network
from ecohash.lab.layout import LabPaths
from tests.labhosts import LAB_CONTAINERS, LAB_NODES, Lab, lab_state_rank, lab_unavailable_reason

REPO = Path(__file__).resolve().parent.parent

# The example site. Line numbers in tests refer to this text.
EXAMPLE_SITE = """\
apiVersion: ecohash.io/v1
kind: Site
metadata:
  name: tx-odessa
  region: us-south
spec:
  power:
    grid_mw: 12.5
    reserve_pct: 5
    pue: 1.25
  network:
    mgmt_cidr: 10.20.0.0/20
  gpu_models:
    h100-sxm: {tdp_w: 700, min_cap_w: 200}
  skus:
    hgx-h100-8: {gpu: h100-sxm, gpus: 8, host_w: 2600}
  kubernetes:
    distribution: k3s
    servers: [c01-r01-n01]
  containers:
    - name: c01
      cooling: hydro
      power_kw: 1000
      cooling_kw: 950
      racks:
        - name: r01
          power_kw: 45
          nodes:
            - {name: c01-r01-n01, sku: hgx-h100-8, mgmt_ip: 10.20.1.11}
            - {name: "c01-r01-n{i:02d}", count: 3, start: 2, sku: hgx-h100-8, mgmt_ip: 10.20.1.12}
"""


@pytest.fixture
def write_site(tmp_path: Path) -> Callable[..., Path]:
    """Write site text (default: the example, with (old, new) replacements) to a file."""

    def write(text: str = EXAMPLE_SITE, *replacements: tuple[str, str], name: str = "site.yaml"
              ) -> Path:
        for old, new in replacements:
            assert old in text, f"test setup: {old!r} not in the site text"
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# The lab (tests/labhosts.py): one session-wide set of real hosts for lab, role and
# rollout tests, skipped with the reason where it cannot run, and its tests run grouped by
# the converged state they need so that each state is built once (a stable sort: within a
# group, the usual order).
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: lab_state_rank(getattr(item, "fixturenames", [])))
    reason = lab_unavailable_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def output_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are as wide as the terminal: tests read them at the width that output to no
    terminal gets, also in pytest-xdist's workers (`scripts/test --fast`), which are given
    COLUMNS=80."""
    monkeypatch.setenv("COLUMNS", str(WIDTH_WITHOUT_TERMINAL))


@pytest.fixture(autouse=True)
def own_state_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests other than the lab's keep ecohash's state in a directory of their own session's
    (or xdist worker's), not in the user's (or root's /var/lib/ecohash, where the lab keeps
    its hosts and rollout state): scripts/test runs them beside the lab's tests, and they
    must neither see its state nor change it.
    A test that sets ECOHASH_STATE_DIR itself still wins."""
    if request.node.get_closest_marker("lab") is None and "ECOHASH_STATE_DIR" not in os.environ:
        monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path_factory.getbasetemp() / "state"))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A lab of LAB_NODES hosts, shared by every test in the session."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    running = Lab(
        nodes=LAB_NODES,
        containers=LAB_CONTAINERS,
        paths=LabPaths.current(),
        run_netns_was_mounted=network.run_netns_is_mounted(),
    )
    running.up()
    try:
        yield running
    finally:
        lab_library.down()


@pytest.fixture(scope="module")
def provisioned_lab(lab: Lab) -> Lab:
    """The lab offline (no apt proxy; everything from its bundle) and provisioned by the real
    CLI, once for every module that asks while nothing else rebuilt it (Lab.provision_offline)."""
    lab.provision_offline()
    return lab
