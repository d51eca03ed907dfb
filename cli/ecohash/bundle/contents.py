"""What goes into a bundle: the node standard (and a site) turned into Items.

Everything is derived from the standard and the roles, never from a second list: the apt
packages are the ones the roles install (base's baseline, containerd and runc, and on
GPU sites the driver, kernel headers and container toolkit), with the dependency closure
apt resolves for them on the standard's OS in a throwaway root (apt_closure); k3s and the
GPU operator chart by the standard's sha256; the inference image by the standard's digest
with its manifests' exact bytes; the executor's wheels by requirements.lock's hashes; and,
asked for, the site's services' model weights. Every pin is checked here, and failing
closed: nothing that does not match is handed on.

Upstream sources are the standard's URLs; ContentSources replaces them with local ones
where this machine has no route (NVIDIA's packages, GitHub's k3s) or where the caller
builds its own (the lab's SIMULATED packages and k3s, its small image's OCI layout).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from ecohash.bundle import apt_closure, localdebs, oci, wheels
from ecohash.bundle import models as model_weights
from ecohash.bundle.fetch import check_sha256, fetch
from ecohash.bundle.items import Item
from ecohash.bundle.registry_client import ImageName, RegistryClient
from ecohash.errors import EcohashError, InvalidInputError
from ecohash.inventory.site import Site
from ecohash.paths import project_root
from ecohash.standard import NodeStandard, Platform, chart_mirror_path, k3s_mirror_path, load_standard

# Parts of a standard a caller may leave out because it cannot carry them (the lab has no
# route to NVIDIA for the chart); anything else is always collected.
PARTS = ("apt", "k3s", "gpu_operator", "inference_runtime", "wheels")
# The package tracking the distribution's current kernel's headers: the node's running
# kernel (what nvidia_driver installs headers for) is known only on the node.
KERNEL_HEADERS = {"debian": "linux-headers-amd64", "ubuntu": "linux-headers-generic"}
BASE_DEFAULTS = "roles/base/defaults/main.yml"
EXECUTOR_DEFAULTS = "roles/executor/defaults/main.yml"


@dataclass(frozen=True)
class ContentSources:
    """Where upstream things come from when not from the standard's URLs."""

    # A Debian root file system to resolve packages in (read only), such as the lab's base.
    base_root: Path | None = None
    # Local .debs (or directories of them) for packages upstream does not carry here
    # (NVIDIA's, the lab's SIMULATED): checked against the standard's pins (localdebs).
    debs: tuple[Path, ...] = ()
    # Upstream URL -> a local file with the same bytes (k3s, the GPU operator chart).
    files: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    # OCI image layouts holding images by digest (the lab's image, an operator's export).
    oci_layouts: tuple[Path, ...] = ()
    apt_proxy: str | None = None
    leave_out: frozenset[str] = frozenset()
    # A Hugging Face cache or a directory of <org>/<name>/; default huggingface_hub's cache.
    models: Path | None = None
    # Model id -> revision; default the cache's refs/main.
    model_revisions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def collect(standard_file: Path, site: Site | None, work: Path, *, models: bool = False,
            sources: ContentSources | None = None) -> list[Item]:
    """Every Item a bundle of `standard_file` (for `site`, when given) carries."""
    sources = sources or ContentSources()
    unknown = sources.leave_out - set(PARTS)
    if unknown:
        raise InvalidInputError(f"cannot leave out {', '.join(sorted(unknown))}: "
                                f"the parts are {', '.join(PARTS)}")
    if models and site is None:
        raise InvalidInputError("--models needs a site: its services name the models to carry")
    standard = load_standard(standard_file)
    work.mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    if "apt" not in sources.leave_out:
        items += deb_items(standard, site, work / "apt", sources)
    if "k3s" not in sources.leave_out:
        k3s = standard.k3s
        items.append(_file_item(k3s.url, k3s.sha256, k3s_mirror_path(k3s.version), work, sources,
                                what=f"k3s {k3s.version}"))
    if "gpu_operator" not in sources.leave_out:
        chart = standard.gpu_operator
        name = f"{chart.chart}-{chart.version}.tgz"
        items.append(_file_item(f"{chart.repo.rstrip('/')}/charts/{name}", chart.sha256,
                                chart_mirror_path(chart), work, sources,
                                what=f"the {chart.chart} chart {chart.version}"))
    if "inference_runtime" not in sources.leave_out:
        runtime = standard.inference_runtime
        items += image_items(runtime.image, runtime.tag, runtime.digest, work / "images", sources)
    if "wheels" not in sources.leave_out:
        items += wheel_items(work)
    if models and site is not None:
        items += model_items(site, sources)
    return items


def wheel_items(work: Path) -> list[Item]:
    """The executor's wheels (ansible-core, ansible-runner), by requirements.lock's hashes."""
    return [Item(kind="wheel", destination=f"wheels/{wheel.name}", path=wheel)
            for wheel in wheels.download(work)]


