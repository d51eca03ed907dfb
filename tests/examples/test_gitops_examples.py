"""The GitOps examples (examples/gitops/) hold to what CI asks of pipeline files.

The GitHub workflows and the GitLab pipeline, the child pipelines ci/changed_sites.py
generates included, match their published schemas (check-jsonschema's vendored copies,
offline); all YAML is yamllint-clean in strict mode; every shell block they run and every
helper script is shellcheck-clean; actions are pinned to commits; every `ecohash` command
they call exists and takes the options used; and ci/changed_sites.py picks the right sites
from a real git history.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

GITOPS = REPO / "examples" / "gitops"
CI = GITOPS / "ci"
CHANGED_SITES = CI / "changed_sites.py"
WORKFLOWS = sorted((GITOPS / "github" / "workflows").glob("*.yml"))
GITLAB_CI = GITOPS / "gitlab" / ".gitlab-ci.yml"
HELPERS = sorted(CI.glob("*.sh"))
YAMLLINT_CONFIG = GITOPS / ".yamllint"
TOOLS = Path(sys.executable).parent

# Subcommands the pipelines must call; finding fewer means the call parser broke.
EXPECTED_SUBCOMMANDS = {"validate", "render", "plan", "provision", "drift"}


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, **kwargs)


def tool(name: str) -> str:
    found = TOOLS / name if (TOOLS / name).exists() else shutil.which(name)
    assert found, f"{name} is not installed: scripts/install --test installs it"
    return str(found)


@cache
def changed_sites_module() -> ModuleType:
    """ci/changed_sites.py imported, for the pipelines it generates without a repository."""
    spec = importlib.util.spec_from_file_location("gitops_changed_sites", CHANGED_SITES)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def generated_pipelines() -> dict[str, str]:
    """Every kind of child pipeline changed_sites.py writes, with sites and without."""
    module = changed_sites_module()
    pipelines = {}
    for kind in sorted(module.GITLAB_JOBS):
        pipelines[f"generated-{kind}"] = module.gitlab_pipeline(["alpha", "no", "0815"], kind)
        pipelines[f"generated-{kind}-empty"] = module.gitlab_pipeline([], kind)
    return pipelines


# ---------------------------------------------------------------------------------------
# Checkers, each returning its problems as text naming the file, so a failure says where.


def schema_problems(path: Path, schema: str) -> str | None:
    result = run([tool("check-jsonschema"), "--builtin-schema", schema, str(path)])
    return None if result.returncode == 0 else f"{path} does not match {schema}:\n{result.stdout}{result.stderr}"


@dataclass(frozen=True)
class ShellBlock:
    """A shell script a pipeline runs, and where it comes from."""

    where: str
    text: str


GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.S)


def github_blocks(path: Path) -> Iterator[ShellBlock]:
    workflow = yaml.safe_load(path.read_text())
    for job_id, job in workflow.get("jobs", {}).items():
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                # As actionlint does: an expression becomes a word of the same length,
                # which shellcheck reads as a plain word.
                text = GITHUB_EXPRESSION.sub(lambda m: "_" * len(m.group()), step["run"])
                name = step.get("name", step["run"].splitlines()[0])
                yield ShellBlock(f"{path.name}: jobs.{job_id}.steps[{index}] ({name})", text)


def gitlab_blocks(name: str, pipeline: dict[str, Any]) -> Iterator[ShellBlock]:
    """Per job, before_script and script as the one shell GitLab runs; after_script alone."""

    def inherited(job: dict[str, Any], key: str) -> list[str] | None:
        if key in job:
            return job[key]
        parents = job.get("extends", [])
        for parent in [parents] if isinstance(parents, str) else reversed(parents):
            found = inherited(pipeline[parent], key)
            if found is not None:
                return found
        return None

    default = pipeline.get("default", {})
    for job_name, job in pipeline.items():
        if job_name.startswith(".") or not isinstance(job, dict) or "script" not in job:
            continue
        before = inherited(job, "before_script") or default.get("before_script", [])
        yield ShellBlock(f"{name}: {job_name} (before_script, script)", "\n".join(before + job["script"]))
        after = inherited(job, "after_script") or default.get("after_script")
        if after:
            yield ShellBlock(f"{name}: {job_name} (after_script)", "\n".join(after))


@cache
def all_shell_blocks() -> tuple[ShellBlock, ...]:
    blocks = [block for path in WORKFLOWS for block in github_blocks(path)]
    blocks += gitlab_blocks(GITLAB_CI.name, yaml.safe_load(GITLAB_CI.read_text()))
    for name, text in generated_pipelines().items():
        blocks += gitlab_blocks(name, yaml.safe_load(text))
    return tuple(blocks)


def shellcheck_problems(where: str, script: Path) -> str | None:
    result = run([tool("shellcheck"), "--shell=bash", "--format=gcc", str(script)])
    return None if result.returncode == 0 else f"{where}: shellcheck:\n{result.stdout}{result.stderr}"


def shell_block_problems(block: ShellBlock, directory: Path) -> str | None:
    script = directory / "block.sh"
    script.write_text("#!/usr/bin/env bash\n" + block.text + "\n")
    problems = shellcheck_problems(block.where, script)
    if problems:
        numbered = "\n".join(f"{i:3} {line}" for i, line in enumerate(script.read_text().splitlines(), 1))
        problems += f"\nthe block as checked:\n{numbered}"
    return problems


PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+(\.\d+)*$")


def unpinned_uses(path: Path) -> list[str]:
    """`uses:` lines not pinned to a full commit with its version in a comment."""
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.match(r"^\s*(?:- )?uses:\s*(.*)$", line)
        if match and not match[1].startswith("./") and not PINNED_USES.match(match[1]):
            problems.append(f"{path.name}:{number}: not pinned to a 40-hex commit with '  # vX.Y.Z': {match[1]}")
    return problems


ECOHASH_CALL = re.compile(r"(?:^|(?<=[\s;&|(]))ecohash[ \t]+(?P<sub>[a-z][a-z-]*)(?=\s|$)(?P<args>.*)$")
ENDS_COMMAND = {";", "|", "||", "&", "&&", "then", "do", "fi", "done"}


@dataclass(frozen=True)
class EcohashCall:
    where: str
    subcommand: str
    options: tuple[str, ...]


def ecohash_calls(where: str, text: str) -> Iterator[EcohashCall]:
    """`ecohash SUB --option...` in shell text, comment lines skipped, continuations joined."""
    lines = text.replace("\\\n", " ").splitlines()
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("#"):
            continue
        match = ECOHASH_CALL.search(line)
        if not match:
            continue
        try:
            words = shlex.split(match["args"], comments=True)
        except ValueError:
            words = match["args"].split()
        options = []
        for word in words:
            if word in ENDS_COMMAND or word[0] in "<>|;&)" or word.startswith("2>"):
                break
            if word.startswith("-") and word != "-":
                options.append(word.split("=", 1)[0])
        yield EcohashCall(f"{where}, line {number}", match["sub"], tuple(options))


@cache
def all_ecohash_calls() -> tuple[EcohashCall, ...]:
    calls = [call for block in all_shell_blocks() for call in ecohash_calls(block.where, block.text)]
    for path in HELPERS:
        calls += ecohash_calls(f"ci/{path.name}", path.read_text())
    return tuple(calls)


@cache
def ecohash_help(subcommand: str) -> subprocess.CompletedProcess[str]:
    return run([tool("ecohash"), subcommand, "--help"])


def ecohash_call_problems(calls: list[EcohashCall]) -> list[str]:
    problems = []
    for call in calls:
        result = ecohash_help(call.subcommand)
        if result.returncode != 0:
            problems.append(f"{call.where}: `ecohash {call.subcommand}` is not an ecohash command "
                            f"(--help exits {result.returncode}: {result.stderr.strip()})")
            continue
        for option in call.options:
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout):
                problems.append(f"{call.where}: `ecohash {call.subcommand}` has no option {option}")
    return problems


# ---------------------------------------------------------------------------------------
# The example files


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_github_workflow_matches_the_schema(workflow: Path) -> None:
    assert not (problems := schema_problems(workflow, "vendor.github-workflows")), problems


def test_gitlab_pipeline_matches_the_schema() -> None:
    assert not (problems := schema_problems(GITLAB_CI, "vendor.gitlab-ci")), problems


@pytest.mark.parametrize("name", sorted(generated_pipelines()))
def test_generated_child_pipeline_matches_the_schema(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(generated_pipelines()[name])
    assert not (problems := schema_problems(path, "vendor.gitlab-ci")), problems


def test_yaml_is_lint_clean(tmp_path: Path) -> None:
    files = [*WORKFLOWS, GITLAB_CI, YAMLLINT_CONFIG]
    for name, text in generated_pipelines().items():
        files.append(tmp_path / f"{name}.yml")
        files[-1].write_text(text)
    result = run([tool("yamllint"), "--strict", "--format", "parsable", "-c", str(YAMLLINT_CONFIG),
                  *map(str, files)])
    assert result.returncode == 0, f"yamllint:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("block", all_shell_blocks(), ids=lambda b: b.where)
def test_shell_block_is_shellcheck_clean(block: ShellBlock, tmp_path: Path) -> None:
    assert not (problems := shell_block_problems(block, tmp_path)), problems


@pytest.mark.parametrize("script", HELPERS, ids=lambda p: p.name)
def test_helper_script_is_shellcheck_clean_and_strict(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script}: not executable"
    assert script.read_text().startswith("#!/usr/bin/env bash\n"), f"{script}: no bash shebang"
    assert "\nset -euo pipefail\n" in script.read_text(), f"{script}: no 'set -euo pipefail'"
    assert not (problems := shellcheck_problems(str(script), script)), problems


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_commits(workflow: Path) -> None:
    assert "uses:" in workflow.read_text(), f"{workflow}: no action found; the check would pass vacuously"
    assert not (problems := unpinned_uses(workflow)), "\n".join(problems)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_granted_per_job(workflow: Path) -> None:
    document = yaml.safe_load(workflow.read_text())
    assert document.get("permissions") == {}, f"{workflow}: top-level permissions must be {{}}"
    missing = [job for job, spec in document["jobs"].items() if "permissions" not in spec]
    assert not missing, f"{workflow}: jobs without their own permissions: {', '.join(missing)}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_run_blocks_take_expressions_from_the_environment(workflow: Path) -> None:
    # An expression in a script is pasted in before the shell parses it: script injection.
    document = yaml.safe_load(workflow.read_text())
    pasted = [f"{workflow.name}: jobs.{job}: {step['run'].splitlines()[0]}"
              for job, spec in document["jobs"].items() for step in spec.get("steps", [])
              if "run" in step and GITHUB_EXPRESSION.search(step["run"])]
    assert not pasted, "expressions in run blocks; pass them through env:\n" + "\n".join(pasted)


def test_pipelines_call_every_expected_ecohash_subcommand() -> None:
    found = {call.subcommand for call in all_ecohash_calls()}
    assert found >= EXPECTED_SUBCOMMANDS, f"no call found of: {', '.join(sorted(EXPECTED_SUBCOMMANDS - found))}"


@pytest.mark.parametrize("subcommand", sorted(EXPECTED_SUBCOMMANDS | {c.subcommand for c in all_ecohash_calls()}))
def test_ecohash_subcommand_and_options_exist(subcommand: str) -> None:
    calls = [call for call in all_ecohash_calls() if call.subcommand == subcommand]
    assert not (problems := ecohash_call_problems(calls)), "\n".join(problems)


def test_referenced_ci_scripts_exist() -> None:
    sources = [*WORKFLOWS, GITLAB_CI, *HELPERS, CHANGED_SITES]
    reference = re.compile(r"(?:(?<![\w/.-])ci/|\$here/)([\w.-]+\.(?:sh|py))")
    missing = [f"{source.name}: {name}" for source in sources
               for name in sorted(set(reference.findall(source.read_text())))
               if not os.access(CI / name, os.X_OK)]
    assert not missing, "referenced but not an executable file in examples/gitops/ci/:\n" + "\n".join(missing)


def test_readme_names_every_file() -> None:
    readme = (GITOPS / "README.md").read_text()
    files = [p for p in GITOPS.rglob("*") if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts]
    unnamed = [str(p.relative_to(GITOPS)) for p in files if p.name not in readme]
    assert not unnamed, f"examples/gitops/README.md does not mention: {', '.join(sorted(unnamed))}"


def test_changed_sites_is_an_executable_stdlib_script() -> None:
    text = CHANGED_SITES.read_text()
    assert os.access(CHANGED_SITES, os.X_OK), f"{CHANGED_SITES}: not executable"
    assert text.startswith("#!/usr/bin/env python3\n"), f"{CHANGED_SITES}: no python3 shebang"
    tree = ast.parse(text)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    outside = sorted(imported - set(sys.stdlib_module_names) - {"__future__"})
    assert not outside, f"{CHANGED_SITES}: imports outside the standard library: {', '.join(outside)}"
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body), \
        f"{CHANGED_SITES}: no main()"


# ---------------------------------------------------------------------------------------
# The checkers catch what they are for: each is shown a broken example.


def test_checkers_catch_broken_examples(tmp_path: Path) -> None:
    workflow = tmp_path / "broken.yml"
    workflow.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n"
                        "    steps:\n      - uses: actions/checkout@v4\n        run: echo $1\n")
    assert schema_problems(workflow, "vendor.github-workflows")
    assert unpinned_uses(workflow) == ["broken.yml:7: not pinned to a 40-hex commit with '  # vX.Y.Z': "
                                       "actions/checkout@v4"]
    block = ShellBlock("broken", "echo ${{ matrix.site }}\nrm -rf $dir/")
    assert "SC2086" in (shell_block_problems(block, tmp_path) or "")
    problems = ecohash_call_problems(list(ecohash_calls("broken", "ecohash plan x --no-such-option\n"
                                                                  "ecohash no-such-command x")))
    assert problems[0] == "broken, line 1: `ecohash plan` has no option --no-such-option"
    assert problems[1].startswith("broken, line 2: `ecohash no-such-command` is not an ecohash command")


def test_call_parser_reads_options_up_to_the_end_of_the_command() -> None:
    calls = list(ecohash_calls("t", 'rc=0; ecohash plan "$s" --detailed-exitcode --json >"plan/$s.json" || rc=$?\n'
                                    "# ecohash drift --in-a-comment\n"
                                    "xargs ecohash validate < sites.txt\n"
                                    'echo "### ecohash render: $sites"\n'
                                    "ecohash render \\\n  x -o out\n"))
    assert calls == [EcohashCall("t, line 1", "plan", ("--detailed-exitcode", "--json")),
                     EcohashCall("t, line 3", "validate", ()),
                     EcohashCall("t, line 5", "render", ("-o",))]


# ---------------------------------------------------------------------------------------
# ci/changed_sites.py in a real repository

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> str:
    result = run(["git", "-C", str(repo), *args], env=GIT_ENV)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def commit(repo: Path, write: dict[str, str] | None = None, delete: tuple[str, ...] = ()) -> str:
    for name, text in (write or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for name in delete:
        git(repo, "rm", "-rq", name)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change", "--allow-empty")
    return git(repo, "rev-parse", "HEAD")


def site_file(name: str, note: str = "") -> str:
    return f"metadata:\n  name: {name}\n# {note}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An inventory repository: sites alpha, bravo and charlie, shared inputs, and ci/."""
    root = tmp_path / "inventory"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, {
        **{f"inventories/{name}/site.yaml": site_file(name) for name in ("alpha", "bravo", "charlie")},
        "inventories/alpha/ssh_config": "Host *\n",
        "node-standard.lock.yml": "kubernetes: 1.31\n",
        "ecohash-version.txt": "https://example.com/ecohash.git " + "0" * 39 + "1\n",
        "ci/plan.sh": "#!/usr/bin/env bash\n",
        "README.md": "inventory\n",
    })
    return root


