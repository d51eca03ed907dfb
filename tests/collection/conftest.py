"""One build and one install of the collection for the whole session (seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.collection.build import build_collection, install_collection


@pytest.fixture(scope="session")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_collection(tmp_path_factory.mktemp("built"))


@pytest.fixture(scope="session")
def collections(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty collections path with only the built collection installed in it."""
    path = tmp_path_factory.mktemp("collections")
    install_collection(tarball, path)
    return path