def role_packages(standard: NodeStandard, platform: Platform, *, gpus: bool,
                  executor: bool = False) -> list[str]:
    """The packages the roles install on `platform`, as apt names them (name=version where pinned);
    executor: and those the executor role installs next to the wheels (its virtualenv's)."""
    base_defaults = yaml.safe_load((project_root() / BASE_DEFAULTS).read_text())
    packages = list(base_defaults["base_packages"])
    if executor:
        executor_defaults = yaml.safe_load((project_root() / EXECUTOR_DEFAULTS).read_text())
        packages += executor_defaults["executor_packages"]
    if platform not in standard.containerd:
        raise EcohashError(f"the node standard pins no containerd for {platform}")
    packages += [f"{name}={pinned.version}" for name, pinned in standard.containerd[platform].items()]
    if gpus:
        driver, toolkit = standard.nvidia_driver, standard.nvidia_container_toolkit
        if driver.kernel_headers:
            packages.append(KERNEL_HEADERS[platform.rstrip("0123456789")])
        packages += [f"{name}={driver.apt_version}" for name in driver.packages[platform]]
        packages += [f"{name}={toolkit.version}" for name in toolkit.packages]
    return packages


def deb_items(standard: NodeStandard, site: Site | None, work: Path, sources: ContentSources) -> list[Item]:
    base = sources.base_root
    if base is None or not (base / "var/lib/dpkg/status").is_file():
        raise EcohashError(f"{base}: no Debian root file system to resolve packages in "
                           "(`ecohash lab up` builds the lab's base once)")
    platform = apt_closure.platform_of(base)
    # Checked before apt sees them: a local .deb resolves like an archive's, so it must be a pinned one.
    local = [deb.path for deb in localdebs.check(standard, platform, sources.debs, work / "local-debs")]
    gpus = site is None or any(node.gpus for node in site.nodes)
    # An executor installs its virtualenv from the mirror too, where the bundle carries its wheels.
    packages = role_packages(standard, platform, gpus=gpus, executor="wheels" not in sources.leave_out)
    try:
        debs = apt_closure.resolve(base, packages, work, local_debs=local, proxy=sources.apt_proxy)
    except EcohashError as error:
        hint = ("; packages upstream does not carry here (NVIDIA's driver and toolkit) must be given "
                "as local .debs (--deb FILE|DIR)") if gpus else ""
        raise EcohashError(f"{error}{hint}") from None
    pinned = {Path(deb.url).name: deb.sha256 for deb in standard.containerd[platform].values()}
    for deb in debs:
        if deb.file_name in pinned and pinned[deb.file_name] != deb.sha256:
            raise EcohashError(f"{deb.file_name}: the archive's index says sha256 {deb.sha256}, "
                               f"the node standard pins {pinned[deb.file_name]}: refused")
    return [Item(kind="deb", destination=f"apt/{deb.file_name}", path=deb.path, sha256=deb.sha256)
            for deb in debs]


def _file_item(url: str, sha256: str, relative: str, work: Path, sources: ContentSources,
               *, what: str) -> Item:
    local = sources.files.get(url)
    if local is not None:
        check_sha256(local, sha256, what=f"{what} ({local})")
        path = local
    else:
        path = fetch(url, work / "files" / relative, sha256, what=what)
    return Item(kind="file", destination=f"files/{relative}", path=path, sha256=sha256)


def image_items(image: str, tag: str | None, digest: str, work: Path, sources: ContentSources) -> list[Item]:
    """An image by digest, from a local OCI layout that holds it, else from its registry."""
    # At the site the repository keeps its path under the site registry (standard.image_reference).
    address = re.sub(r"^https?://", "", image)  # a scheme names how to reach a registry, no more
    repository = address.split("/", 1)[1] if "/" in address else address
    what = f"{image}@{digest}"
    layout = next((layout for layout in sources.oci_layouts
                   if (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).is_file()), None)
    if layout is not None:
        fetcher = oci.layout_fetcher(layout)
    else:
        name = ImageName.parse(image)
        fetcher = RegistryClient(name.registry).fetcher(name.repository)
    parts = oci.walk(digest, fetcher, work, what=what)
    items = [Item(kind=part.kind, destination=f"registry/{repository}@{part.digest}"
                  if part.kind in ("image-index", "image-manifest") else f"registry/{repository}/blobs",
                  path=part.path, media_type=part.media_type, sha256=part.digest.removeprefix("sha256:"))
             for part in parts]
    if tag:
        top = parts[0]
        items.append(Item(kind="image-tag", destination=f"registry/{repository}:{tag}", path=top.path,
                          media_type=top.media_type, sha256=top.digest.removeprefix("sha256:")))
    return items


def model_items(site: Site, sources: ContentSources) -> list[Item]:
    source = sources.models or model_weights.default_cache()
    items = []
    for repo_id in sorted({service.model for service in site.services}):
        for file in model_weights.model_files(source, repo_id, sources.model_revisions):
            items.append(Item(kind="model-file",
                              destination=f"models/{file.repo_id}/{file.revision}/{file.path_in_repo}",
                              path=file.path, sha256=file.sha256))
    return items
