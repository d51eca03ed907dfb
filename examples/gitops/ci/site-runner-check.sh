#!/usr/bin/env bash
# Refuses to run a site job on a runner that would lose or leak the site's rollout state.
#
# Without ECOHASH_STATE_DIR, ecohash would keep state under the job user's home: on a
# fresh or cleaned runner every node would look new and be rolled out again, and `plan`
# and `drift` would compare against nothing. The secrets ecohash keeps there (join token,
# kubeconfig, stack passphrase) must stay the runner's user's alone.
set -euo pipefail

state_dir=${ECOHASH_STATE_DIR:-}
if [ -z "$state_dir" ] || [ "${state_dir:0:1}" != / ]; then
    echo "ECOHASH_STATE_DIR must be an absolute path set on this runner (README.md: runner setup)" >&2
    exit 1
fi
# Created by whoever set up the runner, never here: a missing directory means a runner
# that was not set up, or a volume that is not mounted.
if [ ! -d "$state_dir" ] || [ ! -w "$state_dir" ]; then
    echo "ECOHASH_STATE_DIR=$state_dir is not a writable directory on this runner" >&2
    exit 1
fi
# ecohash makes these directories 0700; one opened up exposes every file below it.
if [ -d "$state_dir/secrets" ]; then
    open=$(find "$state_dir/secrets" -type d -perm /077 -print -quit)
    if [ -n "$open" ]; then
        echo "$open is open to others than its owner; chmod -R go= $state_dir/secrets" >&2
        exit 1
    fi
fi
