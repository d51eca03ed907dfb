#!/usr/bin/env bash
# Posts BODY-FILE on the pipeline's merge request, replacing the note an earlier push posted:
#   ci/gitlab-mr-note.sh BODY-FILE
# One note kept current rather than one per push, found by the marker on the body's
# first line (ci/render-diff.sh writes it); a person quoting it starts with "> ".
# Needs ECOHASH_NOTE_TOKEN (README.md: GitLab variables) and GitLab's CI_* variables.
set -euo pipefail

# The other helpers are found next to this one, whatever the working directory.
here=$(dirname "$0")

body=${1:?usage: ci/gitlab-mr-note.sh BODY-FILE}
export ECOHASH_GITLAB_TOKEN=${ECOHASH_NOTE_TOKEN:?set the CI/CD variable ECOHASH_NOTE_TOKEN (README.md)}
notes=/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes
marker=$(head -n 1 "$body")

id=$("$here/gitlab-api.sh" GET "$notes" --get --data per_page=100 --data sort=desc \
    | python3 -c '
import json, sys
notes = json.load(sys.stdin)
print(next((str(n["id"]) for n in notes if n["body"].startswith(sys.argv[1])), ""))
' "$marker")
if [ -n "$id" ]; then
    "$here/gitlab-api.sh" PUT "$notes/$id" --data-urlencode "body@$body" >/dev/null
else
    "$here/gitlab-api.sh" POST "$notes" --data-urlencode "body@$body" >/dev/null
fi