def changed_sites(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(CHANGED_SITES), "-C", str(repo), *args], env=GIT_ENV)


def sites_of(repo: Path, *args: str) -> list[str]:
    result = changed_sites(repo, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_one_changed_site(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/bravo/site.yaml": site_file("bravo", "more racks")})
    assert sites_of(repo, "--base", base) == ["bravo"]


def test_any_file_of_a_site_changes_it_and_sites_are_sorted(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/charlie/site.yaml": site_file("charlie", "x"),
                  "inventories/alpha/ssh_config": "Host * !bastion\n"})
    assert sites_of(repo, "--base", base) == ["alpha", "charlie"]


@pytest.mark.parametrize("shared", ["node-standard.lock.yml", "ecohash-version.txt", "ci/plan.sh",
                                    ".gitlab-ci.yml", ".github/workflows/ecohash-apply.yml"])
def test_a_site_wide_input_changes_every_site(repo: Path, shared: str) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {shared: "changed\n"})
    result = changed_sites(repo, "--base", base)
    assert (result.returncode, result.stdout) == (0, "alpha\nbravo\ncharlie\n")
    assert f"changed_sites.py: {shared} changed: every site" in result.stderr


def test_other_files_change_no_site(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"README.md": "more\n", ".github/workflows/docs.yml": "x\n", "inventories/README.md": "x\n"})
    assert sites_of(repo, "--base", base) == []


