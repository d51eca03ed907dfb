"""`ecohash apply`: the site's stack updated outside a provision, and recorded as provision does.

Recording is the rollout's business (rollout state, the render the next plan compares
with), so this lives here and not in the stack, which only talks to Pulumi.
"""

from __future__ import annotations

from collections.abc import Callable

from ecohash.inventory.site import Site
from ecohash.rollout.changes import record_stack
from ecohash.rollout.state import RolloutState
from ecohash.stack.automation import ApplyResult, apply_site
from ecohash.stack.render import checked_render
from ecohash.standard import load_standard, standard_file_of

# The run a stack record names when `ecohash apply`, not a provision run, applied it.
APPLY_RUN = "ecohash apply"


def apply_and_record(
    site: Site,
    *,
    backend_url: str | None = None,
    refresh: bool = True,
    on_output: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Update the site's stack and record it in the site's rollout state, as provision does,
    so that plan and drift compare with what was applied. The caller holds the site's lock.

    The render is checked before anything is applied (what is applied is what was checked)
    and recorded only after the update succeeded.
    """
    state = RolloutState.load(site.name)  # a damaged state file stops the apply before it starts
    rendered = checked_render(site, load_standard(standard_file_of(site)))
    applied = apply_site(site, preview=False, backend_url=backend_url, refresh=refresh, on_output=on_output)
    record_stack(state, rendered, "applied", None, APPLY_RUN)
    state.save()
    return applied
