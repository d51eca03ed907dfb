#!/usr/bin/python3
"""SIMULATED k3s for ecohash lab hosts: not Rancher's k3s, and no Kubernetes.

Installed as /usr/local/bin/k3s by the k8s_node role from the lab's file store (simk3s.py
writes it there with the release it stands in for). It simulates only what the roles and
the checks use of a k3s cluster, with the same commands, files and output:

- `k3s server` reads /etc/rancher/k3s/config.yaml, keeps the cluster's Node objects in a
  JSON file, serves them on port 6443 (plain HTTP: there is no TLS in the simulation),
  writes the cluster-admin kubeconfig /etc/rancher/k3s/k3s.yaml, and registers its own Node;
- `k3s agent` registers its Node with the server named in its configuration;
- both write the kubelet's kubeconfig (/var/lib/rancher/k3s/agent/kubelet.kubeconfig), with
  which a node reads its own Node, and tell systemd they are ready (Type=notify).
- `k3s kubectl [--kubeconfig F] get node[s] [NAME] -o json | label node ... | taint node ...`.

As in real k3s, `node-label` and `node-taint` apply only when a Node registers: a Node
that exists keeps its labels when its configuration changes. Tokens are checked (the join
token to register, any known token to read or write); nothing else of Kubernetes'
authorization is simulated. Standard library only: it runs on the hosts' own python3.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "v0.0.0+k3s0"  # replaced by simk3s.build with the release it stands in for
SIMULATED_NOTE = "SIMULATED by the ecohash lab"
PORT = 6443

CONFIG_FILE = Path(os.environ.get("ECOHASH_SIM_K3S_CONFIG", "/etc/rancher/k3s/config.yaml"))
ADMIN_KUBECONFIG = Path(os.environ.get("ECOHASH_SIM_K3S_ADMIN", "/etc/rancher/k3s/k3s.yaml"))
DATA_DIR = Path(os.environ.get("ECOHASH_SIM_K3S_DATA", "/var/lib/rancher/k3s"))
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class K3sError(Exception):
    """A failure printed like k3s or kubectl prints it, with its exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- configuration ----------------------------------------------------------------------


def read_config(path: Path = CONFIG_FILE) -> dict[str, object]:
    """k3s's config.yaml, in the subset the k8s_node role writes: scalars and string lists."""
    try:
        text = path.read_text()
    except OSError as error:
        raise K3sError(f"k3s ({SIMULATED_NOTE}): cannot read {path}: {error.strerror}") from error
    config: dict[str, object] = {}
    current: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if line.startswith("  - ") and current is not None:
            current.append(_scalar(line[4:]))
        elif not line.startswith(" ") and ":" in line:
            key, _, value = line.partition(":")
            if value.strip():
                config[key] = _scalar(value.strip())
                current = None
            else:
                current = []
                config[key] = current
        else:
            raise K3sError(f"k3s ({SIMULATED_NOTE}): {path}:{number}: not understood: {raw!r}")
    return config


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def node_from_config(config: dict[str, object]) -> dict:
    labels = dict(item.split("=", 1) for item in _strings(config.get("node-label")))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": str(config.get("node-name") or socket.gethostname()), "labels": labels},
        "spec": {"taints": [parse_taint(item) for item in _strings(config.get("node-taint"))]},
    }


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def parse_taint(text: str) -> dict[str, str]:
    """key=value:Effect (or key:Effect) as kubectl and k3s's node-taint take it."""
    spec, _, effect = text.rpartition(":")
    key, _, value = spec.partition("=")
    if not key or effect not in EFFECTS:
        raise K3sError(f"error: invalid taint spec: {text}")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(content)
    temporary.chmod(0o600)
    os.replace(temporary, path)


def kubeconfig(server: str, token: str) -> str:
    """A kubeconfig as JSON (which is YAML too), one cluster, one user, one context."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": server}}],
        "users": [{"name": "default", "user": {"token": token}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
    }, indent=2) + "\n"


def kubelet_kubeconfig_file() -> Path:
    return DATA_DIR / "agent" / "kubelet.kubeconfig"


def join_token(config: dict[str, object]) -> str:
    path = Path(str(config.get("token-file") or "/etc/rancher/k3s/token"))
    try:
        return path.read_text().strip()
    except OSError as error:
        raise K3sError(f"k3s ({SIMULATED_NOTE}): cannot read the token {path}: {error.strerror}") from error


def notify_ready() -> None:
    """sd_notify(READY=1): the units are Type=notify, as k3s's own."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")