def test_a_deleted_site_is_reported_not_listed(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/alpha/site.yaml": site_file("alpha", "x")}, delete=("inventories/bravo",))
    result = changed_sites(repo, "--base", base)
    assert (result.returncode, result.stdout) == (0, "alpha\n")
    assert result.stderr == ("changed_sites.py: bravo: deleted (no inventories/bravo/site.yaml at HEAD);"
                             " nothing to apply, decommission it by hand\n")


def test_a_renamed_site_is_the_old_deleted_and_the_new_changed(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "inventories/charlie", "inventories/delta")
    commit(repo)
    result = changed_sites(repo, "--base", base)
    assert result.stdout == "delta\n"
    assert "charlie: deleted" in result.stderr


def test_no_change_lists_nothing(repo: Path) -> None:
    result = changed_sites(repo, "--base", "HEAD")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_only_the_change_since_the_merge_base_counts(repo: Path) -> None:
    git(repo, "checkout", "-qb", "feature")
    commit(repo, {"inventories/alpha/site.yaml": site_file("alpha", "feature")})
    git(repo, "checkout", "-q", "main")
    commit(repo, {"inventories/charlie/site.yaml": site_file("charlie", "main moved on")})
    git(repo, "checkout", "-q", "feature")
    assert sites_of(repo, "--base", "main") == ["alpha"]


def test_head_is_read_from_its_commit_not_the_working_tree(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    head = commit(repo, {"inventories/bravo/site.yaml": site_file("bravo", "x")})
    commit(repo, {"inventories/alpha/site.yaml": site_file("alpha", "later")})
    (repo / "inventories" / "charlie" / "site.yaml").write_text("uncommitted\n")
    assert sites_of(repo, "--base", base, "--head", head) == ["bravo"]


def test_github_matrix(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    assert sites_of(repo, "--base", base, "--format", "github-matrix") == ['{"site": []}']
    commit(repo, {"inventories/charlie/site.yaml": site_file("charlie", "x"),
                  "inventories/alpha/site.yaml": site_file("alpha", "x")})
    output = sites_of(repo, "--base", base, "--format", "github-matrix")
    assert len(output) == 1, "GitHub reads an output as one name=value line"
    assert json.loads(output[0]) == {"site": ["alpha", "charlie"]}


def jobs_of(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keywords = {"stages", "default", "variables", "workflow", "include"}
    return {name: job for name, job in pipeline.items() if name not in keywords and not name.startswith(".")}


def test_gitlab_pipeline_has_one_job_per_changed_site(repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/charlie/site.yaml": site_file("charlie", "x"),
                  "inventories/alpha/site.yaml": site_file("alpha", "x")}, delete=("inventories/bravo",))
    result = changed_sites(repo, "--base", base, "--format", "gitlab-pipeline")
    assert result.returncode == 0, result.stderr
    assert changed_sites(repo, "--base", base, "--format", "gitlab-pipeline").stdout == result.stdout, \
        "two runs wrote different pipelines"
    path = tmp_path / "apply.yml"
    path.write_text(result.stdout)
    assert not (problems := schema_problems(path, "vendor.gitlab-ci")), problems
    jobs = jobs_of(yaml.safe_load(result.stdout))
    assert sorted(jobs) == ["apply:alpha", "apply:charlie"]
    for site in ("alpha", "charlie"):
        job = jobs[f"apply:{site}"]
        assert (job["resource_group"], job["tags"], job["variables"]) == \
            (f"site-{site}", [f"ecohash-site-{site}"], {"ECOHASH_SITE": site})
        assert job["script"] == ['ecohash provision "$ECOHASH_SITE"']


@pytest.mark.parametrize("kind", ["apply", "plan", "drift"])
def test_gitlab_pipeline_without_sites_has_one_no_op_job(repo: Path, tmp_path: Path, kind: str) -> None:
    result = changed_sites(repo, "--base", "HEAD", "--format", "gitlab-pipeline", "--job", kind)
    path = tmp_path / "empty.yml"
    path.write_text(result.stdout)
    assert not (problems := schema_problems(path, "vendor.gitlab-ci")), problems
    jobs = jobs_of(yaml.safe_load(result.stdout))
    assert list(jobs) == [f"no-site-to-{kind}"]
    assert "tags" not in jobs[f"no-site-to-{kind}"], "a no-op job needs no site runner"


def test_all_lists_every_site_at_head(repo: Path) -> None:
    commit(repo, {"inventories/echo/site.yaml": site_file("echo")}, delete=("inventories/bravo",))
    assert sites_of(repo, "--all") == ["alpha", "charlie", "echo"]


def test_drift_pipeline_for_all_sites(repo: Path) -> None:
    output = "\n".join(sites_of(repo, "--all", "--format", "gitlab-pipeline", "--job", "drift"))
    jobs = jobs_of(yaml.safe_load(output))
    assert sorted(jobs) == ["drift:alpha", "drift:bravo", "drift:charlie"]
    assert jobs["drift:alpha"]["script"] == ['ci/drift.sh "$ECOHASH_SITE" ci/gitlab-drift-issue.sh']


def test_named_sites_must_exist(repo: Path) -> None:
    assert sites_of(repo, "--site", "charlie", "--site", "alpha") == ["alpha", "charlie"]
    result = changed_sites(repo, "--site", "zulu")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "changed_sites.py: error: no site zulu at HEAD; known sites: alpha, bravo, charlie\n"


def test_no_base_commit_means_every_site(repo: Path) -> None:
    result = changed_sites(repo, "--base", "0" * 40)
    assert result.stdout == "alpha\nbravo\ncharlie\n"
    assert "no base commit" in result.stderr


def test_a_base_that_is_not_there_fails_with_the_fix(repo: Path) -> None:
    result = changed_sites(repo, "--base", "origin/main")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("changed_sites.py: error: no commit 'origin/main' in ")
    assert "fetch-depth: 0" in result.stderr


def test_a_site_directory_must_be_named_as_a_dns_label(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/Bad_Site/site.yaml": site_file("bad")})
    result = changed_sites(repo, "--base", base)
    assert result.returncode == 2
    assert "inventories/Bad_Site/: a site directory's name must be a DNS label" in result.stderr


def test_job_kind_needs_the_gitlab_format(repo: Path) -> None:
    result = changed_sites(repo, "--all", "--job", "drift")
    assert result.returncode == 2
    assert "--job applies to --format gitlab-pipeline only" in result.stderr


# ---------------------------------------------------------------------------------------
# The helper scripts' exit codes and calls, with fake ecohash, gh and curl on PATH

FAKE_ECOHASH = r"""
printf '%s\n' "$*" >>"$FAKE_LOG"
site=$2
exit_var=FAKE_EXIT_${site//-/_}
case $1 in
    plan|drift)
        if [ "$1" = plan ] && [[ " $* " != *" --detailed-exitcode "* ]]; then
            echo "the plan of $site as a table"
            exit 0
        fi
        echo "{\"site\": \"$site\"}"
        exit "${!exit_var:-0}"
        ;;
    render)
        if grep -q broken "inventories/$site/site.yaml"; then
            echo "inventories/$site/site.yaml:1: broken" >&2
            exit 2
        fi
        rm -rf "$4"
        mkdir -p "$4"
        cp "inventories/$site/site.yaml" "$4/object.yaml"
        echo "site: $site" >"$4/.ecohash-render"
        ;;
esac
"""

# Records each call; `gh issue list` answers $FAKE_EXISTING, `gh api` $FAKE_COMMENT_ID;
# a --body-file or body=@FILE is kept in $FAKE_LOG.body.
FAKE_GH = r"""
printf '%s\n' "$*" >>"$FAKE_LOG"
previous=
for arg; do
    [ "$previous" = --body-file ] && cat "$arg" >>"$FAKE_LOG.body"
    [[ $arg == body=@* ]] && cat "${arg#body=@}" >>"$FAKE_LOG.body"
    previous=$arg
done
[ "$1 $2" = "issue list" ] && echo "${FAKE_EXISTING:-}"
[ "$1" = api ] && [[ " $* " != *" --method "* ]] && echo "${FAKE_COMMENT_ID:-}"
exit 0
"""

# Records the header curl reads from stdin apart from its arguments; a GET answers
# $FAKE_RESPONSE; a body@FILE or description@FILE is kept in $FAKE_LOG.body.
FAKE_CURL = r"""
header=$(cat)
printf 'HEADER %s\nARGS %s\n' "$header" "$*" >>"$FAKE_LOG"
for arg; do
    [[ $arg == *@/* ]] && cat "${arg#*@}" >>"$FAKE_LOG.body"
done
if [[ " $* " == *" --request GET "* ]]; then echo "${FAKE_RESPONSE:-[]}"; else echo '{}'; fi
"""


@dataclass
class Fakes:
    env: dict[str, str]
    log: Path

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def body(self) -> str:
        return Path(f"{self.log}.body").read_text()


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, body in (("ecohash", FAKE_ECOHASH), ("gh", FAKE_GH), ("curl", FAKE_CURL)):
        (bin_dir / name).write_text("#!/usr/bin/env bash\n" + body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**GIT_ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(log),
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/inventory",
           "GITHUB_RUN_ID": "99", "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
           "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7", "CI_JOB_URL": "https://gitlab.example.com/job/1"}
    return Fakes(env, log)


def helper(name: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([str(CI / name), *args], cwd=cwd, env=env)


def test_plan_passes_pending_changes_and_fails_on_errors(fakes: Fakes, tmp_path: Path) -> None:
    env = {**fakes.env, "FAKE_EXIT_alpha": "0", "FAKE_EXIT_bravo": "2"}
    result = helper("plan.sh", "alpha", "bravo", cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout) == \
        (0, "alpha: nothing to change\nbravo: changes pending\nthe plan of bravo as a table\n")
    assert json.loads((tmp_path / "plan" / "bravo.json").read_text()) == {"site": "bravo"}
    assert fakes.calls()[0] == "plan alpha --detailed-exitcode --json"
    result = helper("plan.sh", "alpha", "charlie", "bravo", cwd=tmp_path, env={**env, "FAKE_EXIT_charlie": "1"})
    assert result.returncode == 1, "an error in one site's plan must fail the job"
    assert result.stderr == "charlie: plan failed (exit 1)\n"
    assert "bravo: changes pending" in result.stdout, "the other sites are still planned"


@pytest.mark.parametrize(("exit_code", "status", "job_exit"), [(0, "clean", 0), (2, "drift", 0), (1, "error", 1)])
def test_drift_records_the_verdict_and_alerts_on_drift(fakes: Fakes, tmp_path: Path, exit_code: int, status: str,
                                                       job_exit: int) -> None:
    alert = tmp_path / "alert"
    alert.write_text('#!/usr/bin/env bash\necho "alert $*" >>"$FAKE_LOG"\n')
    alert.chmod(0o755)
    result = helper("drift.sh", "alpha", str(alert), cwd=tmp_path, env={**fakes.env, "FAKE_EXIT_alpha": str(exit_code)})
    assert result.returncode == job_exit, result.stderr
    assert (tmp_path / "drift" / "alpha.status").read_text() == f"{status}\n"
    assert fakes.calls()[0] == "drift alpha --json"
    assert fakes.calls()[1:] == (["alert alpha drift/alpha.json"] if status == "drift" else [])


@pytest.fixture
def base_install(fakes: Fakes, tmp_path: Path) -> dict[str, str]:
    """The environment with the ecohash the fixture repository pins already installed: an
    ecohash that logs "base ecohash ..." and hands over to the fake on PATH."""
    root = tmp_path / "installs"
    bin_dir = root / ("0" * 39 + "1") / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir.parent.parent / ".complete").touch()
    (bin_dir / "ecohash").write_text('#!/usr/bin/env bash\necho "base ecohash $*" >>"$FAKE_LOG"\nexec ecohash "$@"\n')
    (bin_dir / "ecohash").chmod(0o755)
    return {**fakes.env, "ECOHASH_INSTALL_ROOT": str(root)}


def test_render_diff_comments_the_change(repo: Path, fakes: Fakes, base_install: dict[str, str]) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/alpha/site.yaml": site_file("alpha", "more racks"),
                  "inventories/delta/site.yaml": site_file("delta")})
    result = helper("render-diff.sh", base, "alpha", "bravo", "delta", cwd=repo, env=base_install)
    assert result.returncode == 0, result.stderr
    base_renders = [call.split(" -o ")[0] for call in fakes.calls() if call.startswith("base ecohash")]
    assert base_renders == ["base ecohash render alpha", "base ecohash render bravo"], \
        "the base renders with the ecohash it pins, and a new site has no base"
    comment = (repo / "rendered" / "comment.md").read_text()
    assert comment.startswith("<!-- ecohash-render-diff -->\n### ecohash render\n")
    assert "| alpha | 1 |\n| bravo | 0 |\n| delta | 1 |\n" in comment
    assert "- delta: a new site, every object is added\n" in comment
    assert "+# more racks\n" in comment
    diff = (repo / "rendered" / "render.diff").read_text()
    assert "--- rendered/base/alpha/object.yaml\n+++ rendered/head/alpha/object.yaml\n" in diff, \
        "no file times on the --- and +++ lines"
    assert len(git(repo, "worktree", "list").splitlines()) == 1, "the base's worktree was left behind"


def test_render_diff_fails_when_the_head_does_not_render(repo: Path, base_install: dict[str, str]) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"inventories/alpha/site.yaml": site_file("alpha", "broken")})
    result = helper("render-diff.sh", base, "alpha", cwd=repo, env=base_install)
    assert result.returncode == 2
    assert "inventories/alpha/site.yaml:1: broken" in result.stderr


