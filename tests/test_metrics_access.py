"""Who may read GET /metrics (security.md, issue 20): with LIVECART_METRICS_TOKEN set, a
scraper sending it as a bearer token; without, only a client on the engine's own host."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from engine.bench.harness import metric_values
from engine.core.settings import Settings
from engine.server.app import Engine
from engine.server.workers import worker_env
from tests.conftest import EngineFactory

TOKEN = "metrics-" + "t" * 24
FAMILY = "# TYPE livecart_open_connections gauge"


async def get_metrics(engine: Engine, **headers: str) -> httpx.Response:
    """GET /metrics over a real socket, from 127.0.0.1 (the engine's host)."""
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        return await http.get("/metrics", headers=headers)


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["retryable"] is False
    assert FAMILY not in response.text


async def test_a_configured_token_is_required_and_accepted(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(metrics_token=TOKEN)
    # From loopback too: the token, once set, is the only way in.
    missing = await get_metrics(engine)
    assert_refused(missing, 401, "auth_required")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "LIVECART_METRICS_TOKEN" in missing.json()["error"]["message"]
    answered = await get_metrics(engine, Authorization=f"Bearer {TOKEN}")
    assert answered.status_code == 200
    assert answered.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert FAMILY in answered.text
    # The scheme's case does not matter (RFC 9110), the token's does.
    assert (await get_metrics(engine, Authorization=f"bearer {TOKEN}")).status_code == 200


async def test_a_wrong_token_is_refused(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(metrics_token=TOKEN)
    for wrong in (TOKEN.upper(), TOKEN[:-1], TOKEN + "x", TOKEN[:-1] + "u", "x" * len(TOKEN)):
        refused = await get_metrics(engine, Authorization=f"Bearer {wrong}")
        assert_refused(refused, 401, "token_invalid")
        assert refused.headers["www-authenticate"] == "Bearer"
    # Not a bearer token at all: as if none were sent.
    for header in (f"Basic {TOKEN}", TOKEN, "Bearer", f"Token {TOKEN}"):
        refused = await get_metrics(engine, Authorization=header)
        assert_refused(refused, 401, "auth_required")
    # A remote scraper with the token is answered (the loopback rule is for no token).
    assert engine.listener is not None
    async with remote_client(engine.listener.http_config.loaded_app, ("203.0.113.9", 1)) as http:
        assert_refused(await http.get("/metrics"), 401, "auth_required")
        answered = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answered.status_code == 200
        assert FAMILY in answered.text


async def test_without_a_token_a_loopback_client_is_answered(
    engine_factory: EngineFactory,
) -> None:
    # No token configured: the default, and what an empty LIVECART_METRICS_TOKEN means.
    assert Settings().metrics_token == ""
    assert Settings.from_env({"LIVECART_METRICS_TOKEN": ""}).metrics_token == ""
    engine = await engine_factory(metrics_token="")
    answered = await get_metrics(engine)
    assert answered.status_code == 200
    assert FAMILY in answered.text
    # What a token-less scraper sends is not asked for.
    answered = await get_metrics(engine, Authorization="Bearer whatever-it-is-not-checked")
    assert answered.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        # What a trusted proxy (127.0.0.1 is one by default) says about a remote client.
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-For", "198.51.100.7, 203.0.113.9"),
        # ...or about a client on its own host: a proxy's word is not this host's.
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
    ],
)
async def test_without_a_token_a_forwarded_client_is_refused(
    engine_factory: EngineFactory, header: tuple[str, str]
) -> None:
    engine = await engine_factory()
    refused = await get_metrics(engine, **{header[0]: header[1]})
    assert_refused(refused, 403, "forbidden")
    assert "LIVECART_METRICS_TOKEN" in refused.json()["error"]["message"]
    assert "www-authenticate" not in refused.headers


def remote_client(app: Any, client: tuple[str, int]) -> httpx.AsyncClient:
    """A client whose requests reach `app` as if from `client`'s address (in-process ASGI:
    no other address can connect here)."""
    assert app is not None
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://engine.example")


async def test_an_untrusted_peer_cannot_pass_for_loopback(engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    assert engine.listener is not None
    assert engine.app is not None
    # What the listener runs for HTTP: uvicorn's proxy-headers middleware, then the app.
    served = engine.listener.http_config.loaded_app
    # Even when uvicorn believes every peer's X-Forwarded-For (FORWARDED_ALLOW_IPS=*), so
    # that request.client reads 127.0.0.1.
    credulous = ProxyHeadersMiddleware(engine.app, trusted_hosts="*")
    peer = ("203.0.113.9", 40000)
    for app in (served, credulous):
        async with remote_client(app, peer) as http:
            assert_refused(await http.get("/metrics"), 403, "forbidden")
            for spoof in ("127.0.0.1", "::1", "203.0.113.9, 127.0.0.1"):
                forged = await http.get("/metrics", headers={"X-Forwarded-For": spoof})
                assert_refused(forged, 403, "forbidden")
    # The same in-process path from a loopback peer is answered: the refusals are the peer's.
    async with remote_client(served, ("127.0.0.1", 40000)) as http:
        assert (await http.get("/metrics")).status_code == 200


def test_the_metrics_token_is_checked_and_kept_out_of_sight() -> None:
    assert Settings.from_env({"LIVECART_METRICS_TOKEN": TOKEN}).metrics_token == TOKEN
    for bad in ("short-token", "x" * 15, "sixteen chars ok", "é" * 20):
        with pytest.raises(ValueError, match="LIVECART_METRICS_TOKEN") as refused:
            Settings.from_env({"LIVECART_METRICS_TOKEN": bad})
        assert bad not in str(refused.value)
    assert TOKEN not in repr(Settings(metrics_token=TOKEN))


def test_workers_get_the_metrics_token() -> None:
    """`livecart serve --workers N` hands every setting to its workers in the environment."""
    settings = Settings(metrics_token=TOKEN, redis_url="redis://127.0.0.1:6379")
    env = worker_env(settings, 0)
    assert env["LIVECART_METRICS_TOKEN"] == TOKEN
    assert Settings.from_env(env).metrics_token == TOKEN
    # Unset in the parent stays unset in the worker, whatever the inherited environment.
    env = worker_env(settings.replace(metrics_token=""), 0)
    assert Settings.from_env(env).metrics_token == ""


async def test_the_benchmarks_scrape_with_the_token_from_the_environment(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await engine_factory(metrics_token=TOKEN)
    monkeypatch.setenv("LIVECART_METRICS_TOKEN", TOKEN)
    found = await asyncio.to_thread(metric_values, engine.port, r"livecart_tick_seconds_(count)")
    assert set(found) == {"count"}
