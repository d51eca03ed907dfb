#!/usr/bin/env bash
# Posts BODY-FILE on a pull request, replacing the comment an earlier push posted:
#   ci/github-pr-comment.sh PR-NUMBER BODY-FILE
# One comment kept current rather than one per push. It is found by the marker on the
# body's first line (ci/render-diff.sh writes it), among the comments of this workflow's
# own user only, so that nobody's comment is ever overwritten.
# Needs GH_TOKEN (pull-requests: write) and GITHUB_REPOSITORY.
set -euo pipefail

pr=${1:?usage: ci/github-pr-comment.sh PR-NUMBER BODY-FILE}
body=${2:?usage: ci/github-pr-comment.sh PR-NUMBER BODY-FILE}
author=${ECOHASH_COMMENT_AUTHOR:-github-actions[bot]}
marker=$(head -n 1 "$body")
comments=repos/$GITHUB_REPOSITORY/issues/$pr/comments

id=$(gh api --paginate "$comments" \
    --jq ".[] | select(.user.login == \"$author\" and (.body | startswith(\"$marker\"))) | .id" \
    | tail -n 1)
if [ -n "$id" ]; then
    gh api --silent --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$body"
else
    gh api --silent --method POST "$comments" -F "body=@$body"
fi
