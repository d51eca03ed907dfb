#!/usr/bin/env bash
# Renders each SITE at HEAD and at its merge base with BASE, and writes what a review needs:
#   ci/render-diff.sh BASE [SITE...]
#   rendered/head/SITE/, rendered/base/SITE/   every Kubernetes object, one file each
#   rendered/render.diff                        diff -ruN base head, whole
#   rendered/comment.md                         the comment to post, cut to fit
#
# A render at HEAD that fails (strict schema validation, policy checks) fails the job: the
# change would not deploy. A render at the base that fails only becomes a note, since the
# change under review may be the fix. The base is rendered with the ecohash its own
# ecohash-version.txt pins, so a pin change shows what the new ecohash changes.
set -euo pipefail

# The other helpers are found next to this one, whatever the working directory.
here=$(dirname "$0")

base=${1:?usage: ci/render-diff.sh BASE [SITE...]}
shift
out=$PWD/rendered
# A comment over GitHub's 65536 characters is refused; GitLab's limit is higher.
max_diff_chars=60000
marker='<!-- ecohash-render-diff -->'

rm -rf "$out"
mkdir -p "$out/head" "$out/base"

# Outside the checkout, so that nothing of the base is ever mistaken for the change.
worktree=$(mktemp -d)
cleanup() { git worktree remove --force "$worktree" 2>/dev/null || rm -rf "$worktree"; }
trap cleanup EXIT
git worktree add -q --detach "$worktree" "$(git merge-base "$base" HEAD)"

base_ecohash=ecohash
if [ -f "$worktree/ecohash-version.txt" ]; then
    base_bin=$(ECOHASH_PIN_FILE="$worktree/ecohash-version.txt" "$here/install-ecohash.sh")
    base_ecohash=$base_bin/ecohash
fi

notes=()
for site in "$@"; do
    ecohash render "$site" -o "$out/head/$site"
    if [ ! -f "$worktree/inventories/$site/site.yaml" ]; then
        notes+=("$site: a new site, every object is added")
    elif ! (cd "$worktree" && "$base_ecohash" render "$site" -o "$out/base/$site"); then
        notes+=("$site: did not render at the base, so every object shows as added")
    fi
done

# diff exits 1 when the trees differ, which is the point; 2 is a real failure. The file
# times diff puts on its --- and +++ lines only make two runs differ, so they go. The
# marker each render holds (.ecohash-render) is no object: a new site would count it.
diff_options=(-ruN -x .ecohash-render)
diff "${diff_options[@]}" rendered/base rendered/head >"$out/render.diff.raw" || [ $? -eq 1 ]
sed -E 's/^((---|\+\+\+) [^\t]*)\t.*$/\1/' "$out/render.diff.raw" >"$out/render.diff"
rm "$out/render.diff.raw"

{
    echo "$marker"
    echo "### ecohash render"
    echo
    if [ $# -eq 0 ]; then
        echo "No site changed, so nothing was rendered."
    else
        echo "| site | files changed |"
        echo "|---|---|"
        for site in "$@"; do
            echo "| $site | $(grep -c "^diff ${diff_options[*]} rendered/base/$site/" "$out/render.diff" || true) |"
        done
        echo
    fi
    for note in "${notes[@]}"; do
        echo "- $note"
    done
    if [ -s "$out/render.diff" ]; then
        echo
        echo "<details open><summary>diff -ruN rendered/base rendered/head</summary>"
        echo
        echo '````diff'
        head -c "$max_diff_chars" "$out/render.diff"
        echo '````'
        echo
        echo "</details>"
        if [ "$(wc -c <"$out/render.diff")" -gt "$max_diff_chars" ]; then
            echo
            echo "The diff is cut short here; the whole of it is render.diff in the job's artifacts."
        fi
    fi
} >"$out/comment.md"
echo "Wrote $out/render.diff and $out/comment.md"
