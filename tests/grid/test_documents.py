"""Grid documents: read from a file or a local HTTP server, bounded, one-line failures, last good kept."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ecohash.grid.documents import MAX_BYTES, Document, DocumentError, read_document
from ecohash.inventory import load_site_text
from ecohash.inventory.site import Site
from tests.grid.feeds import Answer, FeedServer
from tests.grid.test_site_format import with_programs

ROUTES = {
    "/alert": Answer(b'{"date": "2026-07-15", "peak_likely": true}'),
    "/prices": Answer(b'{"intervals": [{"start": "2026-07-15T15:00:00Z", "end": "2026-07-15T15:05:00Z", '
                      b'"price": 1250.5}]}'),
    "/slow": Answer(b"{}", wait_s=2),
    "/big": Answer(b" " * (MAX_BYTES + 1)),
    "/big-unsaid": Answer(b" " * (MAX_BYTES + 1), headers={"Content-Length": ""}),
    "/html": Answer(b"<html>maintenance</html>"),
    "/nan": Answer(b'{"price": NaN}'),
    "/ftp": Answer(b"", status=302, headers={"Location": "ftp://prices.example/feed.json"}),
    "/short": Answer(b"{}", headers={"Content-Length": "100"}),
    "/moved": Answer(b"", status=302, headers={"Location": "/alert"}),
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with FeedServer(ROUTES) as feed:
        yield feed.url


def site_reading(tmp_path: Path, source: str) -> Site:
    """A site whose program `feed` reads its price from `source` ("url: ..." or "file: ...")."""
    return load_site_text(with_programs(f"{{name: feed, by_pct: 20, price: {{{source}, strike: 100}}}}"),
                          tmp_path / "site.yaml")


def read(tmp_path: Path, source: str, timeout_s: float = 1.0) -> object:
    site = site_reading(tmp_path, source)
    price = site.curtailment_programs[0].price
    assert price is not None
    return read_document(site, price, timeout_s=timeout_s)


def failure(tmp_path: Path, source: str, timeout_s: float = 1.0) -> str:
    with pytest.raises(DocumentError) as raised:
        read(tmp_path, source, timeout_s)
    return str(raised.value)


def test_a_url_is_read_as_json_with_exact_decimals(server, tmp_path):
    assert read(tmp_path, f"url: '{server}/alert'") == {"date": "2026-07-15", "peak_likely": True}
    prices = read(tmp_path, f"url: '{server}/prices'")
    assert prices["intervals"][0]["price"] == Decimal("1250.5")
    assert read(tmp_path, f"url: '{server}/moved'") == {"date": "2026-07-15", "peak_likely": True}


def test_a_file_is_read_relative_to_the_site_file(tmp_path):
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "peak.json").write_text('{"date": "2026-07-15", "peak_likely": false}')
    assert read(tmp_path, "file: feeds/peak.json") == {"date": "2026-07-15", "peak_likely": False}
    assert failure(tmp_path, "file: feeds/none.json") == (
        f"{tmp_path}/feeds/none.json: cannot read (No such file or directory)")


@pytest.mark.parametrize(("path", "message"), [
    ("/missing", "HTTP 404 Not Found"),
    ("/html", "not JSON (Expecting value, line 1 column 1)"),
    ("/nan", "not JSON (NaN is not a JSON number)"),
    ("/big", "larger than 1024 KiB"),
    ("/big-unsaid", "larger than 1024 KiB"),
    ("/ftp", "HTTP 302 redirect to a URL that is not http(s)"),
    ("/short", "cut short (2 of 100 bytes)"),
])
def test_a_bad_answer_is_one_line_naming_the_url(server, tmp_path, path, message):
    assert failure(tmp_path, f"url: '{server}{path}'") == f"{server}{path}: {message}"


def test_a_slow_server_is_given_up_on_at_the_timeout(server, tmp_path):
    started = time.monotonic()
    assert failure(tmp_path, f"url: '{server}/slow'", timeout_s=0.3) == f"{server}/slow: no answer within 0.3 s"
    assert time.monotonic() - started < 1.5


def test_nothing_listening_is_one_line(tmp_path):
    message = failure(tmp_path, "url: 'http://127.0.0.1:9'")
    assert message.startswith("http://127.0.0.1:9: cannot fetch (") and "\n" not in message


def test_a_server_that_does_not_speak_http_is_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        threading.Thread(target=answer, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert failure(tmp_path, f"url: '{url}'") == f"{url}: not an HTTP answer (BadStatusLine)"


def parse_alert(raw: object) -> bool:
    if not isinstance(raw, dict) or not isinstance(raw.get("peak_likely"), bool):
        raise DocumentError("not an alert")
    return raw["peak_likely"]


def test_a_failed_read_keeps_the_last_good_copy_and_says_so_once(tmp_path):
    feed = tmp_path / "peak.json"
    site = load_site_text(with_programs(
        "{name: cp, by_pct: 20, windows: [{start: '15:00', end: '17:00', timezone: UTC}], alert: {file: peak.json}}"),
        tmp_path / "site.yaml")
    alert = site.curtailment_programs[0].alert
    assert alert is not None
    document = Document(site, alert, parse_alert)

    assert document.get(1000.0) == (None, f"{feed}: cannot read (No such file or directory); no earlier copy to keep")
    assert document.get(1010.0) == (None, None)  # the same failure again says nothing new
    feed.write_text('{"peak_likely": true}')
    assert document.get(1020.0) == (True, None)
    feed.write_text('{"peak_likely": "maybe"}')
    assert document.get(1200.0) == (True, f"{feed}: not an alert; keeping the copy read 3 min ago")
    assert document.get(1300.0) == (True, None)
    feed.write_text("{")
    assert document.get(9000.0) == (
        True, f"{feed}: not JSON (Expecting property name enclosed in double quotes, line 1 column 2); "
        "keeping the copy read 2 h 13 min ago")
    feed.write_text('{"peak_likely": false}')
    assert document.get(9100.0) == (False, None)
    feed.unlink()
    # A failure after a good read is new again, even if it was seen before.
    assert document.get(9200.0) == (False, f"{feed}: cannot read (No such file or directory); "
                                    "keeping the copy read 100 s ago")


def test_a_url_is_fetched_at_most_every_refresh_interval_and_a_file_at_every_poll(tmp_path):
    from ecohash.grid.documents import URL_REFRESH_S, Document

    reads: list[str] = []

    def read(site, source):
        reads.append(source.url or source.file)
        return {"n": len(reads)}

    from ecohash.inventory.model import PeakAlert

    site = object()
    by_url = Document(site, PeakAlert(url="http://alerts.example/today"), lambda raw: raw["n"], read)
    assert by_url.get(1000.0) == (1, None)
    assert by_url.get(1000.0 + URL_REFRESH_S - 1) == (1, None)  # the copy, not a fetch
    assert by_url.get(1000.0 + URL_REFRESH_S) == (2, None)
    by_file = Document(site, PeakAlert(file="alert.json"), lambda raw: raw["n"], read)
    assert by_file.get(1000.0) == (3, None) and by_file.get(1000.0) == (4, None)
    assert reads == ["http://alerts.example/today"] * 2 + ["alert.json"] * 2
