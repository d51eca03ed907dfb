#!/usr/bin/env python3
"""Which sites of an inventory repository a change touches, for CI to review, apply or check.

Both the GitHub and the GitLab pipelines ask this one script, so that the sites a pull
request reviews and the sites a merge applies are decided in one place:

    ci/changed_sites.py --base origin/main                     one site name a line
    ci/changed_sites.py --base "$BEFORE" --format github-matrix
    ci/changed_sites.py --base "$BEFORE" --format gitlab-pipeline > apply.yml
    ci/changed_sites.py --all --format gitlab-pipeline --job drift > drift.yml

A site changed when a file under inventories/<site>/ differs between HEAD and its merge
base with BASE (`git diff BASE...HEAD`, what a pull request brings). A change to an input
every site is built from (the node standard, the ecohash pin, the pipelines) changes
every site. Deleted sites are left out, as nothing is left to apply, and reported on
stderr. Sites are read from HEAD's commit, not the working tree, so the answer is the
same wherever the commit is checked out.

Exit status: 0 (also when no site changed), 2 for a bad argument or a git error.
Python 3.11's standard library only: it runs before ecohash is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

PROG = "changed_sites.py"
INVENTORIES = "inventories"
SITE_FILE = "site.yaml"

# Inputs every site is built from: a change to one can change any site's render or
# rollout, so every site is reviewed and applied again. Add your own shared files here
# (or pass --site-wide), e.g. a standard that several sites name in provisioning.standard.
SITE_WIDE_INPUTS = (
    "node-standard.lock.yml",
    "ecohash-version.txt",
    "ci/*",
    ".github/workflows/ecohash-*.yml",
    ".gitlab-ci.yml",
)

# What CI passes as "before" for a branch's first push or a pipeline started by hand:
# there is nothing to compare with, and applying every site is safe because provision
# skips nodes that are already standard.
NULL_COMMIT = "0" * 40

# A site's directory name becomes a runner label, a GitLab tag and resource group, and a
# shell argument; ecohash requires site names to be DNS labels, so the same is asked here.
SITE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

FORMATS = ("lines", "github-matrix", "gitlab-pipeline")


class ChangedSitesError(Exception):
    """A problem the caller can fix: a bad reference, an unknown site, a bad site name."""


@dataclass(frozen=True)
class GitlabJob:
    """What a generated GitLab child pipeline runs for one site."""

    stage: str
    script: tuple[str, ...]
    artifacts: tuple[str, ...] = ()
    timeout: str | None = None


# Every site job checks its runner and installs the pinned ecohash first (README.md).
SITE_JOB_BEFORE_SCRIPT = (
    "ci/site-runner-check.sh",
    "bin=$(ci/install-ecohash.sh)",
    'export PATH="$bin:$PATH"',
)

GITLAB_JOBS = {
    # A large site's rollout takes hours; GitLab's default job timeout is one.
    "apply": GitlabJob(stage="apply", script=('ecohash provision "$ECOHASH_SITE"',), timeout="6h"),
    "plan": GitlabJob(stage="plan", script=('ci/plan.sh "$ECOHASH_SITE"',), artifacts=("plan/",)),
    "drift": GitlabJob(
        stage="drift",
        # The site's job opens the alert itself: unlike GitHub's per-job token permissions,
        # a GitLab variable reaches every job of the pipeline, so a separate job gains nothing.
        script=('ci/drift.sh "$ECOHASH_SITE" ci/gitlab-drift-issue.sh',),
        artifacts=("drift/",),
    ),
}


@dataclass
class Selection:
    """The sites to act on, sorted, and what the caller should hear about on stderr."""

    sites: list[str]
    notes: list[str] = field(default_factory=list)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ChangedSitesError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def commit_of(repo: Path, ref: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        # The usual cause in CI is a shallow clone that lacks the base commit.
        raise ChangedSitesError(
            f"no commit {ref!r} in {repo}: fetch the whole history"
            " (actions/checkout fetch-depth: 0, GitLab GIT_DEPTH: 0)"
        )
    return result.stdout.strip()


def sites_at(repo: Path, commit: str) -> set[str]:
    """Every site with an inventories/<name>/site.yaml in the commit."""
    listing = git(repo, "ls-tree", "-r", "--name-only", "-z", commit, "--", INVENTORIES)
    names = set()
    for path in filter(None, listing.split("\0")):
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == SITE_FILE:
            names.add(parts[1])
    return names


def changed_paths(repo: Path, base: str, head: str) -> list[str]:
    # --no-renames: a renamed site is its old name deleted and its new name added.
    output = git(repo, "diff", "--name-only", "--no-renames", "-z", f"{base}...{head}", "--")
    return sorted(filter(None, output.split("\0")))


def site_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == INVENTORIES else None


def select_changed(repo: Path, base: str, head: str, site_wide: Sequence[str]) -> Selection:
    head_commit = commit_of(repo, head)
    existing = sites_at(repo, head_commit)
    if base == NULL_COMMIT:
        return Selection(sorted(existing), [f"no base commit to compare {head} with: every site"])
    paths = changed_paths(repo, commit_of(repo, base), head_commit)
    touched = {site for site in map(site_of, paths) if site}
    notes = [
        f"{name}: deleted (no {INVENTORIES}/{name}/{SITE_FILE} at {head}); nothing to apply,"
        " decommission it by hand"
        for name in sorted(touched - existing)
    ]
    wide = [path for path in paths if any(fnmatch(path, pattern) for pattern in site_wide)]
    if wide:
        notes.append(f"{', '.join(wide)} changed: every site")
        return Selection(sorted(existing), notes)
    return Selection(sorted(touched & existing), notes)


def select_named(repo: Path, head: str, names: Sequence[str]) -> Selection:
    existing = sites_at(repo, commit_of(repo, head))
    unknown = sorted(set(names) - existing)
    if unknown:
        raise ChangedSitesError(
            f"no site {', '.join(unknown)} at {head}; known sites: {', '.join(sorted(existing)) or 'none'}"
        )
    return Selection(sorted(set(names)))


def check_names(sites: Sequence[str]) -> None:
    bad = [name for name in sites if not SITE_NAME.fullmatch(name)]
    if bad:
        raise ChangedSitesError(
            f"{', '.join(f'{INVENTORIES}/{name}/' for name in bad)}: a site directory's name must be"
            " a DNS label (lowercase letters, digits and '-', at most 63), as it names runners and locks"
        )


def yaml_scalar(value: str) -> str:
    # Plain where YAML cannot read it as anything but this string, else single-quoted:
    # site names such as "no" or "0815" must stay strings.
    plain = re.fullmatch(r"[A-Za-z_./][\w./:-]*", value) and not value.endswith(":")
    special = value.lower() in {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
    if plain and not special:
        return value
    return "'" + value.replace("'", "''") + "'"


def yaml_lines(value: object, indent: int = 0) -> list[str]:
    """Block-style YAML of dicts, lists and strings, sequences indented (yamllint's default)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                lines.append(f"{pad}{yaml_scalar(key)}: {yaml_scalar(item)}")
            else:
                lines.append(f"{pad}{yaml_scalar(key)}:")
                lines.extend(yaml_lines(item, indent + 2))
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise TypeError("only lists of strings are written")
            lines.append(f"{pad}- {yaml_scalar(item)}")
    else:
        raise TypeError(f"cannot write {type(value).__name__}")
    return lines


def gitlab_pipeline(sites: Sequence[str], kind: str) -> str:
    """A child pipeline: one job per site on that site's runner, serialized per site."""
    job = GITLAB_JOBS[kind]
    pipeline: dict[str, object] = {"stages": [job.stage]}
    if not sites:
        # GitLab refuses a child pipeline without jobs, which would fail the parent.
        pipeline[f"no-site-to-{kind}"] = {
            "stage": job.stage,
            "script": [f'echo "No site to {kind}."'],
        }
    else:
        pipeline[".site"] = {"before_script": list(SITE_JOB_BEFORE_SCRIPT)}
    for site in sites:
        spec: dict[str, object] = {
            "extends": ".site",
            "stage": job.stage,
            "tags": [f"ecohash-site-{site}"],
            # One job at a time per site, across pipelines: provision, plan and drift
            # share the site's state and lock. GitLab queues, it never cancels.
            "resource_group": f"site-{site}",
            "variables": {"ECOHASH_SITE": site},
            "script": list(job.script),
        }
        if job.timeout:
            spec["timeout"] = job.timeout
        if job.artifacts:
            spec["artifacts"] = {"when": "always", "paths": list(job.artifacts)}
        pipeline[f"{kind}:{site}"] = spec
    header = [
        f"# Generated by ci/{PROG} --format gitlab-pipeline --job {kind}: one job per site.",
        "---",
    ]
    return "\n".join(header + yaml_lines(pipeline)) + "\n"


def render(selection: Selection, output_format: str, kind: str) -> str:
    if output_format == "github-matrix":
        # One line: GitHub reads step outputs as name=value lines.
        return json.dumps({"site": selection.sites}) + "\n"
    if output_format == "gitlab-pipeline":
        return gitlab_pipeline(selection.sites, kind)
    return "".join(f"{site}\n" for site in selection.sites)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print the sites of an inventory repository that a change touches.",
        epilog="\n\n".join(__doc__.split("\n\n")[1:3]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--base", metavar="REF", help="sites changed in BASE...HEAD")
    which.add_argument("--all", action="store_true", help="every site at HEAD")
    which.add_argument("--site", action="append", metavar="NAME",
                       help="a site to list, which must exist at HEAD; repeatable (to re-apply by hand)")
    parser.add_argument("--head", default="HEAD", metavar="REF", help="the change's commit (default: HEAD)")
    parser.add_argument("-C", "--repo", type=Path, default=Path("."), metavar="DIR",
                        help="the inventory repository (default: the current directory)")
    parser.add_argument("--format", choices=FORMATS, default="lines", dest="output_format",
                        help="one name a line (default); {\"site\": [...]}; a GitLab child pipeline")
    parser.add_argument("--job", choices=sorted(GITLAB_JOBS), default="apply",
                        help="what each job of a gitlab-pipeline runs (default: apply)")
    parser.add_argument("--site-wide", action="append", default=[], metavar="GLOB",
                        help="another path whose change changes every site (repeatable)")
    args = parser.parse_args(argv)
    if args.job != "apply" and args.output_format != "gitlab-pipeline":
        parser.error("--job applies to --format gitlab-pipeline only")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.all:
            selection = Selection(sorted(sites_at(args.repo, commit_of(args.repo, args.head))))
        elif args.site:
            selection = select_named(args.repo, args.head, args.site)
        else:
            site_wide = SITE_WIDE_INPUTS + tuple(args.site_wide)
            selection = select_changed(args.repo, args.base, args.head, site_wide)
        check_names(selection.sites)
    except ChangedSitesError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    for note in selection.notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    sys.stdout.write(render(selection, args.output_format, args.job))
    return 0


if __name__ == "__main__":
    sys.exit(main())
