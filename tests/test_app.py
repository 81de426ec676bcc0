"""engine.server.app: the service endpoints and the Engine lifecycle (embedded Redis, graceful
stop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from clients import HostClient, ViewerClient
from engine.core.settings import Settings
from engine.server.app import Engine
from engine.store.redis_server import EmbeddedRedis
from tests.conftest import EngineFactory, ViewerFactory, eventually, make_settings, poll, token
from tests.test_api_catalog import JACKET
from tests.test_gateway import collect_comments
from tests.test_workers import alive, serving_workers, workers_of

ALL_READY = {
    "ok": True,
    "checks": {"redis": True, "scripts": True, "pubsub": True},
    "simulated_psp": True,
}
# Every metric family the engine exposes, with its type.
FAMILIES = {
    "livecart_open_connections": "gauge",
    "livecart_rooms_active": "gauge",
    "livecart_connections_total": "counter",
    "livecart_disconnects_total": "counter",
    "livecart_frames_sent_total": "counter",
    "livecart_bytes_sent_total": "counter",
    "livecart_messages_received_total": "counter",
    "livecart_errors_total": "counter",
    "livecart_comments_sampled_out_total": "counter",
    "livecart_backfill_gaps_total": "counter",
    "livecart_broker_reconnects_total": "counter",
    "livecart_redis_rtt_seconds": "histogram",
    "livecart_tick_seconds": "histogram",
    "livecart_grabs_total": "counter",
    "livecart_grab_seconds": "histogram",
    "livecart_grab_batch_size": "histogram",
    "livecart_reservations_expired_total": "counter",
    "livecart_coupon_claims_total": "counter",
    "livecart_orders_total": "counter",
    "livecart_payment_callbacks_total": "counter",
    "livecart_refunds_total": "counter",
    "livecart_orders_expired_total": "counter",
    "livecart_script_errors_total": "counter",
    "livecart_room_viewers": "gauge",
    "livecart_room_grab_seconds": "histogram",
    "livecart_room_grabs_total": "counter",
    "livecart_room_script_errors_total": "counter",
    "livecart_room_payment_callback_rejections_total": "counter",
    "livecart_room_sweeper_lag_seconds": "gauge",
    "livecart_sweep_seconds": "histogram",
    "livecart_handshakes_refused_total": "counter",
    "livecart_paid_minor_units_total": "counter",
    "livecart_ledger_events_total": "counter",
    "livecart_ledger_lag_events": "gauge",
    "livecart_build_info": "gauge",
    # The process's own, as prometheus_client's process collector names them.
    "process_cpu_seconds_total": "counter",
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, free to be killed."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of a scrape."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return samples(response.text)


# ---- service endpoints ----------------------------------------------------------------------


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": True}


async def test_index(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert response.json() == {
        "service": "livecart",
        "websocket": "/ws/{room}",
        "api": "/api/rooms",
        "docs": ["docs/protocol.md", "docs/api.md"],
    }


async def test_readyz_when_ready(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == ALL_READY


async def readyz(http: httpx.AsyncClient) -> httpx.Response:
    return await http.get("/readyz")


async def test_readyz_follows_redis(
    own_redis: EmbeddedRedis, engine_factory: EngineFactory
) -> None:
    engine = await engine_factory(redis_url=own_redis.url)
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=30) as http:
        assert (await readyz(http)).json() == ALL_READY
        own_redis.kill()
        down = await poll(lambda: readyz(http), lambda r: r.status_code == 503)
        body = down.json()
        assert body["ok"] is False
        # Pub/sub too: an idle engine on Redis 7 (sharded pub/sub, no room here) holds no
        # pub/sub connection that could notice Redis going away, so it must not say true.
        assert body["checks"] == {"redis": False, "scripts": False, "pubsub": False}
        # The liveness probe does not depend on Redis.
        assert (await http.get("/healthz")).json() == {"ok": True}

        own_redis.restart()
        up = await poll(lambda: readyz(http), lambda r: r.status_code == 200, timeout_s=20)
        assert up.json() == ALL_READY


async def test_readyz_recovers_after_the_script_cache_is_emptied(
    engine: Engine, http: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    # What a Redis 7 restart or a failover does: the data stays, the script cache is empty.
    await redis.script_flush()
    assert engine.node is not None
    scripts = engine.node.scripts  # built for the bus's pub/sub flavour
    assert not any(await redis.script_exists(*(s.sha for s in scripts.all.values())))
    # The readiness check reloads them rather than reporting a state it can repair.
    up = await readyz(http)
    assert up.json() == ALL_READY
    assert all(await redis.script_exists(*(s.sha for s in scripts.all.values())))


async def test_metrics_exposition(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert text.endswith("\n")
    types = {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")
    }
    assert types == FAMILIES
    for name in FAMILIES:
        assert f"# HELP {name} " in text
    values = samples(text)
    assert values["livecart_rooms_active"] == 0
    for histogram in ("livecart_redis_rtt_seconds", "livecart_tick_seconds"):
        assert values[f'{histogram}_bucket{{le="+Inf"}}'] == values[f"{histogram}_count"]


async def test_room_metrics_name_the_room(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    async with HostClient(str(http.base_url), room, token(room, "host", "host-1")) as host:
        await host.create_product(**JACKET)
        sale = await host.launch_sale("DJ-M", 1, price=5000)
    before = await scrape(http)
    buyers = [await viewer_factory(room, user=f"u{n}") for n in range(2)]
    answers = [await buyer.grab(sale["id"]) for buyer in buyers]
    assert [a["status"] for a in answers] == ["reserved", "sold_out"]
    forged = await http.post("/api/payments/callback", content=b"{}",
                             headers={"X-Livecart-Signature": "00"})  # fmt: skip
    assert forged.status_code == 401
    after = await scrape(http)
    tag = f'room="{room}"'
    assert after[f"livecart_room_viewers{{{tag}}}"] == 2
    for status in ("reserved", "sold_out"):
        assert after[f'livecart_room_grabs_total{{{tag},status="{status}"}}'] == 1
    assert after[f"livecart_room_grab_seconds_count{{{tag}}}"] == 2
    assert after[f'livecart_room_grab_seconds_bucket{{{tag},le="+Inf"}}'] == 2
    rejected = 'livecart_room_payment_callback_rejections_total{room="",code="signature_invalid"}'
    assert after[rejected] == before.get(rejected, 0) + 1


async def test_metrics_move_with_traffic(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    before = await scrape(http)
    viewer = await viewer_factory(room, user="alice", codec="json")
    await viewer.comment("counted")
    await viewer.ping()
    failed = await http.get("/api/rooms/r-does-not-exist")
    assert failed.status_code == 404

    after = await scrape(http)
    assert after["livecart_connections_total"] == before.get("livecart_connections_total", 0) + 1
    comment = 'livecart_messages_received_total{type="comment"}'
    assert after[comment] == before.get(comment, 0) + 1
    ping = 'livecart_messages_received_total{type="ping"}'
    assert after[ping] == before.get(ping, 0) + 1
    direct = 'livecart_frames_sent_total{kind="direct"}'  # welcome, ack, pong
    assert after[direct] >= before.get(direct, 0) + 3
    assert after["livecart_bytes_sent_total"] > before.get("livecart_bytes_sent_total", 0)
    not_found = 'livecart_errors_total{code="room_not_found"}'
    assert after[not_found] == before.get(not_found, 0) + 1
    assert after['livecart_open_connections{codec="json"}'] == 1
    assert after["livecart_rooms_active"] == 1

    await viewer.close()
    gone = await poll(
        lambda: scrape(http), lambda s: s.get('livecart_open_connections{codec="json"}', 0) == 0
    )
    assert gone.get('livecart_open_connections{codec="msgpack"}', 0) == 0


async def test_connections_gauge_counts_by_codec(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await viewer_factory(room, codec="json")
    await viewer_factory(room, codec="msgpack")
    await viewer_factory(room, codec="msgpack")
    values = await scrape(http)
    assert values['livecart_open_connections{codec="json"}'] == 1
    assert values['livecart_open_connections{codec="msgpack"}'] == 2


# ---- Engine lifecycle -----------------------------------------------------------------------


async def test_engine_with_embedded_redis(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url=None)
    async with Engine(settings) as engine:
        server = engine.embedded
        assert server is not None
        process = server.process
        assert process is not None
        assert process.poll() is None
        assert server.data_dir == tmp_path / "data" / "redis"
        assert engine.node is not None
        assert engine.node.redis_url == server.url
        room = "embedded-room"
        async with (
            httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http,
            HostClient(engine.base_url, room, token(room, "host", "host-1")) as host,
        ):
            assert (await http.get("/readyz")).json() == ALL_READY
            created = await host.create_room("On embedded Redis")
            assert created["state"] == "scheduled"
        client = aioredis.Redis.from_url(server.url)
        try:
            assert await client.sismember("lc:rooms", room)
        finally:
            await client.aclose()
        url, pid = server.url, process.pid

    assert engine.embedded is None
    assert process.poll() is not None  # exited and reaped
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    finally:
        await client.aclose()


async def test_graceful_stop_closes_viewers_with_1001(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    viewers: list[ViewerClient] = [
        await viewer_factory(room, reconnect=False, codec="json"),
        await viewer_factory(room, "host", user="host-1", reconnect=False, codec="msgpack"),
    ]
    base_url = engine.base_url
    await engine.stop()
    for viewer in viewers:
        closed = await viewer.wait_for(lambda event: event["type"] == "closed")
        assert closed == {"type": "closed", "code": 1001}
    # The port is closed: nothing answers any more.
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/healthz")


async def test_stop_closes_idle_http_connections(engine: Engine) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        async with asyncio.timeout(10):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            await reader.readexactly(len(b'{"ok":true}'))
        # The connection is now idle (keep-alive); stop must not wait for it.
        async with asyncio.timeout(5):
            await engine.stop()
            assert await reader.read() == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_stop_closes_connections_that_have_not_sent_a_head(engine: Engine) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: te")  # unfinished head
        await writer.drain()
        async with asyncio.timeout(5):  # well under the 10 s head timeout
            await engine.stop()
            # Closed with a reset is as good as EOF for a request never finished.
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_stop_is_idempotent(engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    await engine.stop()
    await engine.stop()
    assert engine.listener is None
    assert engine.node is None


async def test_start_failure_cleans_up(engine: Engine, tmp_path: Path) -> None:
    # The port is taken by `engine`: start fails and leaves nothing running.
    assert engine.node is not None
    other = Engine(
        make_settings(tmp_path / "other", port=engine.port, redis_url=engine.node.redis_url)
    )
    with pytest.raises(OSError, match="address already in use"):
        await other.start()
    assert other.listener is None
    assert other.node is None
    assert other.embedded is None


# ---- draining on SIGTERM --------------------------------------------------------------------

DRAINING = {"ok": False, "draining": True, "checks": ALL_READY["checks"], "simulated_psp": True}


async def is_draining(url: str) -> bool:
    """Whether /readyz of the engine behind a fresh connection says it is draining."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/readyz")
    return response.status_code == 503 and response.json() == DRAINING


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("2.5", True), ("300", True),
                                           ("-1", False), ("301", False)])  # fmt: skip