def test_render_diff_without_sites_says_so(repo: Path, base_install: dict[str, str]) -> None:
    result = helper("render-diff.sh", "HEAD", cwd=repo, env=base_install)
    assert result.returncode == 0, result.stderr
    assert (repo / "rendered" / "comment.md").read_text() == \
        "<!-- ecohash-render-diff -->\n### ecohash render\n\nNo site changed, so nothing was rendered.\n"


def drift_dir(tmp_path: Path, verdicts: dict[str, str]) -> Path:
    directory = tmp_path / "drift"
    directory.mkdir()
    for site, status in verdicts.items():
        (directory / f"{site}.status").write_text(f"{status}\n")
        (directory / f"{site}.json").write_text(f'{{"site": "{site}", "nodes": []}}\n')
    return directory


@pytest.mark.parametrize(("existing", "filed"), [
    ("", 'issue create --repo org/inventory --title ecohash drift: alpha --label drift --body-file'),
    ("12", "issue comment 12 --repo org/inventory --body-file"),
])
def test_github_drift_issue_is_opened_once_per_site(fakes: Fakes, tmp_path: Path, existing: str, filed: str) -> None:
    directory = drift_dir(tmp_path, {"alpha": "drift", "bravo": "clean", "charlie": "error"})
    result = helper("github-drift-issues.sh", str(directory), cwd=GITOPS, env={**fakes.env, "FAKE_EXISTING": existing})
    assert result.returncode == 0, result.stderr
    calls = [call for call in fakes.calls() if not call.startswith("label create")]
    assert calls[0].startswith("issue list --repo org/inventory --state open --label drift")
    assert calls[1].startswith(filed), calls
    assert len(calls) == 2, "only the drifted site gets an issue"
    assert '{"site": "alpha", "nodes": []}' in fakes.body()
    assert "https://github.com/org/inventory/actions/runs/99" in fakes.body()


