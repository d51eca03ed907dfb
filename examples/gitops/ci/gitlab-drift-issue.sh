#!/usr/bin/env bash
# Opens or updates the GitLab issue for a drifted site (ci/drift.sh's ALERT-COMMAND):
#   ci/gitlab-drift-issue.sh SITE REPORT-JSON
# One open issue per site, titled "ecohash drift: SITE" and labelled drift: a site that
# drifts again gets a note on its open issue instead of a duplicate.
# Needs ECOHASH_ALERT_TOKEN (README.md: GitLab variables) and GitLab's CI_* variables.
set -euo pipefail

# The other helpers are found next to this one, whatever the working directory.
here=$(dirname "$0")

site=${1:?usage: ci/gitlab-drift-issue.sh SITE REPORT-JSON}
report=${2:?usage: ci/gitlab-drift-issue.sh SITE REPORT-JSON}
export ECOHASH_GITLAB_TOKEN=${ECOHASH_ALERT_TOKEN:?set the CI/CD variable ECOHASH_ALERT_TOKEN (README.md)}
issues=/projects/$CI_PROJECT_ID/issues
title="ecohash drift: $site"

body=$(mktemp)
"$here/drift-report.sh" "$site" "$report" "$CI_JOB_URL" >"$body"

# GitLab's search matches words; the exact title decides.
iid=$("$here/gitlab-api.sh" GET "$issues" --get --data state=opened --data labels=drift \
    --data in=title --data-urlencode "search=$title" \
    | python3 -c '
import json, sys
issues = json.load(sys.stdin)
print(next((str(i["iid"]) for i in issues if i["title"] == sys.argv[1]), ""))
' "$title")
if [ -n "$iid" ]; then
    "$here/gitlab-api.sh" POST "$issues/$iid/notes" --data-urlencode "body@$body" >/dev/null
else
    "$here/gitlab-api.sh" POST "$issues" --data-urlencode "title=$title" --data labels=drift \
        --data-urlencode "description@$body" >/dev/null
fi
