"""A grid feed on loopback for source tests: http.server in a thread, answers set per path."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    """What a path answers: a status, a body, headers (an empty value leaves the header out),
    and how long the server waits before answering."""

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    wait_s: float = 0


class FeedServer:
    """`with FeedServer() as feed:` serves feed.routes (changeable while it runs) at feed.url."""

    def __init__(self, routes: dict[str, Answer] | None = None):
        self.routes = dict(routes or {})
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits.append(self.path)
                answer = server.routes.get(self.path, Answer(b"no such feed", status=404))
                time.sleep(answer.wait_s)
                self.send_response(answer.status)
                if "Content-Length" not in answer.headers:
                    self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    if value:
                        self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up first, as it should
                    self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FeedServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
