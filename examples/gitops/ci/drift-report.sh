#!/usr/bin/env bash
# Prints the Markdown body of a drift alert, for the GitHub and the GitLab issue alike:
#   ci/drift-report.sh SITE REPORT-JSON RUN-URL
# The report is quoted whole up to a size both issue trackers accept; the run's artifacts
# keep all of it.
set -euo pipefail

site=${1:?usage: ci/drift-report.sh SITE REPORT-JSON RUN-URL}
report=${2:?usage: ci/drift-report.sh SITE REPORT-JSON RUN-URL}
run_url=${3:?usage: ci/drift-report.sh SITE REPORT-JSON RUN-URL}
max_chars=60000

echo "\`ecohash drift $site\` found drift on $(date -u +%Y-%m-%dT%H:%MZ) ([run]($run_url))."
echo
echo "Something on the site no longer matches its inventory: a file edited by hand, a"
echo "package, a unit, a GPU power limit, or a change not applied yet. Re-apply the"
echo "inventory, or change it to what the site should be, then close this issue; a check"
echo "that still finds drift comments here again."
echo
echo "<details><summary>ecohash drift $site --json</summary>"
echo
echo '````json'
head -c "$max_chars" "$report"
echo
echo '````'
echo
echo "</details>"
if [ "$(wc -c <"$report")" -gt "$max_chars" ]; then
    echo
    echo "The report is cut short here; the run's artifacts hold all of it."
fi
