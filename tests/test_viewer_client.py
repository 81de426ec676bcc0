"""The SDK's ViewerClient against real engines: reconnect with backoff and resume."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from clients import Backoff, HostClient, LivecartClientError, ShopperClient, ViewerClient
from clients.viewer import should_reconnect
from engine.server.app import Engine
from engine.store.redis_server import free_port
from tests.conftest import (
    EngineFactory,
    RoomFactory,
    ViewerFactory,
    eventually,
    make_settings,
    token,
)
from tests.test_gateway import collect_comments


class Ceiling(random.Random):
    """Always the longest delay the backoff allows (no jitter), for deterministic tests."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [(None, True), (1000, False), (1001, True), (1006, True), (1009, False), (1011, True),
     (3001, True), (3002, True), (3003, True), (3500, False), (3501, False), (3502, False),
     (3503, False)],
)  # fmt: skip
def test_reconnect_policy_follows_close_codes(code: int | None, reconnect: bool) -> None:
    assert should_reconnect(code) is reconnect


async def test_client_survives_an_engine_restart_and_resumes(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    room = "sdk-restart"

    async def start() -> Engine:
        engine = Engine(make_settings(tmp_path, redis_url=redis_url, port=port))
        sock = socket.create_server(("127.0.0.1", port), reuse_port=False)
        await engine.start(sock)
        return engine

    first = await start()
    async with HostClient(first.base_url, room, token(room, "host")) as host:
        await host.create_room("restart")
        await host.go_live()
    other = Engine(make_settings(tmp_path, redis_url=redis_url))
    await other.start()
    client = ViewerClient(first.ws_url, room, token(room), backoff=Backoff(base_s=0.05, cap_s=0.2))
    poster = ViewerClient(other.ws_url, room, token(room, "host"))
    await client.connect()
    await poster.connect()
    second: Engine | None = None
    try:
        await poster.comment("one")
        assert await collect_comments(client, 1) == ["one"]
        await first.stop()  # viewers get 1001 and start reconnecting
        await poster.comment("two, while the engine is down")
        second = await start()
        event = await client.wait_for(lambda e: e["type"] == "reconnected", timeout_s=20)
        assert event["recovered"] is True
        await poster.comment("three")
        await collect_comments(client, 1)
        assert [e["text"] for e in client.entries.values()] == [
            "one", "two, while the engine is down", "three",
        ]  # fmt: skip
        assert (client.gaps, client.duplicates, client.reconnects) == (0, 0, 1)
    finally:
        await client.close()
        await poster.close()
        await other.stop()
        if second is not None:
            await second.stop()


async def test_unrecoverable_resume_starts_over_from_recent_history(
    engine_factory: EngineFactory, tmp_path: Path
) -> None:
    engine = await engine_factory(max_replay=3, join_history=4)
    room = "sdk-unrecovered"
    async with HostClient(engine.base_url, room, token(room, "host")) as host:
        await host.create_room("t")
    poster = ViewerClient(engine.ws_url, room, token(room, "host"))
    # Reconnect after a full second: long after the eight comments below are in the log.
    patient = Backoff(base_s=1.0, cap_s=1.0, rng=Ceiling())
    client = ViewerClient(engine.ws_url, room, token(room), backoff=patient)
    await poster.connect()
    await client.connect()
    try:
        await poster.comment("old")
        await collect_comments(client, 1)
        assert client.ws is not None
        client.ws.transport.abort()
        for n in range(8):
            await poster.comment(f"new {n}")
        await collect_comments(poster, 9)  # all delivered
        event = await client.wait_for(lambda e: e["type"] == "reconnected")
        assert event["recovered"] is False
        assert [e["text"] for e in client.entries.values()] == [f"new {n}" for n in range(4, 8)]
        assert client.gaps == 1
    finally:
        await poster.close()
        await client.close()


async def test_bids_and_private_notices(engine: Engine, room_factory: RoomFactory,
                                        viewer_factory: ViewerFactory) -> None:  # fmt: skip
    """ViewerClient.bid's answers and refusals, and notices kept in `notices`."""
    room = await room_factory()
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_product("Tee", "USD", [{"sku": "T-1", "list_price": 2000}])
        auction = await host.open_auction("T-1", 1000, 60, mode="sudden_death")
    ann, bob = await viewer_factory(room, user="ann"), await viewer_factory(room, user="bob")
    with pytest.raises(LivecartClientError) as missing:
        await ann.bid("a99", 5000)
    assert missing.value.code == "auction_not_found"
    with pytest.raises(LivecartClientError) as low:
        await ann.bid(auction["id"], 1)
    assert (low.value.code, low.value.details["min_bid"]) == ("bid_too_low", 1000)
    first = await ann.bid(auction["id"], 1000, max=3000)  # the engine bids for ann up to 3000
    assert (first["status"], first["leader"]) == ("leading", True)
    answer = await bob.bid(auction["id"], first["min_bid"])
    assert (answer["status"], answer["leader"]) == ("outbid", False)
    assert (await bob.bid(auction["id"], 5000))["leader"] is True
    notice = await ann.wait_for_notice("auction_outbid", lambda n: n["auction"] == auction["id"])
    assert notice in ann.notices
    assert bob.notices == []


async def test_hello_carries_a_share_links_ref(engine: Engine, room_factory: RoomFactory,
                                               viewer_factory: ViewerFactory) -> None:  # fmt: skip
    """ViewerClient(ref=...) sends it in hello; the engine attributes the viewer to the
    sharer. Needs POST .../share and the referral reports."""
    room = await room_factory()
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        link = await ana.share_link()
    await viewer_factory(room, user="bo", ref=link["ref"])
    await viewer_factory(room, user="cleo", ref="not-a-signed-ref")  # ignored, still welcome
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:

        async def attributed() -> bool:
            sharers = (await host.referrals())["sharers"]
            return [(s["user"], s["invites"]) for s in sharers] == [("ana", 1)]

        await eventually(attributed)
