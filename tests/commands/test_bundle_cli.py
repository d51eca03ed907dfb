"""`ecohash bundle`: keygen, pubkey, build, verify and load as an operator runs them."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

import ecohash.bundle
from ecohash.bundle import siteregistry
from ecohash.bundle.contents import ContentSources
from ecohash.bundle.items import Item
from ecohash.commands.main import cli
from ecohash.lab.base import base_rootfs
from ecohash.lab.layout import LabPaths
from tests.bundle.signed import CONTENTS, STANDARD, blob, write_items


def run(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def site(tmp_path, monkeypatch, write_site) -> Path:
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    return write_site()


@pytest.fixture
def collected(tmp_path, monkeypatch) -> list[tuple]:
    """bundle-content's collect(), replaced: it hands back CONTENTS as items and records its calls."""
    calls: list[tuple] = []
    items = write_items(tmp_path / "collected", CONTENTS)

    def collect(standard_file, site, work, *, models=False, sources=None) -> list[Item]:
        # Packages resolve in the lab's base, the only root file system ecohash makes.
        assert sources.base_root == base_rootfs(LabPaths.current())
        calls.append((standard_file, site and site.name, work, models))
        return items

    fake = types.ModuleType("ecohash.bundle.contents")
    fake.collect = collect
    fake.ContentSources = ContentSources
    monkeypatch.setitem(sys.modules, "ecohash.bundle.contents", fake)
    monkeypatch.setattr(ecohash.bundle, "contents", fake, raising=False)
    return calls


def test_keygen_prints_the_public_key_that_pubkey_prints_again(site, tmp_path):
    made = run("bundle", "keygen", site)
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith("untrusted comment: minisign public key ")
    secret = tmp_path / "state" / "secrets" / "tx-odessa" / "bundle-signing.key"
    assert made.stderr.startswith(f"{secret}: new secret key ")
    assert secret.read_text() not in made.stdout + made.stderr
    shown = run("bundle", "pubkey", site)
    assert (shown.exit_code, shown.stdout) == (0, made.stdout)
    again = run("bundle", "keygen", site)
    assert again.exit_code == 2
    assert again.stderr.startswith(f"ecohash: {secret}: site tx-odessa already has a bundle signing key")
    assert len(again.stderr.splitlines()) == 1


def test_pubkey_without_a_key_says_how_to_make_one(site, tmp_path):
    result = run("bundle", "pubkey", site)
    assert result.exit_code == 2
    assert "no bundle public key for site tx-odessa: `ecohash bundle keygen tx-odessa`" in result.stderr


def test_build_then_verify_a_sites_bundle(site, tmp_path, collected):
    run("bundle", "keygen", site)
    out = tmp_path / "bundle"
    built = run("bundle", "build", site, "-o", out)
    assert built.exit_code == 0, built.stderr
    assert built.stdout.startswith(f"{out}: 4 entries, 3 blobs (")
    assert collected == [(STANDARD, "tx-odessa", tmp_path / "state" / "bundle-work" / "tx-odessa", False)]
    verified = run("bundle", "verify", out, "--site", site)
    assert verified.exit_code == 0, verified.stderr
    assert verified.stdout.startswith(f"{out}: ok: signed by key ")
    assert ", 3 blobs (" in verified.stdout and ") checked" in verified.stdout


def test_verify_names_each_bad_blob_and_exits_2(site, tmp_path, collected):
    run("bundle", "keygen", site)
    out = tmp_path / "bundle"
    run("bundle", "build", site, "-o", out)
    k3s = blob(out, CONTENTS["files/k3s/v1.35.6+k3s1/k3s"])
    k3s.unlink()
    result = run("bundle", "verify", out, "--site", site)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"ecohash: {out}: 1 of 3 blobs missing, truncated or altered; the bundle is refused",
        f"ecohash: {k3s}: missing (files/k3s/v1.35.6+k3s1/k3s)",
    ]