# --- the server: a Node store behind a tiny HTTP API ---------------------------------------


class NodeStore:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()

    def load(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def save(self, nodes: dict[str, dict]) -> None:
        write_private(self.path, json.dumps(nodes, indent=2, sort_keys=True) + "\n")


def serve(config: dict[str, object]) -> None:
    token = join_token(config)
    admin_token_file = DATA_DIR / "server" / "ecohash-sim-admin-token"
    if not admin_token_file.exists():
        write_private(admin_token_file, secrets.token_hex(32) + "\n")
    admin_token = admin_token_file.read_text().strip()
    store = NodeStore(DATA_DIR / "server" / "ecohash-sim-nodes.json")
    own = node_from_config(config)
    with store.lock:
        nodes = store.load()
        nodes.setdefault(own["metadata"]["name"], own)  # registration only: an existing Node stays
        store.save(nodes)
    address = str(config.get("node-ip") or "127.0.0.1")
    write_private(ADMIN_KUBECONFIG, kubeconfig(f"https://127.0.0.1:{PORT}", admin_token))
    write_private(kubelet_kubeconfig_file(), kubeconfig(f"https://{address}:{PORT}", token))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if given in (token, admin_token):
                return True
            self._reply(401, status_body(401, "Unauthorized", "Unauthorized"))
            return False

        def _name(self) -> str | None:
            prefix = "/api/v1/nodes/"
            return self.path[len(prefix):] if self.path.startswith(prefix) else None

        def _body(self) -> dict:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not self._authorised():
                return
            nodes = store.load()
            if self.path == "/api/v1/nodes":
                self._reply(200, {"apiVersion": "v1", "kind": "List",
                                  "items": [nodes[name] for name in sorted(nodes)]})
            elif (name := self._name()) in nodes:
                self._reply(200, nodes[name])
            else:
                self._reply(404, not_found(name or self.path))

        def do_POST(self) -> None:  # noqa: N802
            if not self._authorised():
                return
            node = self._body()
            name = node["metadata"]["name"]
            with store.lock:
                nodes = store.load()
                if name in nodes:
                    self._reply(409, status_body(409, "AlreadyExists", f'nodes "{name}" already exists'))
                    return
                nodes[name] = node
                store.save(nodes)
            self._reply(201, node)

        def do_PUT(self) -> None:  # noqa: N802
            if not self._authorised():
                return
            name = self._name()
            with store.lock:
                nodes = store.load()
                if name not in nodes:
                    self._reply(404, not_found(name or self.path))
                    return
                nodes[name] = self._body()
                store.save(nodes)
            self._reply(200, nodes[name])

    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 - agents join over the lab's network
    notify_ready()
    server.serve_forever()


def status_body(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason, "code": code}


def not_found(name: str) -> dict:
    return status_body(404, "NotFound", f'nodes "{name}" not found')


def agent(config: dict[str, object]) -> None:
    server = str(config.get("server") or "")
    if not server:
        raise K3sError(f"k3s ({SIMULATED_NOTE}): agent: no server in {CONFIG_FILE}")
    token = join_token(config)
    write_private(kubelet_kubeconfig_file(), kubeconfig(server, token))
    notify_ready()
    node = node_from_config(config)
    # Like a kubelet: register once the server answers; a Node that exists is left alone.
    while True:
        try:
            request(server, token, "POST", "/api/v1/nodes", node)
            break
        except K3sError as error:
            if "already exists" in str(error):
                break
            time.sleep(2)
    signal.pause()


# --- kubectl -----------------------------------------------------------------------------


def request(server: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    url = "http://" + server.split("://", 1)[-1].rstrip("/") + path  # no TLS in the simulation
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(call, timeout=10) as response:  # noqa: S310 - the lab's own server
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            status = json.loads(error.read())
        except ValueError:
            status = {"reason": error.reason, "message": str(error)}
        raise K3sError(f"Error from server ({status.get('reason')}): {status.get('message')}") from None
    except (urllib.error.URLError, OSError) as error:
        raise K3sError(
            f"The connection to the server {server.split('://', 1)[-1]} was refused - did you "
            f"specify the right host or port? ({getattr(error, 'reason', error)})") from None


def client(kubeconfig_path: Path) -> tuple[str, str]:
    try:
        config = json.loads(kubeconfig_path.read_text())
    except OSError as error:
        raise K3sError(f"error: open {kubeconfig_path}: {(error.strerror or str(error)).lower()}") from None
    except ValueError:
        raise K3sError(f"error: {kubeconfig_path} is not a kubeconfig this simulation wrote") from None
    return config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"]


def kubectl(argv: list[str]) -> str:
    kubeconfig_path = Path(os.environ.get("KUBECONFIG") or ADMIN_KUBECONFIG)
    arguments: list[str] = []
    flags: set[str] = set()
    output = None
    position = 0
    while position < len(argv):
        argument = argv[position]
        if argument == "--kubeconfig" and position + 1 < len(argv):
            position += 1
            kubeconfig_path = Path(argv[position])
        elif argument.startswith("--kubeconfig="):
            kubeconfig_path = Path(argument.split("=", 1)[1])
        elif argument == "-o" and position + 1 < len(argv):
            position += 1
            output = argv[position]
        elif argument.startswith("--"):
            flags.add(argument)
        else:
            arguments.append(argument)
        position += 1
    if len(arguments) < 2 or arguments[1] not in ("node", "nodes", "no"):
        raise K3sError(f"error: {SIMULATED_NOTE}: only `get/label/taint node` are simulated")
    verb, names = arguments[0], arguments[2:]
    server, token = client(kubeconfig_path)
    if verb == "get":
        if output != "json":
            raise K3sError(f"error: {SIMULATED_NOTE}: only `-o json` is simulated")
        path = f"/api/v1/nodes/{names[0]}" if names else "/api/v1/nodes"
        return json.dumps(request(server, token, "GET", path), indent=4)
    if not names:
        raise K3sError("error: resource(s) were provided, but no name was specified")
    name, changes = names[0], names[1:]
    node = request(server, token, "GET", f"/api/v1/nodes/{name}")
    if verb == "label":
        message = label(node, changes, "--overwrite" in flags)
    elif verb == "taint":
        message = taint(node, changes, "--overwrite" in flags)
    else:
        raise K3sError(f"error: {SIMULATED_NOTE}: `kubectl {verb}` is not simulated")
    request(server, token, "PUT", f"/api/v1/nodes/{name}", node)
    return f"node/{name} {message}"


def label(node: dict, changes: list[str], overwrite: bool) -> str:
    labels = node["metadata"].setdefault("labels", {})
    removed = False
    for change in changes:
        if change.endswith("-") and "=" not in change:
            removed = labels.pop(change[:-1], None) is not None or removed
            continue
        key, _, value = change.partition("=")
        if key in labels and labels[key] != value and not overwrite:
            raise K3sError(f"error: '{key}' already has a value ({labels[key]}), and --overwrite is false")
        labels[key] = value
    return "unlabeled" if removed and all(c.endswith("-") for c in changes) else "labeled"


def taint(node: dict, changes: list[str], overwrite: bool) -> str:
    taints = node["spec"].setdefault("taints", [])
    removing = [c[:-1] for c in changes if c.endswith("-")]
    for spec in removing:
        key, _, effect = spec.partition(":")
        kept = [t for t in taints if not (t["key"] == key and (not effect or t["effect"] == effect))]
        if len(kept) == len(taints):
            raise K3sError(f'error: taint "{spec}" not found')
        taints[:] = kept
    for spec in (c for c in changes if not c.endswith("-")):
        new = parse_taint(spec)
        same = [t for t in taints if t["key"] == new["key"] and t["effect"] == new["effect"]]
        if same and not overwrite:
            raise K3sError(f"error: node {node['metadata']['name']} already has {new['key']} taint(s) "
                           "with same effect(s) and --overwrite is false")
        taints[:] = [t for t in taints if t not in same] + [new]
    return "untainted" if removing and len(removing) == len(changes) else "tainted"


def main(argv: list[str]) -> int:
    try:
        command = argv[0] if argv else ""
        if command in ("--version", "-v"):
            print(f"k3s version {VERSION} ({SIMULATED_NOTE})\ngo version none")
        elif command == "server":
            serve(read_config())
        elif command == "agent":
            agent(read_config())
        elif command == "kubectl":
            print(kubectl(argv[1:]))
        else:
            raise K3sError(f"k3s: {SIMULATED_NOTE}; '{command}' is not simulated")
    except K3sError as error:
        print(error, file=sys.stderr)
        return error.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
