"""The documents grid sources read: a peak alert or a price feed, from a file or an http(s) URL.

A read is bounded (a few seconds, 1 MiB) and fails with one line that says where and what
went wrong, never a traceback. `Document` keeps the last good copy: a feed that cannot be
read for a while leaves its source asking for what it last knew, and the failure is
reported once (with the age of the copy that stands in), not at every poll.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any, Generic, TypeVar

from ecohash.errors import EcohashError
from ecohash.inventory.model import PeakAlert, PriceTrigger
from ecohash.inventory.site import Site

TIMEOUT_S = 5.0
# A URL is fetched at most this often: the watcher polls every second, and nobody's price
# or alert server should answer that; prices change on 5-minute intervals. Files are read
# at every poll (a local read costs nothing, and an edit should act at once).
URL_REFRESH_S = 30.0
MAX_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

T = TypeVar("T")
Source = PeakAlert | PriceTrigger
Reader = Callable[[Site, Source], Any]


class DocumentError(EcohashError):
    """A grid document could not be read, or is not what its source expects."""


def where(site: Site, source: Source) -> str:
    """The document's URL, or its file's path as read (relative to the site file)."""
    return source.url if source.url is not None else str(site.path_from_file(source.file or ""))


def read_document(site: Site, source: Source, timeout_s: float = TIMEOUT_S) -> Any:
    """The document's JSON, decimals as Decimal (prices are compared exactly with the strike)."""
    origin = where(site, source)
    body = _fetch(source.url, timeout_s) if source.url is not None else _read_file(origin)
    if len(body) > MAX_BYTES:
        raise DocumentError(f"{origin}: larger than {MAX_BYTES // 1024} KiB")
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise DocumentError(f"{origin}: not JSON ({error.msg}, line {error.lineno} column "
                            f"{error.colno})") from None
    except ValueError as error:  # bytes that are not UTF-8, or NaN and Infinity
        raise DocumentError(f"{origin}: not JSON ({error})") from None
    except RecursionError:
        raise DocumentError(f"{origin}: not JSON this reader takes (nested too deeply)") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(MAX_BYTES + 1)
    except OSError as error:
        raise DocumentError(f"{path}: cannot read ({error.strerror or error})") from None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only: urllib would also follow one to ftp://."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, "redirect to a URL that is not http(s)",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def _fetch(url: str, timeout_s: float) -> bytes:
    # The socket timeout bounds each wait; the deadline bounds a server that trickles.
    deadline = time.monotonic() + timeout_s
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"Accept": "application/json"}),
                          timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BYTES:
                raise DocumentError(f"{url}: larger than {MAX_BYTES // 1024} KiB")
            body = b""
            while len(body) <= MAX_BYTES:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                body += chunk
            if length is not None and length.isdigit() and len(body) < int(length):
                # read(n) returns a body cut short without a word: a prefix is not the document.
                raise DocumentError(f"{url}: cut short ({len(body)} of {length} bytes)")
            return body
    except urllib.error.HTTPError as error:
        raise DocumentError(f"{url}: HTTP {error.code} {error.reason}") from None
    except TimeoutError:
        raise DocumentError(f"{url}: no answer within {timeout_s:g} s") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise DocumentError(f"{url}: no answer within {timeout_s:g} s") from None
        raise DocumentError(f"{url}: cannot fetch ({error.reason})") from None
    except OSError as error:  # a connection reset mid-body
        raise DocumentError(f"{url}: cannot fetch ({error.strerror or error})") from None
    except http.client.HTTPException as error:  # what answered does not speak HTTP
        raise DocumentError(f"{url}: not an HTTP answer ({type(error).__name__})") from None


class Document(Generic[T]):
    """One alert or price document, read afresh at each poll and checked by `parse`.

    `parse` raises DocumentError saying what is wrong with the content; the document's
    origin is put before it here. When a read or the check fails, the last good copy
    stands in, and the failure is given once (one that repeats itself says nothing new).
    """

    def __init__(self, site: Site, source: Source, parse: Callable[[Any], T],
                 read: Reader = read_document):
        self._site, self._source, self._parse, self._read = site, source, parse, read
        self.good: T | None = None
        self.read_at: float | None = None
        self._failing: str | None = None
        self._refresh_s = URL_REFRESH_S if source.url is not None else 0.0
        self._tried_at: float | None = None

    def get(self, now: float) -> tuple[T | None, str | None]:
        """The document (the last good one when this read failed), and the failure to log."""
        if self._tried_at is not None and 0 <= now - self._tried_at < self._refresh_s:
            return self.good, None
        self._tried_at = now
        try:
            raw = self._read(self._site, self._source)
        except DocumentError as error:
            return self.good, self._failed(str(error), now)
        try:
            self.good, self.read_at = self._parse(raw), now
        except DocumentError as error:
            return self.good, self._failed(f"{where(self._site, self._source)}: {error}", now)
        self._failing = None
        return self.good, None

    def _failed(self, failure: str, now: float) -> str | None:
        if failure == self._failing:
            return None
        self._failing = failure
        kept = ("no earlier copy to keep" if self.read_at is None
                else f"keeping the copy read {_age(now - self.read_at)} ago")
        return f"{failure}; {kept}"


def _age(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