def test_build_from_a_standard_signed_by_a_site_and_a_delta_checked_with_a_public_key_file(
        site, tmp_path, collected):
    public = tmp_path / "site.pub"
    public.write_text(run("bundle", "keygen", site).stdout)
    old, delta = tmp_path / "old", tmp_path / "delta"
    assert run("bundle", "build", "--standard", STANDARD, "--signer", site, "-o", old).exit_code == 0
    collected_items = write_items(tmp_path / "newer", {**CONTENTS, "files/k3s/v1.35.6+k3s1/k3s": b"new"})
    sys.modules["ecohash.bundle.contents"].collect = lambda *_args, **_kwargs: collected_items
    built = run("bundle", "build", "--standard", STANDARD, "--signer", site, "-o", delta, "--from", old)
    assert built.exit_code == 0, built.stderr
    assert built.stdout.splitlines()[1] == f"{delta}: a delta: 2 blobs are left to its base {old}"
    verified = run("bundle", "verify", delta, "--pubkey", public)
    assert verified.exit_code == 0, verified.stderr
    assert verified.stdout.splitlines()[1].startswith(f"{delta}: a delta: 2 blobs (")
    with_base = run("bundle", "verify", delta, "--pubkey", public, "--base", old)
    assert with_base.exit_code == 0 and len(with_base.stdout.splitlines()) == 1


@pytest.mark.parametrize(("arguments", "message"), [
    (("build", "-o", "x"), "give a SITE, or --standard FILE with --signer SITE"),
    (("build", "--standard", STANDARD, "-o", "x"), "--standard needs --signer SITE"),
    (("verify", "x"), "give --site SITE or --pubkey FILE"),
])
def test_refusals_are_one_line_and_exit_2(site, arguments, message):
    result = run("bundle", *arguments)
    assert result.exit_code == 2
    assert result.stderr == f"ecohash: {message}" + result.stderr.split(message, 1)[1]
    assert len(result.stderr.splitlines()) == 1


def test_load_hands_the_bundle_and_the_sites_mirror_to_the_loader(site, tmp_path, monkeypatch):
    calls, started = [], []

    def load_bundle(directory, loaded, *, mirror_root, registry_url, mirror_key, on_verified, allow_downgrade):
        calls.append((directory, loaded.name, mirror_root, registry_url, mirror_key, allow_downgrade))
        # Once verified: a bundle without images needs no registry, one with images does.
        on_verified(SimpleNamespace(entries=[SimpleNamespace(kind="deb")]))
        assert started == []
        on_verified(SimpleNamespace(entries=[SimpleNamespace(kind="deb"), SimpleNamespace(kind="image-layer")]))
        return SimpleNamespace(downgraded_from=None)

    def ensure_running(url, directory, log_file):
        started.append((url, directory, log_file))
        return SimpleNamespace(pid=4242)

    monkeypatch.setattr(siteregistry, "ensure_running", ensure_running)

    fake = types.ModuleType("ecohash.bundle.load")
    fake.load_bundle = load_bundle
    monkeypatch.setitem(sys.modules, "ecohash.bundle.load", fake)
    monkeypatch.setattr(ecohash.bundle, "load", fake, raising=False)
    result = run("bundle", "load", tmp_path / "bundle", site)
    assert result.exit_code == 0, result.stderr
    state = tmp_path / "state"
    assert calls == [(tmp_path / "bundle", "tx-odessa", state / "mirror" / "tx-odessa", "http://127.0.0.1:5000",
                      state / "secrets" / "tx-odessa" / "mirror-key", False)]
    registry = state / "registry" / "tx-odessa"
    assert started == [("http://127.0.0.1:5000", registry, registry / "registry.log")]
    assert "started docker-registry at http://127.0.0.1:5000 (pid 4242)" in result.stderr
    assert "ecohash-site-registry@.service" in result.stderr


def test_registry_becomes_docker_registry_with_ecohashs_config(site, tmp_path, monkeypatch):
    executed = []
    monkeypatch.setattr(siteregistry.os, "execvp", lambda file, argv: executed.append(argv))
    result = run("bundle", "registry", site, "--registry", "http://127.0.0.1:5055")
    assert result.exit_code == 0, result.stderr
    config = tmp_path / "state" / "registry" / "tx-odessa" / "config.yml"
    assert executed == [["docker-registry", "serve", str(config)]]
    written = yaml.safe_load(config.read_text())
    assert written["http"]["addr"] == "127.0.0.1:5055" and "auth" not in written


def test_registry_refuses_https_in_one_line(site):
    result = run("bundle", "registry", site, "--registry", "https://127.0.0.1:5055")
    assert result.exit_code == 2, result.stderr
    assert "plain http only" in result.stderr and len(result.stderr.splitlines()) == 1