@pytest.mark.parametrize(("comment_id", "posted"), [
    ("", "api --silent --method POST repos/org/inventory/issues/5/comments -F body=@"),
    ("314", "api --silent --method PATCH repos/org/inventory/issues/comments/314 -F body=@"),
])
def test_github_pr_comment_is_kept_current(fakes: Fakes, tmp_path: Path, comment_id: str, posted: str) -> None:
    body = tmp_path / "comment.md"
    body.write_text("<!-- ecohash-render-diff -->\nthe diff\n")
    result = helper("github-pr-comment.sh", "5", str(body), cwd=GITOPS,
                    env={**fakes.env, "FAKE_COMMENT_ID": comment_id})
    assert result.returncode == 0, result.stderr
    assert fakes.calls()[1].startswith(posted), fakes.calls()
    assert fakes.body() == body.read_text()


@pytest.mark.parametrize(("issues", "filed"), [
    ('[{"iid": 3, "title": "ecohash drift: alpha-2"}]', "--request POST https://gitlab.example.com/api/v4/projects/42/issues "),
    ('[{"iid": 5, "title": "ecohash drift: alpha"}]', "--request POST https://gitlab.example.com/api/v4/projects/42/issues/5/notes "),
])
def test_gitlab_drift_issue_is_opened_once_per_site(fakes: Fakes, tmp_path: Path, issues: str, filed: str) -> None:
    directory = drift_dir(tmp_path, {"alpha": "drift"})
    env = {**fakes.env, "ECOHASH_ALERT_TOKEN": "alert-secret", "FAKE_RESPONSE": issues}
    result = helper("gitlab-drift-issue.sh", "alpha", str(directory / "alpha.json"), cwd=GITOPS, env=env)
    assert result.returncode == 0, result.stderr
    calls = fakes.calls()
    assert calls[0::2] == ["HEADER PRIVATE-TOKEN: alert-secret"] * 2, "the token goes on stdin"
    assert not any("alert-secret" in call for call in calls[1::2]), "the token must not be in curl's arguments"
    assert "--request GET https://gitlab.example.com/api/v4/projects/42/issues" in calls[1]
    assert filed in calls[3], calls[3]
    assert '{"site": "alpha", "nodes": []}' in fakes.body()


