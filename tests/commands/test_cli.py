import json

import click
import pytest
from click.testing import CliRunner

from ecohash.commands.main import cli
from tests.conftest import EXAMPLE_SITE, REPO


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    for flag in ("-h", "--help"):
        result = run(*path, flag)
        assert result.exit_code == 0
        assert "Example:" in result.stdout


def test_validate_examples(monkeypatch):
    monkeypatch.chdir(REPO)
    result = run("validate", "tx-odessa", "nd-williston", "ga-dalton")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "inventories/tx-odessa/site.yaml: ok: site tx-odessa, 408 nodes, 3264 GPUs in 4 containers"
    )


def test_validate_reports_each_problem_as_file_line_and_exits_2(write_site):
    good = write_site(name="good.yaml")
    bad = write_site(good.read_text().replace("pue: 1.25", "pue: 0.5").replace("cooling: hydro", "cooling: x"),
                     name="bad.yaml")
    result = run("validate", str(good), str(bad))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{bad}:10: spec.power.pue: must be greater than or equal to 1 (got 0.5)",
        f"{bad}:22: spec.containers[0].cooling: must be 'air', 'hydro' or 'immersion' (got 'x')",
    ]
    assert result.stdout.startswith(f"{good}: ok")


# What plan, provision and render refuse of a site that loads and fits its budgets; validate
# runs their checks, so it refuses each too, in one line, with exit 2.
def test_validate_refuses_rack_groups_that_collide(write_site):
    path = write_site(EXAMPLE_SITE, ("        - name: r01\n", "        - name: a-b\n"), (
        "  containers:\n", "  containers:\n"
        "    - name: c01-a\n      cooling: hydro\n      power_kw: 100\n      cooling_kw: 95\n"
        "      racks:\n        - name: b\n          power_kw: 45\n          nodes:\n"
        "            - {name: c01a-b-n01, sku: hgx-h100-8, mgmt_ip: 10.20.2.11}\n"))
    result = run("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr == (f"{path}:35: rack c01/a-b and rack c01-a/b both make the Ansible group "
                             "rack_c01_a_b; rename one\n")
    assert result.stdout == ""


def test_validate_refuses_a_missing_node_standard(write_site, tmp_path):
    path = write_site(EXAMPLE_SITE, ("  kubernetes:\n", "  provisioning:\n    standard: "
                                     "missing.lock.yml\n  kubernetes:\n"))
    result = run("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr == (f"ecohash: {tmp_path}/missing.lock.yml: cannot read the node standard: "
                             "No such file or directory\n")


def test_validate_refuses_a_node_standard_that_does_not_check(write_site, tmp_path):
    standard = tmp_path / "standard.lock.yml"
    standard.write_text((REPO / "node-standard.lock.yml").read_text().replace("k3s:", "k3z:", 1))
    path = write_site(EXAMPLE_SITE, ("  kubernetes:\n", "  provisioning:\n    standard: "
                                     "standard.lock.yml\n  kubernetes:\n"))
    result = run("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{standard}:")


def test_validate_refuses_a_stack_the_api_server_would_refuse(write_site):
    path = write_site(EXAMPLE_SITE, ("  containers:\n", "  services:\n"
                                     "    - {name: llama, model: meta-llama/Llama-3.1-8B-Instruct, "
                                     "gpu_model: h100-sxm, gpus_per_replica: 1, replicas: {min: 1, max: 2147483648}}\n"
                                     "  containers:\n"))
    result = run("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"ecohash: {path}: the site's stack fails its checks: HorizontalPodAutoscaler "
        "ecohash-c01/llama: spec.maxReplicas: 2147483648 is out of the int32 range "
        "(-2147483648 to 2147483647)\n")


def test_unknown_site_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    result = run("plan", "atlantis")
    assert result.exit_code == 2
    assert result.stderr == (
        "ecohash: no site 'atlantis': no <inventory>/atlantis/site.yaml under "
        f"inventories, {tmp_path}/state/inventories\n"
    )


def test_a_mistyped_site_name_gets_did_you_mean(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    result = run("plan", "tx-odesa")
    assert result.exit_code == 2
    assert result.stderr.endswith(" (did you mean 'tx-odessa'?)\n")
    assert len(result.stderr.splitlines()) == 1


def test_a_mistyped_sku_in_a_site_file_gets_did_you_mean_at_its_line(write_site):
    path = write_site(EXAMPLE_SITE, ("sku: hgx-h100-8", "sku: hgx-h10-8"))
    result = run("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:")
    assert "unknown sku 'hgx-h10-8' (did you mean 'hgx-h100-8'?)" in result.stderr


def test_plan_json_has_the_documented_keys(write_site):
    result = run("plan", str(write_site(write_site().read_text().replace("power_kw: 45", "power_kw: 30"))),
                 "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"site", "it_budget_kw", "draw_at_tdp_kw", "draw_kw", "gpus", "containers", "nodes"} <= set(data)
    assert data["it_budget_kw"] == 9500.0 and data["gpus"] == 32
    assert {"name", "budget_kw", "draw_kw"} <= set(data["containers"][0])
    assert data["nodes"][0] == {
        "name": "c01-r01-n01", "container": "c01", "rack": "r01", "sku": "hgx-h100-8",
        "gpu_model": "h100-sxm", "gpus": 8, "gpu_cap_w": 612, "draw_w": 2600 + 8 * 612,
        "capped_by": "rack c01/r01", "mgmt_ip": "10.20.1.11",
    }
    assert data["containers"][0]["racks"][0]["gpu_cap_w"] == 612


def test_plan_table_names_what_set_the_caps(write_site):
    result = run("plan", str(write_site(write_site().read_text().replace("power_kw: 45", "power_kw: 30"))))
    assert result.exit_code == 0
    assert "h100-sxm 612 W ×32 (rack c01/r01)" in result.stdout
    assert "Caps set by: rack c01/r01 at 612 W" in result.stdout


def test_infeasible_site_exits_2_naming_the_domain(write_site):
    path = write_site(write_site().read_text().replace("power_kw: 45", "power_kw: 10"))
    result = run("plan", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"{path}:26: rack c01/r01 is infeasible: budget 10.000 kW, but its 4 nodes need 16.800 kW "
        "even at the lowest settable GPU caps (hosts alone 10.400 kW)\n"
    )


def test_capacity_json_and_bad_sku(write_site):
    path = str(write_site())
    data = json.loads(run("capacity", path, "--sku", "hgx-h100-8", "--json").stdout)
    # c01: 950 kW budget - 32.8 kW drawn = 917.2 kW; 8.2 kW per node at TDP -> 111.
    assert data["containers"] == [{"name": "c01", "headroom_kw": 917.2, "nodes": 111}]
    assert data["nodes"] == 111 and data["gpu_cap_w"] == 700
    result = run("capacity", path, "--sku", "hgx-h100-80")
    assert (result.exit_code, result.stderr) == (2, "ecohash: unknown sku 'hgx-h100-80' (did you mean 'hgx-h100-8'?)\n")


def test_capacity_rejects_a_non_positive_cap(write_site):
    result = run("capacity", str(write_site()), "--sku", "hgx-h100-8", "--cap", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_schema_is_json_schema_for_site_files():
    data = json.loads(run("schema").stdout)
    assert data["$schema"].startswith("https://json-schema.org/")
    assert set(data["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert data["additionalProperties"] is False
