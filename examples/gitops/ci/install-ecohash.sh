#!/usr/bin/env bash
# Installs the ecohash commit that ecohash-version.txt pins and prints its bin directory:
#   bin=$(ci/install-ecohash.sh) && export PATH="$bin:$PATH"
#
# The pin is a repository URL and a full commit, so every job of every pipeline runs the
# same ecohash, and changing that one line is a reviewed change that re-renders every site.
# Dependencies come from that commit's hash-checked requirements.lock: nothing unpinned.
# Installs are kept per commit under $ECOHASH_INSTALL_ROOT (default ~/.cache/ecohash), so
# a persistent site runner installs each commit once.
#   ECOHASH_PIN_FILE      the pin (default: ecohash-version.txt)
#   ECOHASH_INSTALL_ROOT  where installs are kept
set -euo pipefail

pin_file=${ECOHASH_PIN_FILE:-ecohash-version.txt}
root=${ECOHASH_INSTALL_ROOT:-$HOME/.cache/ecohash}

# The first line that is not blank or a comment: "URL COMMIT".
url='' commit=''
read -r url commit _ < <(grep -Ev '^[[:space:]]*(#|$)' "$pin_file") || true
if [[ -z $url || ! $commit =~ ^[0-9a-f]{40}$ ]]; then
    echo "$pin_file: expected a line 'REPOSITORY-URL COMMIT', COMMIT a full 40-hex commit" >&2
    exit 2
fi

dest=$root/$commit
mkdir -p "$root"
# Jobs of several runners on one host may install the same commit at once.
exec 9>"$root/.lock"
flock 9

# .complete is written last: an install cut short is redone, not used.
if [ ! -e "$dest/.complete" ]; then
    rm -rf "$dest"
    git init -q "$dest/src"
    # Fetched by commit, not by tag: a tag can be moved, a commit cannot.
    git -C "$dest/src" fetch -q --depth 1 "$url" "$commit"
    git -C "$dest/src" -c advice.detachedHead=false checkout -q FETCH_HEAD
    python3 -m venv "$dest/venv"
    pip=("$dest/venv/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" --require-hashes -r "$dest/src/requirements.lock"
    # Editable, as ecohash's own scripts/install does: ecohash finds its playbooks, roles
    # and default node standard next to its package.
    "${pip[@]}" --no-deps --no-build-isolation -e "$dest/src"
    touch "$dest/.complete"
fi

echo "$dest/venv/bin"
