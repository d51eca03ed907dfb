"""`ecohash bundle`: everything a site needs, signed, carried on a disk, verified, and loaded."""

from __future__ import annotations

from pathlib import Path

import click

from ecohash.commands.options import CONTEXT_SETTINGS, load, site_argument
from ecohash.errors import InvalidInputError

_directory = click.Path(path_type=Path, file_okay=False)
_file = click.Path(path_type=Path, dir_okay=False)


@click.group(context_settings=CONTEXT_SETTINGS)
def bundle() -> None:
    """Build a site's offline bundle at the office; verify and load it at the site.

    A bundle is a directory: manifest.json (every blob's sha256, size and
    destination), its minisign signature by the site's key, and
    blobs/sha256/. See docs/bundle.md.

    Example:

        ecohash bundle keygen tx-odessa

        ecohash bundle build tx-odessa -o /media/disk/tx-odessa-2026.11

        ecohash bundle verify /media/disk/tx-odessa-2026.11 --site tx-odessa
    """


@bundle.command(context_settings=CONTEXT_SETTINGS)
@site_argument
def keygen(site: str) -> None:
    """Make SITE's bundle signing key pair; print the public key.

    The secret key stays 0600 in the state's secrets/SITE/ and never goes into a
    bundle; copy the public key (bundle-signing.pub, or this output) to the
    site controller's secrets/SITE/. An existing key is never replaced.

    Example:

        ecohash bundle keygen tx-odessa
    """
    from ecohash.bundle import keys

    name = load(site).name
    public = keys.keygen(name)
    click.echo(f"{keys.secret_key_file(name)}: new secret key {public.key_id_text} (0600; never copy it)",
               err=True)
    click.echo(public.text(), nl=False)


@bundle.command(context_settings=CONTEXT_SETTINGS)
@site_argument
def pubkey(site: str) -> None:
    """Print SITE's bundle public key in minisign's format.

    Example:

        ecohash bundle pubkey tx-odessa > tx-odessa.pub

        minisign -Vm BUNDLE/manifest.json -p tx-odessa.pub
    """
    from ecohash.bundle import keys

    click.echo(keys.load_public(load(site).name).text(), nl=False)


@bundle.command(context_settings=CONTEXT_SETTINGS)
@click.argument("site", metavar="[SITE]", required=False)
@click.option("--standard", type=_file, metavar="FILE",
              help="Bundle this node standard rather than a site's (with --signer).")
@click.option("--signer", metavar="SITE", help="With --standard: the site whose key signs the bundle.")
@click.option("-o", "--output", "out", type=_directory, required=True, metavar="DIR",
              help="The bundle directory: new, empty, or a bundle to finish or update.")
@click.option("--models", is_flag=True, help="Also carry the services' model weights (tens of GB).")
@click.option("--from", "base", type=_directory, metavar="OLD",
              help="A bundle the site has loaded: write only the blobs it lacks (a delta).")
@click.option("--deb", "debs", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A local .deb, or a directory of them, for packages no reachable upstream carries "
              "(NVIDIA's; the lab's SIMULATED ones); each must be at the standard's pinned version. "
              "Repeatable.")