def test_the_drain_is_a_few_seconds(value: str, ok: bool) -> None:
    assert Settings.from_env({}).drain_s == 5.0
    if ok:
        assert Settings.from_env({"LIVECART_DRAIN_S": value}).drain_s == float(value)
    else:
        with pytest.raises(ValueError, match="drain_s"):
            Settings.from_env({"LIVECART_DRAIN_S": value})


async def all_draining(url: str, connections: int = 8) -> bool:
    return all([await is_draining(url) for _ in range(connections)])


async def test_sigterm_drains_before_closing_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Longer than the test: the drain is cut short by a second signal at the end.
    monkeypatch.setenv("LIVECART_DRAIN_S", "120")
    with serving_workers(tmp_path, "--workers", "1", "--data-dir", str(tmp_path / "data")) as (
        process, url, _
    ):  # fmt: skip
        room = "draining"
        async with HostClient(url, room, token(room, "host", "host-1")) as host:
            await host.create_room("Last minutes")
            await host.go_live()
        ws_url = url.replace("http://", "ws://") + "/ws"
        viewers = [ViewerClient(ws_url, room, token(room, user=f"u{n}"), reconnect=False)
                   for n in range(2)]  # fmt: skip
        try:
            for viewer in viewers:
                await viewer.connect()
            assert not await is_draining(url)

            process.send_signal(signal.SIGTERM)
            # A load balancer's check now fails, so it sends no new traffic here...
            await eventually(lambda: is_draining(url))
            # ... while what it still sends, and every open connection, is served as before.
            assert (await viewers[0].comment("still here"))["text"] == "still here"
            assert await collect_comments(viewers[1], 1) == ["still here"]
            async with HostClient(url, room, token(room, "host", "host-1")) as host:
                assert (await host.get_room())["state"] == "live"
            late = ViewerClient(ws_url, room, token(room, user="late"), reconnect=False)
            viewers.append(late)
            assert (await late.connect())["room"]["id"] == room

            process.send_signal(signal.SIGINT)  # a second signal ends the drain at once
            assert await asyncio.to_thread(process.wait, 30) == 0
            for viewer in viewers:
                closed = await viewer.wait_for(lambda event: event["type"] == "closed")
                assert closed == {"type": "closed", "code": 1001}
        finally:
            for viewer in viewers:
                await viewer.close()


async def test_every_worker_drains_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVECART_DRAIN_S", "120")
    with serving_workers(tmp_path, "--workers", "2", "--data-dir", str(tmp_path / "data")) as (
        process, url, log
    ):  # fmt: skip
        workers = workers_of(process.pid)
        assert len(workers) == 2
        process.send_signal(signal.SIGTERM)
        # Fresh connections, spread over both workers by the kernel: all say so.
        await eventually(lambda: all_draining(url))
        assert workers_of(process.pid) == workers  # still serving, not restarted

        process.send_signal(signal.SIGINT)  # cut short: passed on to the workers
        assert await asyncio.to_thread(process.wait, 30) == 0, log.read_text()
    assert not [pid for pid in workers if alive(pid)]
