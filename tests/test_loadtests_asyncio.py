"""The asyncio load generator (loadtests/asyncio_gen.py, loadtests/swarm.py): small runs of
real scenarios against an engine, in this process (`run_viewers`) and in two generator
processes (`run`), with the test playing the host."""

from __future__ import annotations

import asyncio
from typing import Any

from clients import HostClient
from engine.bench.leanws import HandshakeRefused
from engine.server.app import Engine
from loadtests.asyncio_gen import run, run_viewers, shares
from loadtests.scenarios import COUPON, PLANS, PRODUCTS, REQUESTS
from loadtests.stats import Stats, close_codes, html_report
from loadtests.swarm import Swarm
from tests.conftest import EngineFactory, RoomFactory, eventually, token

LATENCY = {"p50", "p95", "p99"}


async def stock_products(host: HostClient) -> list[str]:
    """The load-test catalog in the room; the product ids."""
    return [(await host.create_product(**product))["id"] for product in PRODUCTS]


def failures(stats: Stats) -> dict[str, dict[str, int]]:
    return {f"{k[0]} {k[1]}": s.errors for k, s in stats.series.items() if s.failures}


def online(engine: Engine, room: str) -> int:
    """Viewers joined to `room` on `engine` (its hub's broadcast set)."""
    assert engine.node is not None
    hub = engine.node.hubs.get(room)
    return 0 if hub is None else hub.online_here


# ---- statistics ----------------------------------------------------------------------------


def test_users_are_split_evenly() -> None:
    assert shares(10, 3) == [4, 3, 3]
    assert shares(2, 4) == [1, 1]
    assert shares(7, 1) == [7]


# ---- runs against an engine ----------------------------------------------------------------


async def test_opening_rush_in_process(engine: Engine, room: str, host: HostClient) -> None:
    products = await stock_products(host)

    async def play_host() -> None:
        await eventually(lambda: online(engine, room) == 20)  # pin once everyone is in
        await host.pin_product(products[0])

    stats, _ = await asyncio.gather(
        run_viewers(engine.base_url, room, host.token, "opening-rush", 20, 40, 5.0, first_index=0),
        play_host(),
    )
    # The run ended by itself at its duration: every viewer has left the room.
    await eventually(lambda: online(engine, room) == 0)
    assert failures(stats) == {}
    assert set(stats.series) <= REQUESTS
    for name in ("token", "connect", "join"):
        kind = "HTTP" if name == "token" else "WS"
        assert stats.series[(kind, name)].count == 20, name
    assert (stats.viewers, stats.viewers_peak) == (20, 20)
    comments = stats.series[("WS", "comment")].count
    assert comments > 0
    assert stats.series[("WS", "like")].count > 0
    # Every viewer sees (nearly) every comment: pushes ~ comments x viewers.
    assert stats.series[("PUSH", "comment")].count >= comments * 15
    assert stats.series[("PUSH", "announcement")].count == 20  # the pin, once per viewer
    summary = stats.summary()
    assert set(summary["by_type"]["WS comment"]) == {"count", "failures", "max", *LATENCY}
    push = summary["push_latency_ms"]
    assert 0 <= push["p50"] <= push["p95"] <= push["p99"]
    assert "close" not in stats.statuses  # nobody was dropped


async def test_flash_sale_sells_exactly_the_allotment(
    engine: Engine, room: str, host: HostClient
) -> None:
    await stock_products(host)
    launched: dict[str, Any] = {}

    async def play_host() -> None:
        await eventually(lambda: online(engine, room) == 20)  # everyone has joined
        launched.update(await host.launch_sale("LT-SNEAKER", 5, countdown_s=2, duration_s=60))

    stats, _ = await asyncio.gather(
        run_viewers(engine.base_url, room, host.token, "flash-sale", 20, 40, 9, first_index=100),
        play_host(),
    )
    assert failures(stats) == {}
    grabs = stats.statuses["grab"]
    assert grabs["reserved"] == 5
    assert grabs.get("not_started", 0) <= 3  # taps wait for the start by the server clock
    # The 15 who missed tapped again (grab_taps = 3) while it stayed sold out.
    assert grabs["sold_out"] == 15 * 3
    sale = await host.sale(launched["id"])
    assert sale["reserved"] + sale["sold"] == 5
    # About half check out (checkout_ratio 0.5) and every order is paid (pay_ratio 1).
    checkouts = stats.series.get(("HTTP", "checkout"))
    paid = stats.statuses.get("pay", {}).get("paid", 0)
    assert checkouts is None or checkouts.count == paid == sale["sold"]
    assert stats.series[("PUSH", "announcement")].count == 20
    assert stats.series[("PUSH", "stock")].count > 0


