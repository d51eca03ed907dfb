"""The grid package's lab tests share one provisioned lab and leave fresh hosts behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.labhosts import ECOHASH, Lab


@pytest.fixture(scope="package")
def provisioned_lab(lab: Lab) -> Iterator[Lab]:
    """The lab's hosts provisioned once for every grid lab test, offline from the lab's bundle
    (the provision tests/bundle's offline test checks, shared); afterwards fresh hosts again,
    since the modules that follow (tests/lab, tests/roles) expect hosts nobody provisioned."""
    lab.provision_offline()
    try:
        yield lab
    finally:
        subprocess.run([ECOHASH, "curtail", "lab", "--release"], capture_output=True, timeout=300, check=False)
        lab.fresh()
