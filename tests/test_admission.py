"""engine/server/admission.py: the Origin of browser WebSocket handshakes and the handshake rate,
decided before any work is spent on a connection."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from clients import LivecartClientError, ViewerClient
from engine.core.settings import Settings
from engine.realtime.protocol import CloseCode
from engine.server.admission import (
    Admission,
    HandshakeRate,
    TrustedProxies,
    origin_allowed,
    origin_warning,
)
from engine.server.app import Engine
from tests.conftest import EngineFactory, RoomFactory, eventually, token

# ---- origin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "public_url", "ok"),
    [
        (None, "shop.example:8000", (), "", True),  # an app or the SDK: no Origin at all
        ("https://evil.example", "shop.example", (), "", False),
        ("https://evil.example", "shop.example", ("https://evil.example",), "", True),  # listed
        ("https://other.example", None, ("*",), "", True),
        ("null", "shop.example", (), "", False),  # sandboxed iframes, file:// pages
        ("https://evil.example", None, (), "", False),
        # The engine's own page under a name: allowed once configured, as a listed origin
        # or as the public URL's (scheme, host and default port compared, not spelling).
        ("https://shop.example", "shop.example", (), "https://shop.example/", True),
        ("https://shop.example", "shop.example", ("https://SHOP.example:443",), "", True),
        ("https://shop.example", "elsewhere", (), "https://shop.example/live", True),
        ("http://shop.example", "shop.example", (), "https://shop.example", False),  # scheme
        # Unconfigured, same-origin is believed only for a host DNS rebinding cannot take.
        ("http://127.0.0.1:8000", "127.0.0.1:8000", (), "", True),
        ("http://[::1]:8000", "[::1]:8000", (), "", True),
        ("http://192.0.2.10", "192.0.2.10:80", (), "", True),  # default port
        ("http://localhost:8000", "localhost:8000", (), "", True),
        ("http://shop.localhost:8000", "shop.localhost:8000", (), "", True),
        ("http://127.0.0.1:8000", "127.0.0.1:9000", (), "", False),  # another port
        ("http://localhost:8000", "127.0.0.1:8000", (), "", False),  # another host
        ("http://127.0.0.1:8000", "127.0.0.1:8000", ("https://shop.example",), "", True),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...],
                        public_url: str, ok: bool) -> None:  # fmt: skip
    assert origin_allowed(origin, host, allowed, public_url) is ok


@pytest.mark.parametrize(
    ("page", "allowed", "public_url"),
    [
        # A page at the attacker's name, the name then re-resolved to the engine's address:
        # the browser sends Origin and Host both with the attacker's name.
        ("http://rebind.example:8000", (), ""),
        ("https://rebind.example", (), ""),
        ("http://rebind.example:8000", ("https://shop.example",), ""),
        ("http://rebind.example:8000", (), "https://shop.example"),
        # Names that look like loopback are names.
        ("http://localhost.rebind.example:8000", (), ""),
        ("http://127.0.0.1.nip.io:8000", (), ""),
    ],
)
def test_same_origin_is_not_enough_for_a_name(
    page: str, allowed: tuple[str, ...], public_url: str
) -> None:
    """DNS rebinding (issue 20): Origin == Host proves nothing when the host is a name."""
    host = page.split("://", 1)[1]
    assert origin_allowed(page, host, allowed, public_url) is False
    admission = Admission(allowed, HandshakeRate(0, 0), TrustedProxies(()),
                          public_url=public_url)  # fmt: skip
    refused = admission.check(peer="192.0.2.1", headers=Headers(Host=host, Origin=page), now=0.0)
    assert refused is not None
    assert refused.status == 403
    # Told what to configure (curl and the SDK show the 403's body).
    assert "LIVECART_PUBLIC_URL" in refused.reason
    assert "LIVECART_ALLOWED_ORIGINS" in refused.reason


def test_serve_warns_when_no_origin_is_configured() -> None:
    warning = origin_warning((), "")
    assert warning is not None
    assert "LIVECART_PUBLIC_URL" in warning
    assert "LIVECART_ALLOWED_ORIGINS" in warning
    assert origin_warning((), "https://shop.example") is None
    assert origin_warning(("https://shop.example",), "") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVECART_ALLOWED_ORIGINS": "shop.example"}, "allowed_origins: 'shop.example'"),
        ({"LIVECART_ALLOWED_ORIGINS": "https://shop.example/live"}, "allowed_origins"),
        ({"LIVECART_ALLOWED_ORIGINS": "ftp://shop.example"}, "allowed_origins"),
        ({"LIVECART_PUBLIC_URL": "shop.example"}, "public_url: 'shop.example'"),
    ],
)
def test_origins_that_could_never_match_are_refused_at_start(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_configured_origins_are_accepted() -> None:
    env = {"LIVECART_ALLOWED_ORIGINS": "https://a.example, http://b.example:8080/, *",
           "LIVECART_PUBLIC_URL": "https://shop.example/base"}  # fmt: skip
    settings = Settings.from_env(env)
    assert settings.allowed_origins == ("https://a.example", "http://b.example:8080/", "*")


# ---- rate -------------------------------------------------------------------------------


def test_the_per_ip_bucket_allows_bursts_then_its_rate() -> None:
    rate = HandshakeRate(per_ip=2, per_process=0)
    assert [rate.admit("a", 0.0) for _ in range(4)] == [0.0] * 4  # a burst of 2 x 2
    assert rate.admit("a", 0.0) == pytest.approx(0.5)  # the next token in 1/2 s
    assert rate.admit("b", 0.0) == 0.0  # another address has its own bucket
    assert rate.admit("a", 0.5) == 0.0
    assert rate.admit("a", 0.5) > 0


def test_the_process_bucket_holds_for_every_address() -> None:
    rate = HandshakeRate(per_ip=0, per_process=1)
    assert [rate.admit(f"ip{n}", 0.0) for n in range(2)] == [0.0, 0.0]
    assert rate.admit("ip9", 0.0) == pytest.approx(1.0)


def test_a_refused_handshake_takes_no_token_from_the_other_bucket() -> None:
    rate = HandshakeRate(per_ip=1, per_process=10)
    for _ in range(2):
        rate.admit("a", 0.0)
    for _ in range(5):
        assert rate.admit("a", 0.0) > 0
    assert rate.process.tokens == pytest.approx(18)  # only the 2 admitted took one


def test_idle_addresses_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.server.admission.PRUNE_AT", 3)
    rate = HandshakeRate(per_ip=1, per_process=0)
    for n in range(3):
        rate.admit(f"ip{n}", 0.0)
    rate.admit("late", 100.0)  # the table is full: the idle entries go first
    assert set(rate.ips) == {"late"}


def test_admission_checks_origin_before_spending_a_token() -> None:
    admission = Admission((), HandshakeRate(per_ip=1, per_process=0), TrustedProxies(()))
    evil = Headers(Host="shop", Origin="https://evil.example")
    refused = admission.check(peer="192.0.2.1", headers=evil, now=0.0)
    assert refused is not None
    assert (refused.status, refused.retry_after_s) == (403, None)
    assert admission.rate.ips == {}
    app = Headers(Host="shop")
    assert admission.check(peer="192.0.2.1", headers=app, now=0.0) is None
    assert admission.check(peer="192.0.2.1", headers=app, now=0.0) is None
    limited = admission.check(peer="192.0.2.1", headers=app, now=0.0)
    assert limited is not None
    assert (limited.status, limited.retry_after_s) == (503, 1)


def test_several_origin_headers_are_refused() -> None:
    admission = Admission((), HandshakeRate(per_ip=0, per_process=0), TrustedProxies(()))
    headers = Headers([("Host", "shop"), ("Origin", "http://shop"), ("Origin", "http://shop")])
    refused = admission.check(peer="192.0.2.1", headers=headers, now=0.0)
    assert refused is not None
    assert refused.status == 403


# ---- behind a reverse proxy -------------------------------------------------------------

PROXIES = TrustedProxies(("10.0.0.0/8", "::1"))


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # No forwarded headers: the peer and its Host.
        ("10.0.0.5", [("Host", "shop:8080")], ("10.0.0.5", "shop:8080")),
        # From a trusted proxy: the host the browser asked for, the client's address.
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-Host", "shop:8080"),
                      ("X-Forwarded-For", "198.51.100.7")], ("198.51.100.7", "shop:8080")),
        ("::1", [("Host", "shop"), ("X-Forwarded-For", "198.51.100.7")],
         ("198.51.100.7", "shop")),
        # From anyone else the same headers are ignored.
        ("198.51.100.9", [("Host", "shop"), ("X-Forwarded-Host", "evil.example"),
                          ("X-Forwarded-For", "203.0.113.1")], ("198.51.100.9", "shop")),
        # What the client sent comes before what the proxy appended: only the last counts.
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-Host", "evil.example, shop:8080"),
                      ("X-Forwarded-For", "203.0.113.1, 198.51.100.7")],
         ("198.51.100.7", "shop:8080")),
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "203.0.113.1"),
                      ("X-Forwarded-For", "198.51.100.7")], ("198.51.100.7", "shop")),
        # A chain of trusted proxies: the last address that is not one of them.
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "203.0.113.1, 198.51.100.7, 10.1.2.3")],
         ("198.51.100.7", "shop")),
        # Every hop trusted: the first one given.
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "10.9.9.9, 10.1.2.3")],
         ("10.9.9.9", "shop")),
        # Addresses with ports, IPv6 in brackets, IPv4-mapped IPv6, something else.
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "198.51.100.7:4711")],
         ("198.51.100.7", "shop")),
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "[2001:db8::1]:4711")],
         ("2001:db8::1", "shop")),
        ("::ffff:10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "198.51.100.7")],
         ("198.51.100.7", "shop")),
        ("10.0.0.5", [("Host", "shop"), ("X-Forwarded-For", "unknown")], ("unknown", "shop")),
    ],
)  # fmt: skip
def test_forwarded_headers_are_believed_from_trusted_proxies_only(
    peer: str, headers: list[tuple[str, str]], client: tuple[str, str]
) -> None:
    assert PROXIES.client(peer, Headers(headers)) == client


def test_the_origin_check_uses_the_forwarded_host() -> None:
    # nginx's `proxy_set_header Host $host` drops a non-default port; X-Forwarded-Host
    # keeps what the browser asked for.
    admission = Admission((), HandshakeRate(per_ip=0, per_process=0), PROXIES)
    page = "http://192.0.2.10:8080"
    proxied = Headers(Host="192.0.2.10", Origin=page)
    assert admission.check(peer="10.0.0.5", headers=proxied, now=0.0) is not None
    proxied["X-Forwarded-Host"] = "192.0.2.10:8080"
    assert admission.check(peer="10.0.0.5", headers=proxied, now=0.0) is None
    # Under a name, matching the forwarded host is not enough (DNS rebinding works through
    # a proxy too): the name must be configured.
    named = Headers(Host="shop.example", Origin="http://shop.example:8080")
    named["X-Forwarded-Host"] = "shop.example:8080"
    assert admission.check(peer="10.0.0.5", headers=named, now=0.0) is not None
    configured = Admission((), HandshakeRate(0, 0), PROXIES, public_url="http://shop.example:8080")
    assert configured.check(peer="10.0.0.5", headers=named, now=0.0) is None
    # An attacker's page, its socket sent straight to the engine with a forged header.
    forged = Headers(Host="192.0.2.10:8080", Origin="https://evil.example")
    forged["X-Forwarded-Host"] = "evil.example"
    refused = admission.check(peer="198.51.100.9", headers=forged, now=0.0)
    assert refused is not None
    assert refused.status == 403


def test_the_rate_is_kept_per_forwarded_client() -> None:
    admission = Admission((), HandshakeRate(per_ip=1, per_process=0), PROXIES)
    for client in ("198.51.100.1", "198.51.100.2"):
        headers = Headers(Host="shop", **{"X-Forwarded-For": client})
        assert admission.check(peer="10.0.0.5", headers=headers, now=0.0) is None
    spoofed = Headers(Host="shop", **{"X-Forwarded-For": "203.0.113.1"})
    assert admission.check(peer="198.51.100.9", headers=spoofed, now=0.0) is None
    assert set(admission.rate.ips) == {"198.51.100.1", "198.51.100.2", "198.51.100.9"}


@pytest.mark.parametrize("bad", ["shop.example", "10.0.0.0/33", "*"])
def test_trusted_proxies_must_be_addresses_or_networks(bad: str) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings.from_env({"LIVECART_TRUSTED_PROXIES": f"127.0.0.1,{bad}"})


def test_trusted_proxies_default_to_loopback_and_may_be_none() -> None:
    assert Settings.from_env({}).trusted_proxies == ("127.0.0.0/8", "::1")
    assert Settings.from_env({"LIVECART_TRUSTED_PROXIES": ""}).trusted_proxies == ()


# ---- through the engine -----------------------------------------------------------------


async def handshake_status(
    url: str,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    local: str = "127.0.0.1",
) -> int:
    """The status a handshake gets (with `origin` and `headers`, from the address `local`)."""
    try:
        async with connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers,
            local_addr=(local, 0),
            open_timeout=5,
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_a_foreign_page_cannot_open_a_viewer_socket(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(allowed_origins=("https://shop.example",))
    room = await room_factory()
    url = f"{engine.ws_url}/{room}"
    own = f"http://{engine.settings.host}:{engine.port}"
    assert await handshake_status(url, "https://evil.example") == 403
    assert await handshake_status(url, own) == 101  # the viewer page the engine serves
    assert await handshake_status(url, "https://shop.example") == 101  # listed
    assert await handshake_status(url) == 101  # no Origin: an app
    metrics = await scrape(engine)
    assert metrics['livecart_handshakes_refused_total{reason="origin"}'] >= 1


async def rebound_handshake(engine: Engine, room: str, name: str,
                            origin: str | None = None) -> tuple[int, str]:  # fmt: skip
    """A handshake as a browser sends it once `name` resolves to the engine's address:
    `Host: name:port` and `Origin: http://name:port` (or `origin`); (status, body)."""
    page = f"http://{name}:{engine.port}"
    path = urlsplit(engine.ws_url).path
    try:
        async with connect(
            f"ws://{name}:{engine.port}{path}/{room}",
            host=engine.settings.host,  # where `name` now resolves
            port=engine.port,
            origin=origin or page,  # type: ignore[arg-type]
            proxy=None,
            open_timeout=5,
        ):
            return 101, ""
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.body.decode()


async def test_a_dns_rebinding_page_cannot_open_a_viewer_socket(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    """Nothing configured (a developer's engine): an attacker's page whose name was
    re-resolved to the engine's address sends Origin == Host == its own name. Refused,
    saying what to configure; the engine's own pages at localhost or its IP still get in."""
    engine = await engine_factory()
    room = await room_factory()
    status, body = await rebound_handshake(engine, room, "rebind.example")
    assert status == 403
    assert "LIVECART_PUBLIC_URL" in body
    assert "LIVECART_ALLOWED_ORIGINS" in body
    assert (await rebound_handshake(engine, room, "localhost"))[0] == 101
    assert (await rebound_handshake(engine, room, "127.0.0.1"))[0] == 101
    assert (await rebound_handshake(engine, room, "rebind.localhost"))[0] == 101
    metrics = await scrape(engine)
    assert metrics['livecart_handshakes_refused_total{reason="origin"}'] >= 1


async def test_configured_origins_replace_the_host_match_for_names(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(allowed_origins=("https://shop.example",))
    room = await room_factory()
    assert (await rebound_handshake(engine, room, "rebind.example"))[0] == 403
    assert (await rebound_handshake(engine, room, "shop.example", "https://shop.example"))[0] == 101


async def test_the_public_url_is_a_configured_origin(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(public_url="https://shop.example/")
    room = await room_factory()
    assert (await rebound_handshake(engine, room, "shop.example", "https://shop.example"))[0] == 101
    assert (await rebound_handshake(engine, room, "rebind.example"))[0] == 403


async def test_forwarded_headers_count_only_from_a_trusted_proxy(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(trusted_proxies=("127.0.0.1",))
    room = await room_factory()
    url = f"{engine.ws_url}/{room}"
    page = "http://192.0.2.10:8080"  # served behind a proxy that rewrites Host
    forwarded = {"X-Forwarded-Host": "192.0.2.10:8080", "X-Forwarded-For": "198.51.100.7"}
    # From the proxy's address: believed.
    assert await handshake_status(url, page, forwarded) == 101
    # The same headers from any other address are ignored: the page is then foreign, and
    # the handshake is counted against the address it really came from.
    assert await handshake_status(url, page, forwarded, local="127.0.0.2") == 403
    assert await handshake_status(url, None, forwarded, local="127.0.0.2") == 101
    assert engine.listener is not None
    assert set(engine.listener.admission.rate.ips) == {"198.51.100.7", "127.0.0.2"}


async def test_a_reconnection_storm_is_shed_with_retry_after(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(handshakes_per_ip_per_s=5)
    room = await room_factory()
    url = f"{engine.ws_url}/{room}"
    statuses = await asyncio.gather(*(handshake_status(url) for _ in range(30)))
    assert statuses.count(101) >= 10  # the burst (twice the rate) got in
    assert statuses.count(503) >= 10  # the rest were told to come back
    assert set(statuses) <= {101, 503}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=5):
            pass
    assert refused.value.response.headers["Retry-After"] == "1"


async def test_viewers_dropped_at_once_all_come_back_through_the_limit(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(handshakes_per_ip_per_s=4)
    room = await room_factory()
    viewers = []
    try:
        for n in range(12):  # joined at the allowed pace
            viewer = ViewerClient(engine.ws_url, room, token(room, user=f"u{n}"))
            viewers.append(viewer)
            await viewer.connect()
            await asyncio.sleep(0.3)  # the point: 3.3 joins/s, under the 4/s per address
        assert engine.node is not None
        # The storm: every connection dropped at once with "reconnect" (as a restart does).
        engine.node.hubs[room].kick_all(CloseCode.OVERLOADED, "storm")
        # 12 reconnect at once against a burst of 8: some are shed with 503, and the SDK's
        # jittered backoff brings them all back.
        await eventually(lambda: all(v.reconnects == 1 for v in viewers), timeout_s=30)
        refused = await scrape(engine)
        assert refused.get('livecart_handshakes_refused_total{reason="rate"}', 0) >= 1
    finally:
        for viewer in viewers:
            await viewer.close()


async def scrape(engine: Engine) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        text = (await http.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def test_the_sdk_is_told_when_to_come_back(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(handshakes_per_s=1)  # a burst of 2, then 1 a second
    room = await room_factory()
    statuses = await asyncio.gather(*(handshake_status(f"{engine.ws_url}/{room}")
                                      for _ in range(3)))  # fmt: skip
    assert statuses.count(503) >= 1
    viewer = ViewerClient(engine.ws_url, room, token(room, user="late"))
    with pytest.raises(LivecartClientError) as shed:
        await viewer.connect()
    assert (shed.value.code, shed.value.retryable) == ("connect_failed", True)
    assert shed.value.details == {"retry_after_ms": 1000}
