"""`ecohash render`: run the site stack's program offline and write every object as YAML.

The program runs through Pulumi's own runtime with its mock monitor, so the objects
are exactly what `ecohash apply` would send, in their wire form (camelCase, apiVersion
and kind filled in). The mock echoes inputs back as state and never connects anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ecohash.atomic import replace_directory
from ecohash.budget import Plan, compile_budget
from ecohash.errors import EcohashError
from ecohash.inventory import Site
from ecohash.report import plan_data
from ecohash.standard import NodeStandard, kubernetes_minor

if TYPE_CHECKING:
    from pulumi.runtime.mocks import Mocks

KUBERNETES_TYPE = "kubernetes:"
PROJECT = "ecohash-site"  # stacks/Pulumi.yaml's name
# In every render directory: what says a later render may replace it (and nothing else).
RENDER_MARKER = ".ecohash-render"
_MARKER_TEXT = "# Written by ecohash render; the next render replaces this directory whole.\nsite: {site}\n"


@dataclass(frozen=True)
class Rendered:
    site: str
    objects: list[dict[str, Any]]  # sorted by file_name

    def files(self) -> dict[str, str]:
        return self._files

    @cached_property
    def _files(self) -> dict[str, str]:
        # Dumped once: a rollout writes its render twice (run and state) and hashes it.
        return {file_name(obj): to_yaml(obj) for obj in self.objects}


class RenderCheckError(EcohashError):
    """Rendered objects that fail their schemas or a policy: nothing is written."""

    def __init__(self, site: Site, problems: list[str]):
        self.problems = problems
        super().__init__(f"site {site.name}: the render fails its checks; nothing written\n"
                         + "\n".join(problems))


def render_site(site: Site, standard: NodeStandard) -> Rendered:
    """Every Kubernetes object the site's stack declares, in a stable order, unchecked."""
    return _render(site, standard, compile_budget(site))


def _render(site: Site, standard: NodeStandard, plan: Plan) -> Rendered:
    objects = _run_offline(site, standard, plan)
    return Rendered(site.name, sorted(objects, key=file_name))


def checked_render(site: Site, standard: NodeStandard, plan: Plan | None = None) -> Rendered:
    """The render, every object strict-valid for the standard's Kubernetes and every policy met.

    `plan` is the site's compiled budget when the caller has it already.
    """
    # Lazy: the policies load pulumi_kubernetes and the validation jsonschema, which only
    # a checked render needs; plan and drift import this module for the render's files alone.
    from ecohash.stack.policy import check_policies
    from ecohash.stack.validation import validate_manifests

    # One plan for the stack and for the policy comparing its ConfigMaps with the plan.
    plan = plan or compile_budget(site)
    rendered = _render(site, standard, plan)
    problems = [str(p) for p in validate_manifests(
        rendered.objects, kubernetes_minor(standard), crds=bundled_crds())]
    problems += [str(v) for v in check_policies(rendered.objects, plan_data(plan))]
    if problems:
        raise RenderCheckError(site, problems)
    return rendered