async def test_coupon_rain_in_two_processes(engine: Engine, room: str, host: HostClient) -> None:
    await stock_products(host)
    template = await host.create_coupon(**COUPON)

    async def play_host() -> dict[str, Any]:
        # The generator processes start, then their viewers join.
        await eventually(lambda: online(engine, room) == 20, timeout_s=30)
        return await host.drop_coupons(template["id"], 5, countdown_s=2)

    result, drop = await asyncio.gather(
        asyncio.to_thread(run, engine.base_url, room, host.token, "coupon-rain", 20, 40, 10.0, 2),
        play_host(),
    )
    assert (result["processes"], result["viewers"], result["viewers_peak"]) == (2, 20, 20)
    assert result["failures"] == 0, result["errors"]
    assert result["statuses"]["claim"] == {"claimed": 5, "sold_out": 15}
    by_type = result["by_type"]
    assert {"HTTP token", "WS connect", "WS join", "WS claim", "PUSH announcement"} <= set(by_type)
    assert by_type["WS claim"]["count"] == 20
    assert by_type["WS join"]["count"] == 20
    assert set(by_type["WS claim"]) == {"count", "failures", "max", *LATENCY}
    assert result["requests"] == sum(v["count"] for k, v in by_type.items() if k[:4] != "PUSH")
    assert set(result["push_latency_ms"]) == LATENCY
    [card] = [d for d in await host.drops() if d["id"] == drop["id"]]
    assert (card["claimed"], card["remaining"]) == (5, 0)
    page = html_report("coupon-rain", room, result)
    assert "<td>WS claim</td>" in page
    assert page.startswith("<!doctype html>")


async def test_a_dropped_viewer_reconnects_and_resumes(
    engine: Engine, room: str, host: HostClient
) -> None:
    swarm = Swarm(engine.base_url, room, host.token, PLANS["opening-rush"])
    try:
        for index in range(3):
            swarm.spawn(swarm.viewer(index))
        await eventually(lambda: swarm.online == 3)
        dropped = swarm.viewers[0]
        assert dropped.conn is not None
        assert dropped.conn.transport is not None
        dropped.conn.transport.abort()  # the TCP connection drops, no close frame
        await eventually(lambda: swarm.stats.series[("WS", "join")].count == 4)
        await eventually(lambda: swarm.online == 3)
        await host.pin_product((await stock_products(host))[0])
        await eventually(lambda: swarm.stats.get("PUSH", "announcement").count == 3)
    finally:
        await swarm.stop()
    assert swarm.stats.statuses["close"] == {"1006": 1}
    assert close_codes(swarm.stats.statuses["close"]) == {"1006 abnormal": 1}  # the verdict's
    assert failures(swarm.stats) == {}
    assert (swarm.stats.viewers, swarm.stats.viewers_peak) == (3, 3)
    assert swarm.tasks == set()


async def test_a_viewer_that_leaves_does_not_come_back(
    engine: Engine, room: str, host: HostClient
) -> None:
    # What the stages do when they want fewer users: the viewer closes and stays away.
    swarm = Swarm(engine.base_url, room, host.token, PLANS["opening-rush"], seed=1)
    try:
        for index in range(3):
            swarm.spawn(swarm.viewer(index))
        await eventually(lambda: swarm.online == 3)
        swarm.leave(2)
        await eventually(lambda: swarm.online == 2)
        await eventually(lambda: online(engine, room) == 2)
        await asyncio.sleep(1.5)  # longer than a reconnect's first backoff
        assert (swarm.online, online(engine, room)) == (2, 2)
        assert swarm.viewers[2].tasks == set()
    finally:
        await swarm.stop()
    assert swarm.stats.series[("WS", "join")].count == 3  # no rejoin
    assert "close" not in swarm.stats.statuses  # its own close is not the engine's


async def test_a_shed_first_join_is_retried_after_retry_after(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    # 5 handshakes a second (a burst of 10): a burst of 25 viewers is mostly shed with 503
    # and Retry-After; every one of them gets in by coming back, as locust's viewers do.
    engine = await engine_factory(handshakes_per_s=5, handshakes_per_ip_per_s=0)
    room = await room_factory()
    swarm = Swarm(engine.base_url, room, token(room, "host", "host-1"),
                  PLANS["opening-rush"])  # fmt: skip
    try:
        for index in range(25):
            swarm.spawn(swarm.viewer(index))
        await eventually(lambda: swarm.stats.viewers == 25, timeout_s=60)
    finally:
        await swarm.stop()
    stats = swarm.stats
    assert stats.statuses["join"]["joined"] == 25
    assert "gave_up" not in stats.statuses["join"]
    shed = stats.series[("WS", "connect")].errors
    assert set(shed) == {"handshake_503"}  # refused only by the handshake limit
    assert stats.statuses["join"]["retried"] == shed["handshake_503"]  # each shed, retried
    assert stats.series[("WS", "join")].count == 25  # the 25 that got in each joined once


def test_a_refused_handshake_carries_its_retry_after() -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nRetry-After: 2"
    refused = HandshakeRefused(head)
    assert (str(refused), refused.retry_after_s) == ("HTTP/1.1 503 Service Unavailable", 2.0)
    assert HandshakeRefused(b"HTTP/1.1 404 Not Found\r\n").retry_after_s is None
