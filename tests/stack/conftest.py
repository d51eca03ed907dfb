"""Pulumi's mock monitor for component tests: a fresh root stack per test, every
registration recorded with its inputs, parent and provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pulumi.runtime import mocks, settings, stack
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.sync_await import _sync_await

from ecohash.stack.render import _plain


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str  # the parent's URN; '' for none
    provider: str
    custom: bool


@dataclass
class Recorder(mocks.Mocks):
    resources: list[Registered] = field(default_factory=list)
    _pending: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        parent, custom = self._pending.pop((args.typ, args.name), ("", bool(args.custom)))
        self.resources.append(Registered(args.typ, args.name, _plain(args.inputs), parent,
                                         args.provider or "", custom))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None

    def kubernetes(self, kind: str | None = None) -> list[Registered]:
        return [r for r in self.resources if r.type.startswith("kubernetes:")
                and (kind is None or r.inputs.get("kind") == kind)]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [r.inputs for r in self.kubernetes(kind) if r.inputs["metadata"]["name"] == name]
        return found



def parent_type(registered: Registered) -> str:
    """The type token of a resource's parent, from its URN ('' for none)."""
    return registered.parent.split("::")[2].split("$")[-1] if registered.parent else ""


class _ParentRecordingMonitor(MockMonitor):
    """The mocks API does not pass a resource's parent; the monitor's request has it."""

    def __init__(self, recorder: Recorder):
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC's name)
        self.recorder._pending[(request.type, request.name)] = (request.parent, request.custom)
        return super().RegisterResource(request)


def settle() -> None:
    """Wait until every registration the test made has reached the mock monitor."""
    _sync_await(stack.wait_for_rpcs())


@pytest.fixture
def pulumi_mocks() -> Recorder:
    recorder = Recorder()
    # The root stack resource lives once per process (pulumi/pulumi#8280): start afresh.
    settings.ROOT.set(None)
    mocks.set_mocks(recorder, project="project", stack="stack", preview=False,
                    monitor=_ParentRecordingMonitor(recorder))
    return recorder