def bundled_crds() -> list[dict[str, Any]]:
    """Schemas of the custom resources the stack writes (crds/), for strict validation."""
    folder = resources.files("ecohash.stack") / "crds"
    return [yaml.safe_load(f.read_text()) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")]


def _run_offline(site: Site, standard: NodeStandard, plan: Plan) -> list[dict[str, Any]]:
    # Lazy: Pulumi and the program's components (pulumi_kubernetes) take seconds to load,
    # and only a render runs them.
    import pulumi
    from pulumi.runtime import mocks, settings, stack
    from pulumi.runtime.sync_await import _sync_await

    from ecohash.stack.program import declare_site

    objects: list[dict[str, Any]] = []
    # Pulumi keeps one root stack resource per process (pulumi/pulumi#8280); a fresh one
    # per render keeps a second render in the same process from inheriting the first.
    settings.ROOT.set(None)
    mocks.set_mocks(_recorder(objects), project=PROJECT, stack=site.name, preview=False)
    declare_site(site, standard, plan, kubeconfig=None)
    try:
        _sync_await(stack.wait_for_rpcs())
    except pulumi.RunError as error:
        raise EcohashError(f"site {site.name}: the stack program failed: {error}") from None
    return objects


def _recorder(objects: list[dict[str, Any]]) -> Mocks:
    """A mock monitor's resource hook that appends each Kubernetes object's inputs to `objects`."""
    # Pulumi's Mocks takes a second to import: only a render pays for it, not every command
    # that imports this module. Subclassing it gives the hooks the monitor may call besides
    # these two (register_transform...).
    from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

    class Recorder(Mocks):
        def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
            if args.typ.startswith(KUBERNETES_TYPE):
                objects.append(_plain(args.inputs))
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            return {}, None

    return Recorder()


def _plain(value: Any) -> Any:
    """Wire values back to YAML ones: numbers arrive as floats (replicas 2.0)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def file_name(obj: dict[str, Any]) -> str:
    """<namespace or _cluster>/<kind>-<name>.yaml: one file per object, found by eye."""
    metadata = obj.get("metadata", {})
    folder = metadata.get("namespace") or "_cluster"
    return f"{folder}/{obj['kind'].lower()}-{metadata.get('name')}.yaml"


try:
    from yaml import CSafeDumper as _LibyamlDumper
except ImportError:  # libyaml missing: PyYAML's emitter writes everything, only slower
    from yaml import SafeDumper as _LibyamlDumper  # type: ignore[assignment]


class _Dumper(yaml.SafeDumper):
    pass


class _FastDumper(_LibyamlDumper):
    pass


# libyaml's emitter (some ten times faster) writes what PyYAML's does, byte for byte, but
# in two places: it folds long quoted scalars at other points, and it writes some
# characters differently (those beyond U+FFFF, NEL). A render is short names and numbers
# and multi-line text that both write as a literal block, verbatim (budgets, Helm values,
# the exporter's source): such an object goes to libyaml, any other to PyYAML, so the
# bytes never depend on which emitter wrote them. A key or one-line value under _SHORT
# characters, fewer than _MAX_DEPTH levels deep, never reaches the width where folding
# starts. PyYAML writes a key as a complex one ('? ') when its text and tag ('!!str' on a
# quoted key) reach 128 characters, libyaml only past 128, and PyYAML an empty key too:
# keys under _LONG_KEY are simple keys for both.
_SHORT = 256
_LONG_KEY = 100
_MAX_DEPTH = 100
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_LITERAL_TEXT = re.compile(r"[\n\x20-\x7e]*")


def _str(dumper: yaml.representer.SafeRepresenter, text: str) -> yaml.ScalarNode:
    # Multi-line values (JSON budgets, Helm values, the exporter's source) as literal
    # blocks, so a diff of a render is a diff of lines.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)
_FastDumper.add_representer(str, _str)


def to_yaml(obj: dict[str, Any]) -> str:
    dumper = _FastDumper if _emitters_agree(obj) else _Dumper
    return yaml.dump(obj, Dumper=dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1000)


def _emitters_agree(value: Any, depth: int = 0) -> bool:
    """Whether libyaml writes `value` as PyYAML does: every string in it a short line or a
    literal block of printable ASCII (see above)."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(key, str) and 0 < len(key) < _LONG_KEY and _short_line(key)
                   and _emitters_agree(item, depth + 1) for key, item in value.items())
    if isinstance(value, list):
        return all(_emitters_agree(item, depth + 1) for item in value)
    if isinstance(value, str):
        return _literal_block(value) if "\n" in value else _short_line(value)
    return value is None or isinstance(value, bool | int | float)


def _short_line(text: str) -> bool:
    return len(text) < _SHORT and _PRINTABLE_ASCII.fullmatch(text) is not None


def _literal_block(text: str) -> bool:
    # A space before a line break, or at the very end, rules the literal style out for both:
    # they would quote and fold it. Trailing blank lines need the keep indicator ('|+'),
    # after which libyaml may end the document with '...' and PyYAML does not.
    return (" \n" not in text and not text.endswith(" ") and text != "\n"
            and not text.endswith("\n\n") and _LITERAL_TEXT.fullmatch(text) is not None)


def write_render(rendered: Rendered, out_dir: Path) -> list[str]:
    """Replace out_dir with the render, whole: a failed write leaves the old one as it was.

    Only a directory a render wrote (it holds RENDER_MARKER), an empty one or none is
    replaced; any other, or a symbolic link, is refused untouched (see replace_directory).
    """
    files = rendered.files()
    replace_directory(out_dir, files, RENDER_MARKER, _MARKER_TEXT.format(site=rendered.site))
    return sorted(files)
