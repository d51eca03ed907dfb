"""What `ecohash bundle build lab` takes from the lab itself: its SIMULATED k3s and image.

A site's bundle is built with the public command from the standard's pins and upstream (or
local .debs, `--deb`). The lab's standard pins stand-ins no upstream has: a SIMULATED k3s and
a tiny SIMULATED image, both built byte for byte the same on every run, so for the lab's own
site (and no other) the build makes them again in its work directory and hands them over
under the standard's pins, which the bundle's writer checks. The SIMULATED driver and
toolkit are not taken implicitly: they are .debs like NVIDIA's, given with `--deb` from the
directory `lab up` writes them to (LabPaths.simulated_debs), and checked like any site's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ecohash.bundle import contents
from ecohash.bundle.contents import ContentSources
from ecohash.bundle.items import Item
from ecohash.errors import EcohashError
from ecohash.inventory.site import Site
from ecohash.lab import simimage, simk3s
from ecohash.lab.inventory import SITE_NAME
from ecohash.lab.layout import LabPaths, inventory_file
from ecohash.standard import k3s_mirror_path, load_standard


@dataclass(frozen=True)
class LabContent:
    items: list[Item]
    note: str  # what the build took from the lab itself, for its operator


def leave_out(executor: bool) -> frozenset[str]:
    """What the lab's bundle leaves out: the GPU operator chart (no route to NVIDIA, and nothing
    in the lab installs it) and, unless the lab has an executor, the executor's wheels."""
    return frozenset({"gpu_operator"} | (set() if executor else {"wheels"}))


def is_lab_site(site: Site | None, standard_file: Path) -> bool:
    """The lab's own generated site, naming a SIMULATED standard; never a real site's."""
    return (site is not None and site.name == SITE_NAME and inventory_file().exists()
            and site.file.resolve() == inventory_file().resolve()
            and load_standard(standard_file).simulated)


def collect(site: Site, standard_file: Path, work: Path, sources: ContentSources, *,
            models: bool = False) -> LabContent:
    """The lab's bundle for `bundle build lab`: the collectors' packages (the SIMULATED driver and
    toolkit among them, from `sources.debs`) and wheels, and the SIMULATED k3s and image made
    again in `work` under the lab standard's pins."""
    standard = load_standard(standard_file)
    simulated = work / "simulated"
    k3s, _sha256 = simk3s.build(simulated / "files", standard.k3s.version)
    image = simimage.build(simulated / "image")
    if image.digest != standard.inference_runtime.digest:
        raise EcohashError(f"{standard_file}: the lab's SIMULATED image is {image.digest}, the lab standard "
                           f"names {standard.inference_runtime.digest}: run `ecohash lab up` again")
    not_carried = leave_out(site.provisioning.executor is not None)
    # The stand-ins replace what the collectors would fetch from upstream.
    sources = dataclasses.replace(sources, leave_out=not_carried | {"k3s", "inference_runtime"})
    try:
        items = contents.collect(standard_file, site, work, models=models, sources=sources)
    except EcohashError as error:
        # Packages apt could not resolve (not invalid input): say where the lab's own .debs are.
        if sources.debs or type(error) is not EcohashError:
            raise
        lab_debs = LabPaths.current().simulated_debs
        raise EcohashError(f"{error}; the lab's SIMULATED ones are in {lab_debs}") from None
    k3s_item = Item("file", f"files/{k3s_mirror_path(standard.k3s.version)}", k3s, sha256=standard.k3s.sha256)
    note = (f"{site.name}: the lab's SIMULATED k3s and inference image, made again in {simulated}; "
            f"not carried: {', '.join(sorted(not_carried))}")
    return LabContent(items=[*items, k3s_item, *image.items], note=note)
