"""`ecohash bundle load` as a trust boundary: a bundle whose bytes change after verify, a store
blob altered, a bundle for another site, from another standard, or older than what the site
runs is refused in one line with exit 2, against a real store, and `current` stays as it was."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ecohash.bundle.load
from ecohash.bundle import keys
from ecohash.bundle.build import build_bundle
from ecohash.bundle.manifest import Manifest
from ecohash.commands.main import cli
from ecohash.inventory.loader import load_site
from ecohash.standard import load_standard, standard_file_of
from tests.bundle.signed import CONTENTS, STANDARD, blob, resign, write_items

# No .deb: the release's apt index would need a real package, and none is about apt here.
FIRST = {destination: data for destination, data in CONTENTS.items() if not destination.startswith("apt/")}
EXTRA = b"only the second bundle carries this\n"
NEWER = {**FIRST, "files/extra/notes.txt": EXTRA}
K3S = FIRST["files/k3s/v1.35.6+k3s1/k3s"]


@pytest.fixture(scope="module")
def mirror_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mirror-key") / "gnupg"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_site: Callable[..., Path]) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    keys.keygen("tx-odessa")
    return write_site()


class Mirror:
    """A site's mirror with a first bundle loaded: what each refusal must leave as it is."""

    def __init__(self, tmp_path: Path, site: Path, mirror_key: Path) -> None:
        self.tmp_path, self.site, self.key = tmp_path, site, mirror_key
        self.root = tmp_path / "mirror"
        first = self.build("first", FIRST)
        loaded = self.load(first)
        assert loaded.exit_code == 0, loaded.stderr
        self.current = os.readlink(self.root / "current")
        self.releases = sorted(os.listdir(self.root / "releases"))

    def build(self, name: str, contents: dict[str, bytes], *, site_name: str | None = "tx-odessa",
              standard: Path = STANDARD) -> Path:
        items = write_items(self.tmp_path / f"{name}-items", contents)
        build_bundle(items, self.tmp_path / name, standard_file=standard, site_name=site_name,
                     key=keys.load_secret("tx-odessa"))
        return self.tmp_path / name

    def load(self, bundle: Path, *options: str) -> Result:
        arguments = ["bundle", "load", bundle, self.site, "--mirror-root", self.root, "--mirror-key", self.key,
                     *options]
        return CliRunner().invoke(cli, [str(a) for a in arguments], catch_exceptions=False)

    def assert_refused(self, result: Result, message: str) -> None:
        assert (result.exit_code, result.stderr) == (2, f"ecohash: {message}\n")
        assert os.readlink(self.root / "current") == self.current
        assert sorted(os.listdir(self.root / "releases")) == self.releases


