"""The curtailment's SSH link against a real SSH server on localhost: the preflight's rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecohash.grid.nodes import (
    NodeCommandFailed,
    NodeUnreachable,
    SshLink,
    ask,
    parse_read_back,
    power_command,
)
from ecohash.ssh.config import Target
from tests.rollout.sshserver import Reply, SshServer, known_hosts_line, new_ed25519_key

READ_BACK = {"node_time": 1700000000.5, "planned_cap_w": 450, "effective_cap_w": 300,
             "override": {"event": "20231114-221320-abcdef", "cap_w": 300, "until": 0, "set_at": 1700000000},
             "gpus": [{"index": 0, "limit_w": 300.0, "enforced_w": 300.0, "draw_w": 290.5, "energy_mj": 1234,
                       "persistence": True},
                      {"index": 1, "limit_w": 300.0, "enforced_w": 300.0, "draw_w": 280.0, "energy_mj": None,
                       "persistence": True}]}
CURTAIL = ["curtail", "--cap", "300", "--until", "0", "--event", "20231114-221320-abcdef"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[SshServer, Path]]:
    host_key = new_ed25519_key()
    client_key_file = tmp_path / "id_ed25519"
    client_key = new_ed25519_key(client_key_file)
    replies = {
        power_command(CURTAIL, "root"): Reply(0, json.dumps(READ_BACK) + "\n"),
        power_command(CURTAIL, "deploy"): Reply(0, json.dumps(READ_BACK) + "\n"),
        power_command(["read"], "root"): Reply(2, stderr="ecohash-gpu-power: /etc/ecohash/gpu-power.env: no "
                                                       "ECOHASH_GPU_CAP_W line\n"),
    }
    with SshServer([host_key], client_key, replies, users=("root", "deploy")) as running:
        (tmp_path / "known_hosts").write_text(known_hosts_line("node1", host_key))
        yield running, tmp_path


def target(server: SshServer, directory: Path, user: str = "root", known_hosts: str = "known_hosts") -> Target:
    config = directory / "ssh_config"
    config.write_text(
        f"Host 127.0.0.1\n    HostKeyAlias node1\n    IdentityFile {directory / 'id_ed25519'}\n"
        f"    IdentitiesOnly yes\n    UserKnownHostsFile {directory / known_hosts}\n"
        "    GlobalKnownHostsFile /dev/null\n")
    return Target("node1", "127.0.0.1", server.port, user, config)


def test_a_cap_is_sent_as_root_and_its_read_back_parsed(server) -> None:
    running, directory = server
    link = SshLink({"node1": target(running, directory)})
    try:
        read_back = link.run("node1", CURTAIL)
    finally:
        link.close()
    assert running.commands_run == [
        "/usr/local/sbin/ecohash-gpu-power curtail --cap 300 --until 0 --event 20231114-221320-abcdef"]
    assert read_back.enforced_w == [300.0, 300.0]
    assert read_back.draw_w == 570.5
    assert read_back.not_enforcing(300) == [] and read_back.not_enforcing(250) == [
        "GPU 0 enforces 300 W", "GPU 1 enforces 300 W"]
    assert read_back.override["event"] == "20231114-221320-abcdef"


def test_another_user_runs_the_script_with_sudo_n(server) -> None:
    running, directory = server
    link = SshLink({"node1": target(running, directory, user="deploy")})
    try:
        link.run("node1", CURTAIL)
    finally:
        link.close()
    assert running.commands_run == [
        "sudo -n /usr/local/sbin/ecohash-gpu-power curtail --cap 300 --until 0 --event 20231114-221320-abcdef"]


def test_an_unknown_host_key_is_refused_before_any_command(server) -> None:
    running, directory = server
    (directory / "empty_known_hosts").write_text("")
    link = SshLink({"node1": target(running, directory, known_hosts="empty_known_hosts")})
    with pytest.raises(NodeUnreachable) as refused:
        link.run("node1", CURTAIL)
    link.close()
    assert str(refused.value).startswith("host key unknown: node1 (node1) is not in ")
    assert running.commands_run == []


def test_a_failing_script_is_a_failed_answer_with_its_message(server) -> None:
    running, directory = server
    link = SshLink({"node1": target(running, directory)})
    try:
        answer = ask("node1", link, ["read"])
    finally:
        link.close()
    assert answer.read_back is None and answer.unreachable is None
    assert answer.failed == ("exit status 2: ecohash-gpu-power: /etc/ecohash/gpu-power.env: no "
                             "ECOHASH_GPU_CAP_W line")


@pytest.mark.parametrize(("text", "reason"), [
    ("", "printed no read-back"),
    ("not json\n", "printed a read-back ecohash cannot read (JSONDecodeError: "),
    ('{"node_time": 1}\n', "printed a read-back ecohash cannot read (KeyError: "),
])
def test_a_read_back_ecohash_cannot_read_is_named(text: str, reason: str) -> None:
    with pytest.raises(NodeCommandFailed) as refused:
        parse_read_back("node1", text, 0.0)
    assert str(refused.value).startswith(reason)


def test_a_node_that_never_answers_costs_one_timeout_per_command_not_one_per_read(tmp_path: Path) -> None:
    import time

    from tests.rollout.sshserver import silent_listener

    with silent_listener() as port:
        link = SshLink({"node1": Target("node1", "127.0.0.1", port, "root", None)}, timeout_s=0.3)
        try:
            started = time.monotonic()
            first = ask("node1", link, ["read"])
            waited = time.monotonic() - started
            started = time.monotonic()
            second = ask("node1", link, ["read"])
            again = time.monotonic() - started
            started = time.monotonic()
            curtail = ask("node1", link, CURTAIL)
            tried = time.monotonic() - started
        finally:
            link.close()
    assert first.unreachable == second.unreachable == curtail.unreachable == (
        "unreachable: no SSH banner within 0.3 s")
    assert waited >= 0.3 and again < 0.1 and tried >= 0.3  # a cap is always tried anew
