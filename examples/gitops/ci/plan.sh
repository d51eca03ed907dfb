#!/usr/bin/env bash
# Shows what a rollout of each SITE would change, from its recorded rollout state:
#   ci/plan.sh SITE...        writes plan/SITE.json for each
#
# `ecohash plan --detailed-exitcode` exits 0 when nothing would change, 2 when changes are
# pending and 1 on any error. Pending changes are what a review wants to see, not a
# failure; an error is. Needs the site's rollout state (ECOHASH_STATE_DIR).
set -euo pipefail

mkdir -p plan
failed=0
for site in "$@"; do
    status=0
    ecohash plan "$site" --detailed-exitcode --json >"plan/$site.json" || status=$?
    case $status in
        0) echo "$site: nothing to change" ;;
        2)
            echo "$site: changes pending"
            # The table is for people reading the log; the verdict is the run above.
            ecohash plan "$site"
            ;;
        *)
            echo "$site: plan failed (exit $status)" >&2
            failed=1
            ;;
    esac
done
exit "$failed"
