"""How far the VEN trusts its VTN: who may speak for it, and which answers count as hearing from it.

A VTN dispatches the site to its floors, so whoever can speak for it controls the site. It
must be https, its TLS certificate checked, and pinned in the site file by the CA that signs
its certificate (`ca_file`) or the fingerprint of the certificate it signs messages with
(`vtn_fingerprint`), unless the operator says `--insecure-vtn`, which the watcher logs at
every start (docs/grid-watch.md).

An answer counts as contact only once it passed every check: HTTP 200 from the VTN's own
origin, the XML schema, the signature (openleadr checks it against `vtn_fingerprint` before
this module's hook runs) and an OpenADR status of 200. A 5xx page or a forged reply must not
hide that the real VTN has gone quiet.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import certifi
from yarl import URL

from ecohash.errors import InvalidInputError
from ecohash.inventory.model import OpenAdr

INSECURE_FLAG = "--insecure-vtn"
SECTION = "spec.power.curtailment.openadr"
# What to do about a VTN that is not pinned, after trust_problem's reason.
PIN_IT = (f"use https and name the VTN's ca_file or vtn_fingerprint in {SECTION}, or accept the risk "
          f"with {INSECURE_FLAG}")
# What openleadr's own session would have: its content type, and giving up on a silent VTN
# after 5 s to connect and 10 s to read.
HEADERS = {"content-type": "application/xml"}
TIMEOUT = aiohttp.ClientTimeout(sock_connect=5, sock_read=10)


def trust_problem(config: OpenAdr) -> str | None:
    """Why someone other than the VTN could speak for it under `config`; None when it is pinned."""
    if not config.vtn_url.lower().startswith("https://"):
        return "is plain http: anyone on the path can read and forge its events"
    if config.ca_file is None and config.vtn_fingerprint is None:
        return ("is pinned by neither ca_file nor vtn_fingerprint: any certificate a public CA "
                "signs for its host would pass")
    return None


def tls_context(ca_file: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """Checks the VTN's certificate and host name: against `ca_file` alone when it is named,
    else the system's CA bundle; presents the VEN's certificate when it has one."""
    # openleadr reads ca_file only when the VEN has a certificate of its own: build the
    # context here so that a CA named in the site file is always the one trusted.
    try:
        context = ssl.create_default_context(
            cafile=ca_file or ssl.get_default_verify_paths().cafile or certifi.where())
    except (OSError, ssl.SSLError) as error:
        bundle = f"ca_file {ca_file}" if ca_file else "the system's CA bundle"
        raise InvalidInputError(f"openadr: {bundle}: {_reason(error)}") from None
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:  # names the files, never their contents
            raise InvalidInputError(f"openadr: cert {cert} and key {key}: {_reason(error)}") from None
    return context


def _reason(error: OSError) -> str:
    """OpenSSL's reason (NO_CERTIFICATE_OR_CRL_FOUND) or the system's (No such file or directory)."""
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    return error.strerror or str(error)


class Contact:
    """When the VTN was last heard from, counting only answers that passed every check, and
    what was wrong with the last one that did not."""

    def __init__(self, vtn_url: str, clock: Callable[[], float]) -> None:
        self._origin = URL(vtn_url).origin()
        self._clock = clock
        self.heard_at: float | None = None
        self.problem: str | None = None
        self._http_ok = False

    def session(self, context: ssl.SSLContext) -> aiohttp.ClientSession:
        """openleadr's client session, with this VEN's TLS context and every answer watched."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), headers=HEADERS,
                                     timeout=TIMEOUT, middlewares=(self._watch_http,))

    async def _watch_http(self, request: aiohttp.ClientRequest,
                          handler: Callable[[aiohttp.ClientRequest], Any]) -> aiohttp.ClientResponse:
        # aiohttp runs middlewares for every redirect hop: a VTN cannot hand the VEN to another
        # origin (an https VTN to plain http, or to a host its pin does not cover).
        self._http_ok = False
        if request.url.origin() != self._origin:
            self.problem = f"it redirected to {request.url.origin()}, another origin"
            raise aiohttp.ClientError(self.problem)
        try:
            response: aiohttp.ClientResponse = await handler(request)
        except aiohttp.ClientError as error:
            self.problem = f"cannot reach it: {type(error).__name__}: {error}"
            raise
        self._http_ok = response.status == 200
        if not self._http_ok:
            self.problem = f"HTTP {response.status} {response.reason or ''}".rstrip()
        return response

    def received(self, xml: str) -> None:
        """openleadr's after_receive_xml: until the answer is parsed, it has failed a check. (An
        empty answer, the VTN's to the VEN's own oadrResponse, is no contact and no problem.)"""
        if self._http_ok and xml:
            self.problem = "an answer that failed the XML schema or signature check"

    def checked(self, payload: dict[str, Any]) -> bool:
        """openleadr's after_parse_xml (schema and signature passed): whether the answer counts,
        that is, whether its OpenADR status, if it carries one, is 200."""
        response = payload.get("response") or {}
        code = response.get("response_code", 200)
        if str(code) != "200":
            self.problem = f"OpenADR status {code} {response.get('response_description') or ''}".rstrip()
            return False
        self.problem = None
        self.heard_at = self._clock()
        return True
