"""Who may speak for the VTN, and which answers count as hearing from it (grid/vtn_trust.py).

openleadr's own VTN on loopback, over https with a CA made for the test: the VEN follows it
only when the site file pins it, and only answers that pass every check keep contact alive.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from openleadr import utils

from ecohash.errors import InvalidInputError
from ecohash.grid.vtn_trust import Contact
from tests.grid.pki import Ca, Issued, certificate
from tests.grid.test_openadr import Ven, no_thread_outlives_its_test, openadr_site, run, until
from tests.grid.vtn import Vtn, free_port

__all__ = ["no_thread_outlives_its_test"]  # the autouse fixture, for these tests too


@dataclass(frozen=True)
class Pki:
    ca: Ca  # signs the VTN's TLS certificate and the VEN's client certificate
    tls: Issued
    signing: Issued  # what the VTN signs its messages with: the fingerprint pins it
    fingerprint: str
    other_ca: Ca
    other_signing: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = Ca(tmp_path, "vtn-ca")
    ca.issue("ven")
    signing = Issued(*certificate(tmp_path, "vtn-signing"))
    return Pki(ca=ca, tls=ca.issue("vtn-tls", server=True), signing=signing,
               fingerprint=utils.certificate_fingerprint(Path(signing.cert).read_bytes()),
               other_ca=Ca(tmp_path, "other-ca"), other_signing=Issued(*certificate(tmp_path, "other-signing")))


def pinned(port: int, tmp_path: Path, *, ca_file: str = "vtn-ca.pem", fingerprint: str | None = None,
           client_cert: bool = True) -> Ven:
    """A VEN for an https VTN on `port`, pinned by `ca_file` (and `fingerprint`), with its client certificate."""
    lines = ["cert: ven.pem", "key: ven.key"] if client_cert else []
    lines.append(f"ca_file: {ca_file}")
    if fingerprint is not None:
        lines.append(f"vtn_fingerprint: '{fingerprint}'")
    site = openadr_site(port, *lines, file=str(tmp_path / "site.yaml"), scheme="https")
    return Ven(site, insecure=False)


@asynccontextmanager
async def https_vtn(pki: Pki, *, client_certificates: bool = True) -> AsyncIterator[Vtn]:
    vtn = Vtn(free_port(), tls=pki.tls, client_ca=pki.ca.cert if client_certificates else None,
              cert=pki.signing.cert, key=pki.signing.key)
    await vtn.server.run()
    try:
        yield vtn
    finally:
        await vtn.server.stop()


@asynccontextmanager
async def started(ven: Ven) -> AsyncIterator[Ven]:
    try:
        await ven.ven.start()
        yield ven
    finally:
        await ven.ven.stop()


def port_of(vtn: Vtn) -> int:
    return vtn.server.http_port


def test_an_https_vtn_pinned_by_its_ca_and_fingerprint_is_followed_end_to_end(pki: Pki, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with https_vtn(pki) as vtn, started(pinned(port_of(vtn), tmp_path,
                                                         fingerprint=pki.fingerprint)) as ven:
            assert ven.said(f"registered with the VTN at https://127.0.0.1:{port_of(vtn)}/")
            event_id = vtn.add_event("SIMPLE", "level", [2], seconds=5)
            await until(lambda: vtn.opts.get(event_id))
            assert vtn.opts[event_id] == ["optIn"]
            assert [request.correlation_id for request in ven.requests()] == [event_id]
            await asyncio.sleep(3.5)  # past 3 poll intervals of 1 s: answers that pass every check are contact
            ven.requests()
            assert [line for line in ven.log if line[0] == "warning"] == []

    run(scenario())


def test_vtn_fingerprint_alone_pins_the_vtn_over_the_systems_ca_bundle(pki: Pki, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The "system's" bundle here is the test CA: what is checked is that no ca_file is needed.
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca.cert)

    async def scenario() -> None:
        async with https_vtn(pki) as vtn:
            site = openadr_site(port_of(vtn), "cert: ven.pem", "key: ven.key", f"vtn_fingerprint: '{pki.fingerprint}'",
                                file=str(tmp_path / "site.yaml"), scheme="https")
            async with started(Ven(site, insecure=False)) as ven:
                assert ven.said(f"registered with the VTN at https://127.0.0.1:{port_of(vtn)}/")

    run(scenario())


@pytest.mark.parametrize("client_cert", [True, False])
def test_ca_file_alone_pins_the_vtn_with_or_without_a_ven_certificate(pki: Pki, tmp_path: Path,
                                                                     client_cert: bool) -> None:
    async def scenario() -> None:
        async with (https_vtn(pki, client_certificates=client_cert) as vtn,
                    started(pinned(port_of(vtn), tmp_path, client_cert=client_cert)) as ven):
            assert ven.said(f"registered with the VTN at https://127.0.0.1:{port_of(vtn)}/")
            assert vtn.registered

    run(scenario())


@pytest.mark.parametrize("client_cert", [True, False])
def test_a_vtn_whose_certificate_another_ca_signed_is_refused(pki: Pki, tmp_path: Path, client_cert: bool) -> None:
    async def scenario() -> Ven:
        async with (https_vtn(pki, client_certificates=client_cert) as vtn,
                    started(pinned(port_of(vtn), tmp_path, ca_file="other-ca.pem", client_cert=client_cert)) as ven):
            assert not vtn.registered
            return ven

    ven = run(scenario())
    (warning,) = ven.said("did not register grid-test-ven (cannot reach it: ClientConnectorCertificateError")
    assert "certificate verify failed" in warning[2]
    assert not ven.said("registered with the VTN")


def test_a_vtn_signing_with_a_certificate_other_than_the_pinned_one_is_refused(pki: Pki, tmp_path: Path) -> None:
    wrong = utils.certificate_fingerprint(Path(pki.other_signing.cert).read_bytes())

    async def scenario() -> Ven:
        async with https_vtn(pki) as vtn, started(pinned(port_of(vtn), tmp_path, fingerprint=wrong)) as ven:
            return ven

    ven = run(scenario())
    assert ven.said("did not register grid-test-ven (an answer that failed the XML schema or signature check)")
    assert not ven.said("registered with the VTN")


def test_a_ca_file_that_is_missing_or_not_one_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "not-a-ca.pem").write_text("not a certificate\n")
    for ca_file, reason in [("missing.pem", "No such file or directory"), ("not-a-ca.pem", "NO_CERTIFICATE_OR_CRL")]:
        ven = pinned(free_port(), tmp_path, ca_file=ca_file, client_cert=False)
        with pytest.raises(InvalidInputError, match=f"^openadr: ca_file {tmp_path}/{ca_file}: {reason}"):
            run(ven.ven.start())


def lost_contact_after(pki: Pki, tmp_path: Path, fault: str) -> Ven:
    """A VEN registered with a pinned VTN that then only sends `fault`y answers, for 3.5 poll intervals."""
    async def scenario() -> Ven:
        elsewhere = Vtn(free_port())  # plain http, unsigned: where a redirect would send the VEN
        await elsewhere.server.run()
        try:
            # Pinned by the CA alone for a redirect: the signature check would hide what the origin check does.
            fingerprint = None if fault == "redirect" else pki.fingerprint
            async with https_vtn(pki) as vtn, started(pinned(port_of(vtn), tmp_path, fingerprint=fingerprint)) as ven:
                assert ven.said("registered with the VTN")
                answered = len(vtn.telemetry)
                if fault == "5xx":
                    vtn.failing = 503
                elif fault == "status":
                    vtn.refusing = 450
                elif fault == "redirect":
                    vtn.redirect_to = f"http://127.0.0.1:{port_of(elsewhere)}"
                else:
                    vtn.sign_with(pki.other_signing.cert, pki.other_signing.key)
                await asyncio.sleep(3.5)  # past 3 poll intervals of 1 s, every one answered
                ven.requests()  # the watcher's poll checks contact
                if fault == "signature":
                    assert len(vtn.telemetry) > answered  # the VTN kept hearing the VEN, and answering
                return ven
        finally:
            await elsewhere.server.stop()

    return run(scenario())


def test_5xx_answers_do_not_count_as_contact(pki: Pki, tmp_path: Path) -> None:
    (lost,) = lost_contact_after(pki, tmp_path, "5xx").said("lost contact with the VTN at https://127.0.0.1:")
    assert "; last answer: HTTP 503 Service Unavailable); no event is held" in lost[2]


def test_answers_signed_with_another_key_do_not_count_as_contact(pki: Pki, tmp_path: Path) -> None:
    ven = lost_contact_after(pki, tmp_path, "signature")
    (lost,) = ven.said("lost contact with the VTN at https://127.0.0.1:")
    assert "; last answer: an answer that failed the XML schema or signature check)" in lost[2]


def test_answers_with_an_openadr_error_status_do_not_count_as_contact(pki: Pki, tmp_path: Path) -> None:
    (lost,) = lost_contact_after(pki, tmp_path, "status").said("lost contact with the VTN at https://127.0.0.1:")
    assert "; last answer: OpenADR status 450 OUT OF SEQUENCE); no event is held" in lost[2]


def test_a_vtn_cannot_redirect_the_ven_to_another_origin(pki: Pki, tmp_path: Path) -> None:
    (lost,) = lost_contact_after(pki, tmp_path, "redirect").said("lost contact with the VTN at https://127.0.0.1:")
    assert re.search(r"; last answer: it redirected to http://127.0.0.1:[0-9]+, another origin\); ", lost[2])


@pytest.mark.parametrize(("response", "counts", "problem"), [
    ({"response_code": 200, "response_description": "OK"}, True, None),
    (None, True, None),  # an event distribution need not carry a status
    ({"response_code": 463, "response_description": "OUT OF SEQUENCE"}, False, "OpenADR status 463 OUT OF SEQUENCE"),
    ({"response_code": "500", "response_description": ""}, False, "OpenADR status 500"),
])
def test_only_an_openadr_status_of_200_counts_as_contact(response: dict | None, counts: bool,
                                                         problem: str | None) -> None:
    contact = Contact("https://vtn.example/OpenADR2/Simple/2.0b", clock=lambda: 42.0)
    contact.problem = "an earlier problem"
    assert contact.checked({} if response is None else {"response": response}) is counts
    assert (contact.heard_at, contact.problem) == ((42.0, None) if counts else (None, problem))


@pytest.mark.parametrize(("scheme", "lines", "problem"), [
    ("http", [], "is plain http: anyone on the path can read and forge its events"),
    ("https", [], "is pinned by neither ca_file nor vtn_fingerprint"),
])
def test_a_vtn_that_is_not_pinned_is_refused_unless_insecure_and_then_logged(scheme: str, lines: list[str],
                                                                            problem: str) -> None:
    async def scenario(insecure: bool) -> Ven:
        vtn = Vtn(free_port())  # plain http on loopback either way: trust is decided before contact
        await vtn.server.run()
        ven = Ven(openadr_site(port_of(vtn), *lines, scheme=scheme), insecure=insecure)
        try:
            async with started(ven):
                pass
        finally:
            await vtn.server.stop()
        return ven

    with pytest.raises(InvalidInputError, match=f"^openadr: the VTN at {scheme}://127.0.0.1:[0-9]+/OpenADR2/"
                                                f"Simple/2.0b {problem}.*; use https and name the VTN's ca_file or "
                                                "vtn_fingerprint in spec.power.curtailment.openadr, or accept the "
                                                "risk with --insecure-vtn$"):
        run(scenario(insecure=False))
    ven = run(scenario(insecure=True))
    (warning,) = ven.said("--insecure-vtn: the VTN at")
    assert warning[0] == "warning" and problem in warning[2]
    if scheme == "http":
        assert ven.said("registered with the VTN")