@pytest.fixture
def mirror(tmp_path: Path, site: Path, mirror_key: Path) -> Mirror:
    return Mirror(tmp_path, site, mirror_key)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def after_verify(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """Run `change` on the bundle once verify has passed, as a disk that serves other bytes later."""
    verify = ecohash.bundle.load.verify_bundle

    def verify_then_change(directory: Path, public_key: keys.PublicKey) -> Manifest:
        manifest = verify(directory, public_key)
        change()
        return manifest

    monkeypatch.setattr(ecohash.bundle.load, "verify_bundle", verify_then_change)


@pytest.mark.parametrize("swap", ["other bytes", "a FIFO", "a link"])
def test_a_blob_that_changes_after_verify_is_refused(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    bundle = mirror.build("second", NEWER)
    extra = blob(bundle, EXTRA)
    other = EXTRA.upper()  # the same size: only the hash can tell

    def change() -> None:
        extra.unlink()
        if swap == "other bytes":
            extra.write_bytes(other)
        elif swap == "a FIFO":
            os.mkfifo(extra)  # a load that opened it to read would wait for a writer forever
        else:
            (mirror.tmp_path / "elsewhere").write_bytes(other)
            extra.symlink_to(mirror.tmp_path / "elsewhere")

    after_verify(monkeypatch, change)
    problem = {"other bytes": f"changed since it was verified: its sha256 is {sha256(other)}",
               "a FIFO": "not a regular file but a FIFO",
               "a link": "not a regular file but a symbolic link"}[swap]
    mirror.assert_refused(mirror.load(bundle),
                          f"{extra}: {problem} (files/extra/notes.txt); the bundle is refused, nothing was "
                          "switched")
    assert not (mirror.root / "blobs" / "sha256" / sha256(EXTRA)).exists()
    assert not (mirror.root / "blobs" / "sha256" / sha256(other)).exists()


def test_a_blob_altered_in_the_sites_store_is_refused_before_a_release_links_it(mirror: Mirror) -> None:
    stored = mirror.root / "blobs" / "sha256" / sha256(K3S)
    stored.chmod(0o644)
    stored.write_bytes(b"X" + K3S[1:])
    bundle = mirror.build("second", NEWER)
    mirror.assert_refused(mirror.load(bundle),
                          f"{stored}: altered in the site's blob store: its sha256 is {sha256(b'X' + K3S[1:])} "
                          "(files/k3s/v1.35.6+k3s1/k3s); refused, nothing was switched: remove it, then load "
                          "this bundle again")
    assert not (mirror.root / "blobs" / "sha256" / sha256(EXTRA)).exists()  # nothing copied either


def test_a_bundle_for_another_site_is_refused(mirror: Mirror) -> None:
    bundle = mirror.build("second", NEWER, site_name="ga-dalton")
    mirror.assert_refused(mirror.load(bundle),
                          f"{bundle}: built for site ga-dalton, not tx-odessa; refused, nothing was loaded")


def test_a_bundle_from_another_standard_than_the_sites_lock_is_refused_naming_both(mirror: Mirror) -> None:
    other = mirror.tmp_path / "other-standard.lock.yml"
    other.write_bytes(STANDARD.read_bytes() + b"# edited after the site was locked\n")
    bundle = mirror.build("second", NEWER, standard=other)
    lock = standard_file_of(load_site(mirror.site))
    name = load_standard(other).metadata.name
    mirror.assert_refused(mirror.load(bundle),
                          f"{bundle}: built from standard {name} (sha256 {sha256(other.read_bytes())}), but site "
                          f"tx-odessa is locked to {lock} (sha256 {sha256(lock.read_bytes())}, named at {lock}); "
                          "refused, nothing was loaded")


def test_a_standard_bundle_loads_into_a_site_whose_lock_it_matches(mirror: Mirror) -> None:
    bundle = mirror.build("second", NEWER, site_name=None)
    result = mirror.load(bundle)
    assert result.exit_code == 0, result.stderr
    assert os.readlink(mirror.root / "current") != mirror.current


def test_an_older_bundle_is_refused_and_loads_with_allow_downgrade_logged(mirror: Mirror) -> None:
    bundle = mirror.build("older", NEWER)
    resign(bundle, keys.load_secret("tx-odessa"), "2020-01-01T00:00:00Z")
    running = (mirror.root / "current" / "manifest.json").read_text().split('"created": "')[1][:20]
    mirror.assert_refused(mirror.load(bundle),
                          f"{bundle}: created 2020-01-01T00:00:00Z, before the release the site runs "
                          f"({running}, {mirror.current}); refused, nothing was loaded: it would roll the site "
                          "back (--allow-downgrade loads it on purpose)")

    allowed = mirror.load(bundle, "--allow-downgrade")
    assert allowed.exit_code == 0, allowed.stderr
    assert allowed.stderr == (f"{bundle}: a downgrade: the site ran a release created {running}; loaded with "
                              "--allow-downgrade (logged in loads.log)\n")
    release = os.readlink(mirror.root / "current")
    assert release != mirror.current
    logged = (mirror.root / "loads.log").read_text().splitlines()
    assert logged[-1].endswith(f" current -> {release} (created 2020-01-01T00:00:00Z) from {bundle}; was "
                               f"{mirror.current} (created {running}): a DOWNGRADE, loaded with --allow-downgrade")
    assert "DOWNGRADE" not in logged[0]  # the first load, an upgrade from nothing