def build(site: str | None, standard: Path | None, signer: str | None, out: Path, models: bool,
          base: Path | None, debs: tuple[Path, ...]) -> None:
    """Collect everything SITE's node standard needs into a signed bundle in DIR.

    OS packages with their dependencies, binaries and charts by sha256, images
    by digest, the executor's wheels, and with --models the weights; every pin
    is checked. Run it again over DIR to finish an interrupted build: blobs
    already there are kept.

    Example:

        ecohash bundle build tx-odessa -o /media/disk/tx-odessa-2026.11

        ecohash bundle build tx-odessa -o /media/disk/12 --from /media/disk/11

        ecohash bundle build --standard FILE --signer lab -o /tmp/lab-bundle

        ecohash bundle build tx-odessa -o /media/disk/12 --deb ~/nvidia-550-debs/

        ecohash bundle build lab -o /tmp/lab-bundle --deb /var/lib/ecohash/lab/run/simulated-debs
    """
    from ecohash.bundle import blobs, keys
    from ecohash.bundle.build import build_bundle
    from ecohash.paths import state_dir
    from ecohash.standard import standard_file_of

    if standard is None:
        if site is None:
            raise InvalidInputError("give a SITE, or --standard FILE with --signer SITE")
        if signer is not None:
            raise InvalidInputError("--signer goes with --standard; a SITE's own key signs its bundle")
        bundled_site = signing_site = load(site)
        standard = standard_file_of(bundled_site)
    else:
        if site is not None:
            raise InvalidInputError("give a SITE or --standard FILE, not both")
        if signer is None:
            raise InvalidInputError("--standard needs --signer SITE: the site whose key signs the bundle")
        bundled_site, signing_site = None, load(signer)
    key = keys.load_secret(signing_site.name)
    # Downloads are kept between builds, so an interrupted build does not fetch them again.
    work = state_dir() / "bundle-work" / signing_site.name
    items = _collect(standard, bundled_site, work, models, debs)
    manifest = build_bundle(items, out, standard_file=standard,
                            site_name=bundled_site.name if bundled_site else None, key=key, base=base)
    here = {sha256: size for sha256, size in manifest.blobs().items()
            if blobs.blob_path(out, sha256).exists()}
    click.echo(f"{out}: {len(manifest.entries)} entries, {len(here)} blobs "
               f"({human_bytes(sum(here.values()))}), signed by {signing_site.name}'s key "
               f"{key.public.key_id_text}")
    if manifest.base_manifest_sha256:
        click.echo(f"{out}: a delta: {len(manifest.blobs()) - len(here)} blobs are left to its base {base}")


def _collect(standard_file: Path, site, work: Path, models: bool, debs: tuple[Path, ...]) -> list:
    # bundle-content's collectors pull in network clients; only `build` needs them.
    from ecohash.bundle import contents
    from ecohash.lab import labbundle
    from ecohash.lab.base import base_rootfs
    from ecohash.lab.layout import LabPaths

    # Packages resolve in the lab's base: a root file system of the nodes' OS, as installed.
    base = base_rootfs(LabPaths.current())
    sources = contents.ContentSources(base_root=base, debs=debs)
    if not labbundle.is_lab_site(site, standard_file):
        return contents.collect(standard_file, site, work, models=models, sources=sources)
    lab = labbundle.collect(site, standard_file, work, sources, models=models)
    click.echo(lab.note, err=True)
    return lab.items


@bundle.command(context_settings=CONTEXT_SETTINGS)
@click.argument("directory", metavar="DIR", type=_directory)
@click.option("--site", metavar="SITE", help="Check the signature with SITE's public key (secrets/SITE/).")
@click.option("--pubkey", type=_file, metavar="FILE",
              help="Check the signature with this minisign public key.")
@click.option("--base", type=_directory, metavar="OLD",
              help="For a delta: also check the blobs it leaves to OLD, in OLD.")
def verify(directory: Path, site: str | None, pubkey: Path | None, base: Path | None) -> None:
    """Check DIR's signature, then every blob; name each missing, truncated or altered one.

    Exits 2 when anything is wrong. Nothing in DIR is read before its
    signature verifies.

    Example:

        ecohash bundle verify /media/disk/tx-odessa-2026.11 --site tx-odessa

        ecohash bundle verify /media/disk/12 --pubkey site.pub --base /media/disk/11
    """
    from ecohash.bundle import keys
    from ecohash.bundle.verify import check_bundle

    if site is not None and pubkey is None:
        public = keys.load_public(load(site).name)
    elif pubkey is not None and site is None:
        public = keys.read_public(pubkey)
    else:
        raise InvalidInputError("give --site SITE or --pubkey FILE: the key the bundle must be signed with")
    result = check_bundle(directory, public, base)
    blobs = result.manifest.blobs()
    click.echo(f"{directory}: ok: signed by key {public.key_id_text}, "
               f"{len(blobs) - len(result.from_base)} blobs ({human_bytes(result.checked_bytes)}) checked")
    if result.from_base:
        click.echo(f"{directory}: a delta: {len(result.from_base)} blobs "
                   f"({human_bytes(sum(blobs[s] for s in result.from_base))}) are its base's "
                   f"(manifest sha256 {result.manifest.base_manifest_sha256}), not checked: --base OLD "
                   "checks them")


