"""The GPU power exporter against the lab's simulated nvidia-smi, as a script and as functions.

The exporter ships into the cluster as the text of one file and runs on the vLLM image's own
python3, so it is loaded here from its path, and run with `python -I -S` (no site-packages:
an import from ecohash or any other non-stdlib package would fail these tests).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from ecohash.lab import nvidia_smi_sim
from ecohash.lab.simhardware import GPU_MODELS, SimulatedGpus

REPO = Path(__file__).resolve().parents[2]
EXPORTER = REPO / "cli/ecohash/stack/power_exporter.py"
NODE = "c01-r01-n01"


def load_exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("power_exporter", EXPORTER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pe = load_exporter()


# --- A strict reader of the exposition format (0.0.4), so every test also checks the format ---

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(rf"^({NAME})\{{(.*)\}} (\S+)$")
VALUE = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN"
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_exposition(text: str) -> Samples:
    """Samples per family; raises AssertionError on anything Prometheus would refuse."""
    assert text.endswith("\n"), "exposition text must end with a newline"
    families: Samples = {}
    helped: set[str] = set()
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(NAME, name) and name not in helped, where
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in families, f"TYPE after HELP, once: {where}"
            assert kind == "gauge", where
            families[name] = []
            current = name
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample: {where}"
            name, labels_text, value = match.groups()
            assert name == current, f"sample outside its family's block: {where}"
            labels: dict[str, str] = {}
            position = 0
            while position < len(labels_text):
                label = LABEL.match(labels_text, position)
                assert label and label[1] not in labels, f"bad label at {position}: {where}"
                labels[label[1]] = re.sub(r'\\[\\"n]', lambda m: UNESCAPE[m[0]], label[2])
                position = label.end()
                if position < len(labels_text):
                    assert labels_text[position] == ",", where
                    position += 1
            assert re.fullmatch(VALUE, value), f"bad value: {where}"
            families[name].append((labels, float(value)))
    return families


def by_gpu(samples: Samples, family: str) -> dict[str, float]:
    return {labels["gpu"]: value for labels, value in samples.get(family, [])}


def test_the_format_reader_refuses_what_prometheus_would() -> None:
    good = '# HELP a_b A.\n# TYPE a_b gauge\na_b{node="x\\"y"} 1\n'
    assert parse_exposition(good) == {"a_b": [({"node": 'x"y'}, 1.0)]}
    for bad in (
        'a_b{node="x"} 1\n',  # sample before HELP and TYPE
        '# HELP a_b A.\n# TYPE a_b gauge\n# TYPE a_b gauge\na_b{node="x"} 1\n',
        '# HELP a_b A.\n# TYPE a_b gauge\na_b{node="x"y"} 1\n',  # unescaped quote
        '# HELP a_b A.\n# TYPE a_b gauge\na_b{node="x",node="y"} 1\n',
        '# HELP a_b A.\n# TYPE a_b gauge\na_b{node="x"} one\n',
        '# HELP a_b A.\n# TYPE a_b gauge\na_b{node="x"} 1',  # no final newline
    ):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


# --- Fixtures: simulated GPUs behind a wrapper nvidia-smi, and a budget as ConfigMaps mount it ---


@dataclass
class Sim:
    nvidia_smi: Path
    hardware: dict
    monkeypatch: pytest.MonkeyPatch
    paths: tuple[Path, Path]

    def smi(self, *argv: str) -> None:
        """Run the simulator in-process, as root, the way a technician runs nvidia-smi."""
        hardware_file, state_file = self.paths
        with self.monkeypatch.context() as patch:
            patch.setattr(nvidia_smi_sim, "HARDWARE_FILE", hardware_file)
            patch.setattr(nvidia_smi_sim, "STATE_FILE", state_file)
            patch.setattr("os.geteuid", lambda: 0)  # the simulator refuses -pl to non-root
            assert nvidia_smi_sim.main(list(argv)) == 0

    def uuid(self, index: int) -> str:
        return self.hardware["gpus"][index]["uuid"]


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sim:
    SimulatedGpus(NODE, GPU_MODELS["h100-sxm"], 8).write_into(tmp_path)
    hardware_file = tmp_path / "etc/ecohash-sim/gpus.json"
    state_file = tmp_path / "var/lib/nvidia-driver-sim/state.json"
    wrapper = write_script(
        tmp_path / "nvidia-smi",
        f"export ECOHASH_SIM_HARDWARE={shlex.quote(str(hardware_file))}\n"
        f"export ECOHASH_SIM_STATE={shlex.quote(str(state_file))}\n"
        f'exec {shlex.quote(sys.executable)} {shlex.quote(nvidia_smi_sim.__file__)} "$@"\n',
    )
    hardware = json.loads(hardware_file.read_text())
    return Sim(wrapper, hardware, monkeypatch, (hardware_file, state_file))


def node_entry(name: str, container: str, cap: int | None = 612, draw: int = 7496) -> dict:
    return {
        "name": name, "container": container, "rack": "r01", "sku": "hgx-h100-8",
        "gpu_model": "h100-sxm", "gpus": 8, "gpu_cap_w": cap, "draw_w": draw,
        "capped_by": f"rack {container}/r01", "mgmt_ip": "10.20.1.17",
    }  # fmt: skip


def mount_budget(budget_dir: Path, version: str, nodes: dict[str, list[dict]]) -> None:
    """Lay files out as kubelet does for a ConfigMap volume, and swap them in as an update does."""
    data = budget_dir / f"..{version}"
    (data / "nodes").mkdir(parents=True)
    (data / "site.json").write_text(json.dumps({"site": "tx-odessa"}))
    for container, entries in nodes.items():
        (data / "nodes" / f"{container}.json").write_text(json.dumps(entries))
    (budget_dir / "..data_tmp").symlink_to(data.name)
    os.replace(budget_dir / "..data_tmp", budget_dir / "..data")
    for name in ("site.json", "nodes"):
        if not (budget_dir / name).is_symlink():
            (budget_dir / name).symlink_to(f"..data/{name}")


@pytest.fixture
def budget(tmp_path: Path) -> Path:
    budget_dir = tmp_path / "budget"
    budget_dir.mkdir()
    mount_budget(
        budget_dir,
        "v1",
        {
            "c01": [node_entry(NODE, "c01"), node_entry("c01-r01-n02", "c01")],
            "c02": [node_entry("c02-r01-n01", "c02", cap=None, draw=2600)],
        },
    )
    return budget_dir


def run_once(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-I", "-S", str(EXPORTER), "--once", *map(str, argv)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def scrape_once(sim: Sim, budget: Path, node: str = NODE) -> Samples:
    done = run_once("--budget-dir", budget, "--node-name", node, "--nvidia-smi", sim.nvidia_smi)
    assert (done.returncode, done.stderr) == (0, "")
    return parse_exposition(done.stdout)


# --- Tests ---


def test_once_reports_draw_limit_and_cap_of_every_simulated_gpu(sim: Sim, budget: Path) -> None:
    samples = scrape_once(sim, budget)

    draws = {str(i): 700 - 1.37 * i for i in range(8)}  # the simulator's GPUs work flat out
    assert by_gpu(samples, "ecohash_gpu_power_draw_watts") == pytest.approx(draws)
    assert by_gpu(samples, "ecohash_gpu_power_limit_watts") == {str(i): 700 for i in range(8)}
    assert by_gpu(samples, "ecohash_gpu_power_cap_watts") == {str(i): 612 for i in range(8)}
    # The simulator starts at the default limit (TDP): nothing has applied the plan yet.
    assert by_gpu(samples, "ecohash_gpu_power_limit_matches_cap") == {str(i): 0 for i in range(8)}
    headroom = by_gpu(samples, "ecohash_gpu_power_headroom_watts")
    assert headroom == pytest.approx({gpu: 612 - draw for gpu, draw in draws.items()})
    for labels, _ in samples["ecohash_gpu_power_draw_watts"]:
        gpu = int(labels["gpu"])
        assert labels == {"node": NODE, "container": "c01", "gpu": str(gpu), "uuid": sim.uuid(gpu)}
    assert samples["ecohash_node_planned_draw_watts"] == [({"node": NODE, "container": "c01"}, 7496)]
    assert samples["ecohash_node_in_budget"] == [({"node": NODE}, 1)]
    assert samples["ecohash_nvidia_smi_up"] == [({"node": NODE}, 1)]


def test_a_limit_changed_by_hand_no_longer_matches_the_cap(sim: Sim, budget: Path) -> None:
    sim.smi("-pl", "612")  # what the gpu_power role applies from the plan
    assert set(by_gpu(scrape_once(sim, budget), "ecohash_gpu_power_limit_matches_cap").values()) == {1}

    sim.smi("-i", "3", "-pl", "500")
    samples = scrape_once(sim, budget)

    matches = by_gpu(samples, "ecohash_gpu_power_limit_matches_cap")
    assert matches == {str(i): 0 if i == 3 else 1 for i in range(8)}
    assert by_gpu(samples, "ecohash_gpu_power_limit_watts")["3"] == 500


def test_a_node_missing_from_the_budget_has_no_planned_samples(sim: Sim, budget: Path) -> None:
    samples = scrape_once(sim, budget, node="c09-r01-n01")

    assert samples["ecohash_node_in_budget"] == [({"node": "c09-r01-n01"}, 0)]
    for family in (
        "ecohash_gpu_power_cap_watts",
        "ecohash_gpu_power_limit_matches_cap",
        "ecohash_gpu_power_headroom_watts",
        "ecohash_node_planned_draw_watts",
    ):
        assert family not in samples
    # Its GPUs are still watched, with no container to put them in.
    assert len(samples["ecohash_gpu_power_draw_watts"]) == 8
    assert {labels["container"] for labels, _ in samples["ecohash_gpu_power_draw_watts"]} == {""}


def test_a_node_planned_without_a_cap_has_draw_but_no_cap_samples(sim: Sim, budget: Path) -> None:
    samples = scrape_once(sim, budget, node="c02-r01-n01")

    assert samples["ecohash_node_in_budget"] == [({"node": "c02-r01-n01"}, 1)]
    assert samples["ecohash_node_planned_draw_watts"] == [({"node": "c02-r01-n01", "container": "c02"}, 2600)]
    assert "ecohash_gpu_power_cap_watts" not in samples
    assert "ecohash_gpu_power_limit_matches_cap" not in samples
    assert len(samples["ecohash_gpu_power_limit_watts"]) == 8


@pytest.mark.parametrize(
    ("case", "expected_log"),
    [
        ("missing", "cannot run {smi}: No such file or directory"),
        # The simulator, like the real tool, exits 9 when it cannot reach a driver.
        ("no driver", "{smi} exited 9: NVIDIA-SMI has failed because it couldn't communicate"),
        ("no devices", "{smi} exited 6: No devices were found"),
    ],
)
def test_a_failing_nvidia_smi_is_reported_and_the_exporter_goes_on(
    tmp_path: Path, budget: Path, sim: Sim, case: str, expected_log: str
) -> None:
    smi = {
        "missing": tmp_path / "no-such-nvidia-smi",
        "no driver": sim.nvidia_smi,
        "no devices": write_script(tmp_path / "smi", "echo 'No devices were found'\nexit 6\n"),
    }[case]
    if case == "no driver":
        sim.paths[0].unlink()

    done = run_once("--budget-dir", budget, "--node-name", NODE, "--nvidia-smi", smi)

    assert done.returncode == 0
    samples = parse_exposition(done.stdout)
    assert samples["ecohash_nvidia_smi_up"] == [({"node": NODE}, 0)]
    assert samples["ecohash_node_in_budget"] == [({"node": NODE}, 1)]
    assert "ecohash_gpu_power_draw_watts" not in samples
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("power_exporter: " + expected_log.format(smi=smi))


def test_a_hanging_nvidia_smi_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pe, "SMI_TIMEOUT_S", 0.2)
    smi = write_script(tmp_path / "smi", "exec sleep 30\n")

    assert pe.query_gpus(str(smi)) is None
    assert capsys.readouterr().err == f"power_exporter: {smi} did not answer within 0.2 s\n"


def test_unavailable_fields_are_left_out(tmp_path: Path, budget: Path) -> None:
    smi = write_script(
        tmp_path / "smi",
        "echo '0, GPU-aaaa, NVIDIA H100 80GB HBM3, [N/A], 612.00'\n"
        "echo '1, GPU-bbbb, NVIDIA H100 80GB HBM3, 71.32, [Not Supported]'\n",
    )
    done = run_once("--budget-dir", budget, "--node-name", NODE, "--nvidia-smi", smi)
    samples = parse_exposition(done.stdout)

    assert by_gpu(samples, "ecohash_gpu_power_draw_watts") == {"1": 71.32}
    assert by_gpu(samples, "ecohash_gpu_power_limit_watts") == {"0": 612}
    assert by_gpu(samples, "ecohash_gpu_power_cap_watts") == {"0": 612, "1": 612}
    assert by_gpu(samples, "ecohash_gpu_power_limit_matches_cap") == {"0": 1}
    assert by_gpu(samples, "ecohash_gpu_power_headroom_watts") == pytest.approx({"1": 612 - 71.32})


def test_csv_lines_of_the_wrong_shape_are_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    readings = pe.parse_smi_csv("0, GPU-a, NVIDIA L40S, 36.00, 350.00\n\n1, GPU-b, 40.00\n")

    assert readings == [pe.GpuReading("0", "GPU-a", "NVIDIA L40S", 36.0, 350.0)]
    assert capsys.readouterr().err == (
        "power_exporter: skipped an nvidia-smi line with 3 fields, expected 5: 1, GPU-b, 40.00\n"
    )


def test_label_values_are_escaped() -> None:
    node = 'odd"node\\name\nx'
    readings = [pe.GpuReading("0", 'GPU-"q"', "NVIDIA H100 80GB HBM3", 70.5, 612.0)]

    text = pe.render_metrics(node, node_entry(node, 'c"1'), readings)

    assert (
        'ecohash_gpu_power_draw_watts{node="odd\\"node\\\\name\\nx",container="c\\"1",gpu="0",'
        'uuid="GPU-\\"q\\""} 70.5\n'
    ) in text
    labels, _ = parse_exposition(text)["ecohash_gpu_power_cap_watts"][0]
    assert labels == {"node": node, "container": 'c"1', "gpu": "0", "uuid": 'GPU-"q"'}


def test_a_budget_update_is_picked_up_on_the_next_scrape(sim: Sim, budget: Path) -> None:
    exporter = pe.Exporter(str(budget), NODE, str(sim.nvidia_smi))
    assert by_gpu(parse_exposition(exporter.scrape()), "ecohash_gpu_power_cap_watts")["0"] == 612

    mount_budget(budget, "v2", {"c01": [node_entry(NODE, "c01", cap=500, draw=6600)]})
    samples = parse_exposition(exporter.scrape())

    assert by_gpu(samples, "ecohash_gpu_power_cap_watts") == {str(i): 500 for i in range(8)}
    assert samples["ecohash_node_planned_draw_watts"][0][1] == 6600


def test_unchanged_budget_files_are_parsed_once(budget: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = pe.BudgetReader(str(budget))
    parsed: list[str] = []
    parse = reader._parse
    monkeypatch.setattr(reader, "_parse", lambda path: parsed.append(Path(path).name) or parse(path))

    for _ in range(3):
        assert reader.entry("c02-r01-n01")["container"] == "c02"
    assert sorted(parsed) == ["c01.json", "c02.json"]

    (budget / "nodes/c02.json").write_text("[]")
    assert reader.entry("c02-r01-n01") is None
    assert sorted(parsed) == ["c01.json", "c02.json", "c02.json"]


def test_a_broken_budget_file_is_logged_once_and_the_others_still_count(
    budget: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (budget / "nodes/c02.json").write_text("{not json")
    reader = pe.BudgetReader(str(budget))

    for _ in range(2):
        assert reader.entry(NODE)["gpu_cap_w"] == 612
        assert reader.entry("c02-r01-n01") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"power_exporter: ignored {budget}/nodes/c02.json: not a JSON list of node entries")


@pytest.fixture
def server(sim: Sim, budget: Path) -> Iterator[str]:
    httpd = pe.make_server("127.0.0.1", 0, pe.Exporter(str(budget), NODE, str(sim.nvidia_smi)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_serves_metrics_and_healthz_and_nothing_else(server: str) -> None:
    with urllib.request.urlopen(f"{server}/metrics?from=prometheus", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse_exposition(response.read().decode())
    assert samples["ecohash_nvidia_smi_up"] == [({"node": NODE}, 1)]
    assert len(samples["ecohash_gpu_power_cap_watts"]) == 8

    with urllib.request.urlopen(f"{server}/healthz", timeout=30) as response:
        assert (response.status, response.read()) == (200, b"ok\n")

    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{server}/", timeout=30)
    assert error.value.code == 404


def test_the_script_serves_on_the_port_it_reports_and_stops_on_sigterm(sim: Sim, budget: Path) -> None:
    command = [sys.executable, "-I", "-S", str(EXPORTER), "--listen", "127.0.0.1:0",
               "--budget-dir", str(budget), "--node-name", NODE, "--nvidia-smi", str(sim.nvidia_smi)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr
        first = process.stderr.readline()
        match = re.fullmatch(rf"power_exporter: serving (http://127\.0\.0\.1:\d+)/metrics for node {NODE}\n", first)
        assert match, first
        with urllib.request.urlopen(f"{match[1]}/metrics", timeout=30) as response:
            assert parse_exposition(response.read().decode())["ecohash_node_in_budget"][0][1] == 1
        # Kubernetes stops pods with SIGTERM; exit 0 at once, not after the grace period.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == ""
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--once"], "no node name: pass --node-name or set NODE_NAME"),
        (["--node-name", NODE, "--listen", "9847"], "expected HOST:PORT such as 0.0.0.0:9847, got '9847'"),
    ],
)
def test_bad_arguments_are_refused_with_a_usage_error(argv: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-I", "-S", str(EXPORTER), *argv], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(message)