def test_gitlab_drift_issue_needs_its_token(fakes: Fakes, tmp_path: Path) -> None:
    directory = drift_dir(tmp_path, {"alpha": "drift"})
    result = helper("gitlab-drift-issue.sh", "alpha", str(directory / "alpha.json"), cwd=GITOPS, env=fakes.env)
    assert result.returncode != 0
    assert "ECOHASH_ALERT_TOKEN: set the CI/CD variable ECOHASH_ALERT_TOKEN (README.md)" in result.stderr


@pytest.mark.parametrize(("notes", "posted"), [
    ('[{"id": 8, "body": "> <!-- ecohash-render-diff -->"}]', "--request POST https://gitlab.example.com/api/v4/projects/42/merge_requests/7/notes "),
    ('[{"id": 9, "body": "<!-- ecohash-render-diff -->\\nold"}]', "--request PUT https://gitlab.example.com/api/v4/projects/42/merge_requests/7/notes/9 "),
])
def test_gitlab_mr_note_is_kept_current(fakes: Fakes, tmp_path: Path, notes: str, posted: str) -> None:
    body = tmp_path / "comment.md"
    body.write_text("<!-- ecohash-render-diff -->\nthe diff\n")
    env = {**fakes.env, "ECOHASH_NOTE_TOKEN": "note-secret", "FAKE_RESPONSE": notes}
    result = helper("gitlab-mr-note.sh", str(body), cwd=GITOPS, env=env)
    assert result.returncode == 0, result.stderr
    assert posted in fakes.calls()[3], fakes.calls()
    assert fakes.body() == body.read_text()
