"""openleadr's own VTN (OpenADRServer) for tests, and what it heard from a VEN."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web
from openleadr import OpenADRServer, objects, utils
from openleadr.messaging import create_message
from openleadr.service import VTNService

from tests.grid.pki import Issued

VEN_ID = "ven-1"
UTC = dt.UTC
KW = objects.Measurement(name="powerReal", description="RealPower", unit="W", scale="k",
                         power_attributes=objects.PowerAttributes(hertz=60, voltage=480, ac=True))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Vtn:
    """openleadr's VTN, and what it heard from the VEN: opts by event and telemetry values."""

    def __init__(self, port: int, site_name: str = "grid-test", *, tls: Issued | None = None,
                 client_ca: str | None = None, **signing: str) -> None:
        """`tls`: serve https with this certificate, asking for a client certificate `client_ca` signed
        (without `client_ca`, for any VEN: openleadr's VTN serves https only with client certificates)."""
        https = {} if tls is None or client_ca is None else {"http_cert": tls.cert, "http_key": tls.key,
                                                             "http_ca_file": client_ca}
        self.server = OpenADRServer(vtn_id="TEST-VTN", http_host="127.0.0.1", http_port=port,
                                    requested_poll_freq=dt.timedelta(seconds=1),
                                    show_fingerprint=False, show_server_cert_domain=False,
                                    **https, **signing)
        if tls is not None and client_ca is None:
            self.server.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.server.ssl_context.load_cert_chain(tls.cert, tls.key)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
        self.site_name = site_name
        self.opts: dict[str, list[str]] = {}
        self.telemetry: list[float] = []
        self.registered = False
        self.failing: int | None = None  # an HTTP status every request gets instead of an answer
        self.redirect_to: str | None = None  # an origin every request is sent on to (307)
        self.refusing: int | None = None  # an OpenADR status every request gets, signed, in HTTP 200
        self.server.app.middlewares.append(self._fail)
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._register_report)

    @web.middleware
    async def _fail(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if self.redirect_to is not None:
            raise web.HTTPTemporaryRedirect(location=f"{self.redirect_to}{request.path}")
        if self.refusing is not None:
            message = VTNService._create_message("oadrResponse", ven_id=VEN_ID, response={
                "response_code": self.refusing, "response_description": "OUT OF SEQUENCE", "request_id": "refused"})
            return web.Response(text=message, content_type="application/xml")
        if self.failing is not None:
            return web.Response(status=self.failing, text="<html><body>Service Unavailable</body></html>",
                                content_type="text/html")
        return await handler(request)

    def sign_with(self, cert: str, key: str) -> None:
        """Sign every answer from now on with another certificate (openleadr's signer is per class)."""
        with open(cert, "rb") as cert_file, open(key, "rb") as key_file:
            VTNService._create_message = partial(create_message, cert=cert_file.read(), key=key_file.read())

    def _register(self, info: dict) -> tuple[str, str]:
        self.registered = True
        return VEN_ID, "reg-1"

    def _register_report(self, ven_id, resource_id, measurement, unit, scale,
                         min_sampling_interval, max_sampling_interval):
        assert (resource_id, measurement, unit) == (self.site_name, "RealPower", "W")
        return (lambda data: self.telemetry.extend(value for _, value in data)), dt.timedelta(seconds=1)

    def _opted(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts.setdefault(event_id, []).append(opt_type)

    def add_event(self, signal_name: str, signal_type: str, payloads: list[float], *, start_in: float = 1,
                  seconds: float = 3, measurement: objects.Measurement | None = None) -> str:
        start = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=round(start_in))
        intervals = [objects.Interval(dtstart=start + index * dt.timedelta(seconds=seconds),
                                      duration=dt.timedelta(seconds=seconds), signal_payload=payload)
                     for index, payload in enumerate(payloads)]
        event = objects.Event(
            event_descriptor=objects.EventDescriptor(
                event_id=utils.generate_id(), modification_number=0, market_context="oadr://test",
                event_status="far", created_date_time=dt.datetime.now(UTC)),
            event_signals=[objects.EventSignal(intervals=intervals, signal_name=signal_name,
                                               signal_type=signal_type, signal_id=utils.generate_id(),
                                               measurement=measurement)],
            targets=[{"ven_id": VEN_ID}])
        return self.server.add_raw_event(VEN_ID, event, callback=self._opted)

    def event(self, event_id: str) -> objects.Event:
        return utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)

    def modify(self, event_id: str, payloads: list[float]) -> None:
        event = self.event(event_id)
        for interval, payload in zip(event.event_signals[0].intervals, payloads, strict=True):
            interval.signal_payload = payload
        utils.increment_event_modification_number(event)
        # openleadr answers each event's callback once; listen again for the modification's opt.
        self.server.event_callbacks[event_id] = (event, self._opted)
        self.server.events_updated[VEN_ID] = True


class VtnThread:
    """openleadr's VTN on its own event loop in a thread, for a watcher with a loop of its own
    (another process, or a CliRunner in this one)."""

    def __init__(self, site_name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.vtn = Vtn(free_port(), site_name=site_name)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> VtnThread:
        self.thread.start()
        self.call(self.vtn.server.run())
        return self

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.call(self.vtn.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return self.vtn.url
