"""The node standard: the lock file pinning every version and checksum a node is built from.

node-standard.lock.yml at the repository root is the production standard; a site may name
another (the lab names its simulated one). The Ansible inventory plugin hands the loaded
standard to the roles as `ecohash_standard`, so the file is read in one place only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecohash.errors import InvalidInputError, Problem, ProblemsError
from ecohash.inventory import messages
from ecohash.inventory.model import Sha256, Url
from ecohash.inventory.site import Site
from ecohash.inventory.yaml_source import YamlSyntaxError, decode, parse
from ecohash.paths import project_root

STANDARD_FILE_NAME = "node-standard.lock.yml"
Platform = Literal["debian12", "ubuntu2204", "ubuntu2404"]
PLATFORMS: tuple[str, ...] = get_args(Platform)
PackageName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.+-]+$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


def is_platform(name: str) -> TypeGuard[Platform]:
    """Whether `name` (an os-release's ID and VERSION_ID, say) is a platform a standard may pin."""
    return name in PLATFORMS


class _Strict(BaseModel):
    # strict: `simulated: "yes"` is a mistake, not True.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Metadata(_Strict):
    name: str
    simulated: bool = False


class AptRepository(_Strict):
    url: str = Field(description="Repository URL; {platform} is replaced per node.")
    suite: str
    keyring_url: str
    keyring_sha256: Sha256 | None = Field(
        description="sha256 of the signing key; null refuses the repository (mirror only)."
    )


class NvidiaDriver(_Strict):
    branch: str
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    apt_version: str
    pin_packages: str
    packages: dict[Platform, list[PackageName]]
    kernel_headers: bool
    reboot_on_change: bool
    repository: AptRepository | None = None


class ContainerToolkit(_Strict):
    version: str
    packages: list[PackageName]
    repository: AptRepository | None = None


class PinnedDeb(_Strict):
    version: str
    url: Url
    sha256: Sha256


class K3s(_Strict):
    version: str = Field(pattern=r"^v\d+\.\d+\.\d+\+k3s\d+$")
    url: Url
    sha256: Sha256


class InferenceRuntime(_Strict):
    image: str
    tag: str
    digest: Digest


class GpuOperator(_Strict):
    chart: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    repo: Url
    version: str = Field(pattern=r"^v?\d+\.\d+\.\d+$")
    sha256: Sha256 = Field(description="sha256 of the chart archive, for filling a site mirror.")


class NodeStandard(_Strict):
    api_version: Literal["ecohash.io/v1"] = Field(alias="apiVersion")
    kind: Literal["NodeStandard"]
    metadata: Metadata
    nvidia_driver: NvidiaDriver
    nvidia_container_toolkit: ContainerToolkit
    containerd: dict[Platform, dict[PackageName, PinnedDeb]]
    k3s: K3s
    inference_runtime: InferenceRuntime
    gpu_operator: GpuOperator

    @property
    def simulated(self) -> bool:
        return self.metadata.simulated

    def for_ansible(self) -> dict[str, Any]:
        """The standard as the roles see it (`ecohash_standard`): plain YAML types."""
        return self.model_dump(mode="json", by_alias=True)


def default_standard_file() -> Path:
    return project_root() / STANDARD_FILE_NAME


def standard_file_of(site: Site) -> Path:
    """The standard a site names (relative to its file), else the repository's."""
    named = site.provisioning.standard
    return site.path_from_file(named) if named else default_standard_file()


def image_reference(standard: NodeStandard, registry: str | None) -> str:
    """The inference image as nodes pull it: from the site registry when set, always by digest.

    roles/inference_runtime/vars/main.yml spells the same rule for the pre-pull.
    """
    runtime = standard.inference_runtime
    # The site file may say which scheme the registry speaks; a reference never does.
    address = re.sub(r"^https?://", "", registry) if registry else None
    image = f"{address}/{runtime.image.split('/', 1)[1]}" if address else runtime.image
    return f"{image}@{runtime.digest}"


def k3s_mirror_path(version: str) -> str:
    """Where k3s lives under a site mirror's files/: one directory per release, like GitHub's.

    roles/k8s_node/defaults/main.yml spells the same rule for the download.
    """
    return f"k3s/{version}/k3s"


def chart_mirror_path(chart: GpuOperator) -> str:
    """Where a chart archive lives under a site mirror's files/: a bundle puts it there and
    the site stack points the cluster at it."""
    return f"{chart.chart}/{chart.version}/{chart.chart}-{chart.version}.tgz"


def kubernetes_minor(standard: NodeStandard) -> str:
    """The Kubernetes minor version the standard's k3s is ("1.35"), for schema validation."""
    major, minor = standard.k3s.version.lstrip("v").split(".")[:2]
    return f"{major}.{minor}"


def load_standard(path: Path | None = None) -> NodeStandard:
    """Load and check a node-standard file; problems come back as FILE:LINE errors."""
    file = path or default_standard_file()
    try:
        data = file.read_bytes()
    except OSError as error:
        raise InvalidInputError(
            f"{file}: cannot read the node standard: {error.strerror or error}"
        ) from None
    try:
        text = decode(data)
        parsed = parse(text)
    except YamlSyntaxError as error:
        raise ProblemsError([Problem(str(file), error.problem.line, error.problem.message,
                                     error.problem.column)]) from None
    # A second `k3s:` would silently replace the reviewed one.
    problems = [Problem(str(file), line, f"duplicate key {key!r}: a key may appear once")
                for line, key in parsed.duplicate_keys]
    try:
        # The site parser reads numbers as Decimal; here every version is a string, and a
        # bare number where one belongs must be reported, so validate plain YAML values.
        standard = NodeStandard.model_validate(yaml.safe_load(text) or {})
    except ValidationError as error:
        for detail in error.errors():
            path_, key, message = messages.describe(dict(detail), NodeStandard)
            problems.append(Problem(str(file), parsed.line_of(path_, key=key), message))
        raise ProblemsError(problems) from None
    if problems:
        raise ProblemsError(problems)
    return standard
