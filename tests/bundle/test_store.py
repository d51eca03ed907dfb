"""The site's blob store: only bytes that hash to their name get in, and none is trusted by its name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ecohash.bundle.manifest import BundleInvalidError
from ecohash.bundle.store import fill_store
from tests.bundle.loadhelpers import HandBundle

K3S = b"#!/bin/sh\necho SIMULATED k3s\n"


def a_bundle(directory: Path) -> HandBundle:
    bundle = HandBundle(directory)
    bundle.add("file", "files/k3s/v1.0.0/k3s", K3S)
    bundle.add("file", "files/notes", b"notes\n")
    return bundle


def test_blobs_are_copied_in_read_only_with_their_bytes(tmp_path: Path) -> None:
    bundle = a_bundle(tmp_path / "bundle")
    store = tmp_path / "store"
    assert fill_store(bundle.directory, bundle.entries, store) == 2
    stored = store / hashlib.sha256(K3S).hexdigest()
    assert stored.read_bytes() == K3S
    assert stored.stat().st_mode & 0o777 == 0o444
    assert sorted(os.listdir(store)) == sorted(e.sha256 for e in bundle.entries)  # no .partial left
    assert fill_store(bundle.directory, bundle.entries, store) == 0


def test_a_blob_that_grows_while_it_is_copied_is_refused_without_reading_it_to_its_end(tmp_path: Path) -> None:
    bundle = a_bundle(tmp_path / "bundle")
    grown = bundle.directory / "blobs" / "sha256" / hashlib.sha256(K3S).hexdigest()
    grown.write_bytes(K3S + b"x" * (4 << 20))  # after verify: the disk serves more
    with pytest.raises(BundleInvalidError, match=rf"^{grown}: changed since it was verified: longer than "
                                                 rf"{len(K3S)} bytes \(files/k3s/v1.0.0/k3s\)"):
        fill_store(bundle.directory, bundle.entries, tmp_path / "store")
    assert not (tmp_path / "store" / grown.name).exists()


def test_a_deltas_base_blob_altered_in_the_store_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    store = tmp_path / "store"
    base = a_bundle(tmp_path / "base")
    fill_store(base.directory, base.entries, store)
    stored = store / hashlib.sha256(K3S).hexdigest()
    stored.chmod(0o644)
    stored.write_bytes(K3S.upper())
    delta = a_bundle(tmp_path / "delta")
    delta.add("file", "files/new", b"new\n")
    (delta.directory / "blobs" / "sha256" / stored.name).unlink()  # left to its base
    with pytest.raises(BundleInvalidError) as refused:
        fill_store(delta.directory, delta.entries, store)
    assert str(refused.value) == (
        f"{stored}: altered in the site's blob store: its sha256 is {hashlib.sha256(K3S.upper()).hexdigest()} "
        "(files/k3s/v1.0.0/k3s); refused, nothing was switched: remove it, then load a bundle that carries it")
    assert not (store / hashlib.sha256(b"new\n").hexdigest()).exists()


def test_a_link_in_the_store_is_not_followed(tmp_path: Path) -> None:
    bundle = a_bundle(tmp_path / "bundle")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "right-bytes").write_bytes(K3S)
    (store / hashlib.sha256(K3S).hexdigest()).symlink_to(tmp_path / "right-bytes")
    with pytest.raises(BundleInvalidError, match="not a regular file but a symbolic link"):
        fill_store(bundle.directory, bundle.entries, store)
