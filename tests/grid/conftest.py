"""The grid package's lab tests share one provisioned lab and leave fresh hosts behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.labhosts import Lab
from tests.roles.conftest import ECOHASH


@pytest.fixture(scope="package")
def provisioned_lab(lab: Lab) -> Iterator[Lab]:
    """The lab's hosts provisioned once for every grid lab test; afterwards fresh hosts again,
    since the modules that follow (tests/lab, tests/roles) expect hosts nobody provisioned."""
    lab.up()  # fresh hosts: whatever earlier tests left is not this package's to build on
    result = subprocess.run([ECOHASH, "provision", "lab"], capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield lab
    finally:
        subprocess.run([ECOHASH, "curtail", "lab", "--release"], capture_output=True, timeout=300, check=False)
        lab.up()
