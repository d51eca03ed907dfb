#!/usr/bin/env bash
# Calls GitLab's REST API as ECOHASH_GITLAB_TOKEN and prints the response body:
#   ci/gitlab-api.sh METHOD PATH [CURL-ARGUMENT...]      PATH below /api/v4
# The token reaches curl on stdin, never in its arguments, where any user of the runner
# host could read it (ps). An HTTP error fails, printing GitLab's message.
set -euo pipefail

method=${1:?usage: ci/gitlab-api.sh METHOD PATH [CURL-ARGUMENT...]}
path=${2:?usage: ci/gitlab-api.sh METHOD PATH [CURL-ARGUMENT...]}
shift 2
token=${ECOHASH_GITLAB_TOKEN:?the calling script sets ECOHASH_GITLAB_TOKEN}

printf 'PRIVATE-TOKEN: %s\n' "$token" \
    | curl --silent --show-error --fail-with-body --header @- \
        --request "$method" "$CI_API_V4_URL$path" "$@"