@bundle.command("load", context_settings=CONTEXT_SETTINGS)
@click.argument("directory", metavar="DIR", type=_directory)
@site_argument
@click.option("--mirror-root", type=_directory, metavar="DIR",
              help="The site mirror's directory; default the state's mirror/SITE.")
@click.option("--registry", metavar="URL", help="The site registry to push images to; default the site "
              "file's spec.provisioning.registry, else http://127.0.0.1:5000. Where none answers and "
              "the address is this machine's, ecohash starts Debian's docker-registry there.")
@click.option("--mirror-key", type=_directory, metavar="DIR",
              help="The GnuPG home of the mirror's signing key; default the state's secrets/SITE/mirror-key.")
@click.option("--allow-downgrade", is_flag=True,
              help="Load a bundle older than the release the site runs; logged in the mirror's loads.log.")
def load_command(directory: Path, site: str, mirror_root: Path | None, registry: str | None,
          mirror_key: Path | None, allow_downgrade: bool) -> None:
    """Verify DIR with SITE's key, then publish it in the site mirror and registry.

    Nothing is published unless the whole bundle verifies, was built for SITE
    (or from --standard) from SITE's node-standard lock, and is not older than
    the release SITE runs; nodes see the old release or the new, never a mix.
    Loading the same bundle again changes nothing.

    Example:

        ecohash bundle load /media/disk/tx-odessa-2026.11 tx-odessa
    """
    from ecohash.bundle import siteregistry
    from ecohash.bundle.load import load_bundle
    from ecohash.bundle.publish import IMAGE_KINDS
    from ecohash.paths import secrets_dir, state_dir

    loaded = load(site)
    registry_url = _registry_url(loaded, registry)

    def registry_ready(manifest) -> None:
        if not any(entry.kind in IMAGE_KINDS for entry in manifest.entries):
            return
        directory_ = siteregistry.site_directory(loaded.name)
        started = siteregistry.ensure_running(registry_url, directory_, directory_ / "registry.log")
        if started is not None:
            click.echo(f"started docker-registry at {registry_url} (pid {started.pid}), a plain "
                       f"process: for one that survives a reboot, enable "
                       f"examples/systemd/ecohash-site-registry@.service", err=True)

    result = load_bundle(
        directory, loaded,
        mirror_root=mirror_root or state_dir() / "mirror" / loaded.name,
        registry_url=registry_url,
        mirror_key=mirror_key or secrets_dir(loaded.name) / "mirror-key",
        on_verified=registry_ready,
        allow_downgrade=allow_downgrade,
    )
    if result.downgraded_from is not None:
        click.echo(f"{directory}: a downgrade: the site ran a release created {result.downgraded_from}; "
                   "loaded with --allow-downgrade (logged in loads.log)", err=True)
    click.echo(f"{directory}: loaded into site {loaded.name}: {result}")


@bundle.command("registry", context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("--registry", metavar="URL", help="Where to serve (plain http); default the site file's "
              "spec.provisioning.registry, else http://127.0.0.1:5000.")
def registry_command(site: str, registry: str | None) -> None:
    """Run SITE's registry in the foreground: Debian's docker-registry with ecohash's config.

    Storage is the state's registry/SITE/storage, where `bundle load` pushes images. For a
    systemd unit (examples/systemd/ecohash-site-registry@.service), so the registry that
    nodes pull from comes back after a reboot.

    Example:

        ecohash bundle registry tx-odessa
    """
    from ecohash.bundle import siteregistry

    loaded = load(site)
    siteregistry.serve(_registry_url(loaded, registry), siteregistry.site_directory(loaded.name))


def _registry_url(site, option: str | None) -> str:
    from ecohash.bundle import siteregistry

    return option or site.provisioning.registry or siteregistry.DEFAULT_URL


def human_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    exponent = min(3, (count.bit_length() - 1) // 10)
    return f"{count / 1024 ** exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"
