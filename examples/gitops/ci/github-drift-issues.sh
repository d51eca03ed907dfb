#!/usr/bin/env bash
# Opens or updates one GitHub issue per drifted site, from what ci/drift.sh recorded:
#   ci/github-drift-issues.sh DIR        DIR holds SITE.status and SITE.json per site
# One open issue per site, titled "ecohash drift: SITE" and labelled drift: a site that
# drifts again gets a comment on its open issue instead of a duplicate.
# Needs GH_TOKEN (issues: write), and GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID.
set -euo pipefail

# The other helpers are found next to this one, whatever the working directory.
here=$(dirname "$0")

dir=${1:?usage: ci/github-drift-issues.sh DIR}
run_url=$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID

gh label create drift --repo "$GITHUB_REPOSITORY" --force --color d93f0b \
    --description "A site no longer matches its inventory (ecohash drift)"

shopt -s nullglob
for status_file in "$dir"/*.status; do
    [ "$(cat "$status_file")" = drift ] || continue
    site=$(basename "$status_file" .status)
    # The name goes into a jq filter below; a site name is a DNS label.
    [[ $site =~ ^[a-z0-9-]+$ ]] || { echo "$status_file: not a site name" >&2; exit 1; }
    title="ecohash drift: $site"
    body=$(mktemp)
    "$here/drift-report.sh" "$site" "$dir/$site.json" "$run_url" >"$body"
    number=$(gh issue list --repo "$GITHUB_REPOSITORY" --state open --label drift \
        --search "in:title \"$title\"" --json number,title \
        --jq ".[] | select(.title == \"$title\") | .number" | tail -n 1)
    if [ -n "$number" ]; then
        gh issue comment "$number" --repo "$GITHUB_REPOSITORY" --body-file "$body"
    else
        gh issue create --repo "$GITHUB_REPOSITORY" --title "$title" --label drift --body-file "$body"
    fi
done
