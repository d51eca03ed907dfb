#!/usr/bin/env bash
# Checks one site for drift and records the verdict:
#   ci/drift.sh SITE [ALERT-COMMAND]
# writes drift/SITE.json (`ecohash drift --json`) and drift/SITE.status: clean, drift or
# error. On drift, ALERT-COMMAND SITE drift/SITE.json is run (e.g. ci/gitlab-drift-issue.sh).
#
# `ecohash drift` exits 0 when nothing drifted, 2 when anything did, 1 when the check
# itself failed. Drift is a finding for people, reported through the alert, so the job
# passes; a failed check means nobody knows the site's state, so the job fails.
set -euo pipefail

site=${1:?usage: ci/drift.sh SITE [ALERT-COMMAND]}
alert=${2:-}

mkdir -p drift
status=0
ecohash drift "$site" --json >"drift/$site.json" || status=$?
case $status in
    0)
        echo clean >"drift/$site.status"
        echo "$site: no drift"
        ;;
    2)
        echo drift >"drift/$site.status"
        echo "$site: drift found (drift/$site.json)"
        if [ -n "$alert" ]; then
            "$alert" "$site" "drift/$site.json"
        fi
        ;;
    *)
        echo error >"drift/$site.status"
        echo "$site: the drift check failed (exit $status)" >&2
        exit 1
        ;;
esac
