"""Role tests' lab states: the lab bootstrapped from fresh (tests/roles/bootstraps.py),
and the shared rounds of faults, changes and check-mode runs on it (tests/roles/rounds.py).

The session's lab is started again (fresh hosts, about two seconds) so the roles meet
bare nodes however earlier lab tests left them; then the real CLI converges the site and
runs once more, and the installed collection a third time.
"""

from __future__ import annotations

import pytest

from tests.labhosts import Lab
from tests.roles import rounds
from tests.roles.bootstraps import Bootstrapped, run_bootstrap, run_installed_bootstrap


@pytest.fixture(scope="session")
def bootstrapped(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Bootstrapped:
    # Fresh hosts, nothing from earlier tests; and the site's executor, which bootstrap
    # never uses (it runs Ansible here), installed now for the executor's tests that follow.
    lab.up(executor=True)
    first = run_bootstrap()
    assert first.returncode == 0, first.output
    second = run_bootstrap()
    assert second.returncode == 0, second.output
    installed = run_installed_bootstrap(tmp_path_factory.mktemp("installed"))
    lab.changed_by = "bootstrap"
    return Bootstrapped(lab, first, second, installed)


@pytest.fixture(scope="session")
def faults(bootstrapped: Bootstrapped) -> rounds.FaultRounds:
    """The repair and failure rounds, and the run that heals them."""
    return rounds.fault_rounds(bootstrapped.lab)


@pytest.fixture(scope="session")
def changed_and_back(bootstrapped: Bootstrapped) -> rounds.ChangedAndBack:
    return rounds.changed_and_back(bootstrapped)


@pytest.fixture(scope="session")
def check_run(bootstrapped: Bootstrapped) -> rounds.CheckRun:
    return rounds.check_run(bootstrapped)
