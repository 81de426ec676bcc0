"""The engine on a Redis Cluster (`livecart dev cluster`: 3 masters, 3 replicas): comments
fan out and flash sales stay exact with three engine processes, rooms spread over the
shards, and a master failing over mid-sale loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster
from redis.cluster import ClusterNode

from clients import HostClient, ShopperClient, ViewerClient
from engine.insights.audit import audit_room
from engine.server.app import Engine
from engine.store import keys, redis_client
from engine.store.bus import PubSubMode
from engine.store.redis_server import bundled_redis_server, redis_version
from engine.tools.dev_cluster import DevCluster
from tests.conftest import ADDRESS, EngineFactory, poll, token
from tests.test_api_catalog import JACKET
from tests.test_api_orders import CONTACT

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with DevCluster(tmp_path_factory.mktemp("cluster")) as dev:
        yield dev


@pytest.fixture
async def engines(cluster: DevCluster, engine_factory: EngineFactory) -> list[Engine]:
    return [await engine_factory(redis_url=cluster.url) for _ in range(3)]


async def open_room(engine: Engine, units: int = 0) -> tuple[str, str | None]:
    room = f"cl-{secrets.token_hex(4)}"
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Cluster show")
        await host.go_live()
        if not units:
            return room, None
        await host.create_product(**JACKET)
        sale = await host.launch_sale("DJ-M", units, price=5000)
    return room, str(sale["id"])


async def join(engines: list[Engine], viewers: list[ViewerClient], room: str,
               count: int) -> list[ViewerClient]:  # fmt: skip
    """`count` viewers of `room`, spread round-robin over the engines."""
    joined = []
    for n in range(count):
        viewer = ViewerClient(engines[n % len(engines)].ws_url, room,
                              token(room, "viewer", f"v{n}"))  # fmt: skip
        viewers.append(viewer)
        await viewer.connect()
        joined.append(viewer)
    return joined


async def comments_seen(viewer: ViewerClient, texts: set[str]) -> None:
    seen: set[str] = set()
    while not texts <= seen:
        event = await viewer.next_event()
        if event.get("type") == "tick":
            seen |= {e.get("text", "") for e in event.get("entries", [])}


async def test_comments_reach_every_viewer_on_every_engine(
    engines: list[Engine], viewers: list[ViewerClient], cluster: DevCluster
) -> None:
    room, _ = await open_room(engines[0])
    audience = await join(engines, viewers, room, 9)
    texts = {f"hello from engine {n}" for n in range(3)}
    for n, text in enumerate(sorted(texts)):
        await audience[n].comment(text)  # viewers 0, 1, 2 are on engines 0, 1, 2
    await asyncio.gather(*(comments_seen(viewer, texts) for viewer in audience))
    assert all(viewer.gaps == 0 for viewer in audience)
    # Over sharded pub/sub: each engine subscribed on the shard that owns the room only.
    sync = redis.cluster.RedisCluster(*cluster.startup_nodes[0])
    try:
        channel = keys.room_bus(room)
        owner = sync.get_node_from_key(channel)
        others = [node for node in sync.get_primaries() if node.name != owner.name]
    finally:
        sync.close()
    assert shard_subscribers(owner, channel) == 3
    assert [shard_subscribers(node, channel) for node in others] == [0, 0]


def shard_subscribers(node: ClusterNode, channel: str) -> int:
    """PUBSUB SHARDNUMSUB asked of one node directly (redis-py 8.2's cluster client cannot
    parse that reply when routed through it)."""
    with redis.Redis(node.host, node.port) as client:
        count: int = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1]
    return count


async def test_a_redis_6_cluster_fans_out_over_plain_pubsub(
    engine_factory: EngineFactory, viewers: list[ViewerClient], tmp_path: Path
) -> None:
    binary = bundled_redis_server()
    assert binary is not None
    assert redis_version(binary)[0] == 6
    with DevCluster(tmp_path / "redis6", replicas_per_master=0, binary=binary) as dev:
        trio = [await engine_factory(redis_url=dev.url) for _ in range(3)]
        assert all(e.node is not None and e.node.broker.mode is PubSubMode.PLAIN for e in trio)
        room, _ = await open_room(trio[0])
        audience = await join(trio, viewers, room, 6)
        texts = {f"plain from engine {n}" for n in range(3)}
        for n, text in enumerate(sorted(texts)):
            await audience[n].comment(text)
        await asyncio.gather(*(comments_seen(viewer, texts) for viewer in audience))
        for viewer in viewers:
            await viewer.close()
        for engine in trio:
            await engine.stop()


async def test_a_flash_sale_over_three_engines_never_oversells(
    engines: list[Engine], viewers: list[ViewerClient], cluster: DevCluster
) -> None:
    room, sale = await open_room(engines[0], units=10)
    assert sale is not None
    crowd = await join(engines, viewers, room, 30)
    answers = await asyncio.gather(*(viewer.grab(sale) for viewer in crowd))
    statuses = [answer["status"] for answer in answers]
    assert (statuses.count("reserved"), statuses.count("sold_out")) == (10, 20)
    winner = next(n for n, answer in enumerate(answers) if answer["status"] == "reserved")
    shopper = ShopperClient(engines[2].base_url, room, token(room, "viewer", f"v{winner}"))
    async with shopper:
        order = await shopper.checkout([answers[winner]["reservation"]], address=ADDRESS,
                                       contact=CONTACT)  # fmt: skip
        payment = await shopper.start_payment(order["id"])
        assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    async with HostClient(engines[1].base_url, room, token(room, "host", "host-1")) as host:
        audit = await host.call("GET", f"/api/rooms/{room}/audit")
        assert (audit["ok"], audit["oversell"]) == (True, 0)
        counters = await host.sale(sale)
        assert (counters["reserved"], counters["sold"], counters["available"]) == (9, 1, 0)
    # The same audit, run as `livecart audit` would: a cluster client of its own.
    client = redis_client.connect(cluster.url)
    try:
        assert (await audit_room(client, room)).ok
    finally:
        await client.aclose()


async def test_rooms_spread_over_the_shards(engines: list[Engine], cluster: DevCluster) -> None:
    rooms = [(await open_room(engines[n % 3]))[0] for n in range(12)]
    sync = redis.cluster.RedisCluster(*cluster.startup_nodes[0])
    try:
        owners = {sync.get_node_from_key(keys.room_meta(room)).port for room in rooms}
        # A room's keys share its slot: its meta and its log are on the same master.
        for room in rooms:
            assert (sync.keyslot(keys.room_meta(room)) == sync.keyslot(keys.room_stream(room))
                    == sync.keyslot(keys.show_metrics(room)))  # fmt: skip
    finally:
        sync.close()
    assert len(owners) > 1  # 12 random rooms on one of 3 masters: about 1 in 59,000
    async with HostClient(engines[0].base_url, rooms[0], token(rooms[0], "host")) as host:
        ready = await host.http.get("/readyz")
        # The public list reads every room's meta, across the shards, in one pipeline.
        listed = (await host.http.get("/api/rooms")).json()["rooms"]
    assert set(rooms) <= set(listed)
    assert ready.json() == {
        "ok": True,
        "checks": {"redis": True, "scripts": True, "pubsub": True},
        "simulated_psp": True,
    }


async def test_a_master_failing_over_mid_sale_loses_nothing_acknowledged(
    engine_factory: EngineFactory, viewers: list[ViewerClient], tmp_path: Path
) -> None:
    # A cluster of its own: this test kills one of its masters.
    with DevCluster(tmp_path / "failover") as dev:
        pair = [await engine_factory(redis_url=dev.url) for _ in range(2)]
        room, sale = await open_room(pair[0], units=20)
        assert sale is not None
        crowd = await join(pair, viewers, room, 10)
        first = await asyncio.gather(*(viewer.grab(sale) for viewer in crowd[:5]))
        assert [a["status"] for a in first] == ["reserved"] * 5
        # Kill the master that holds the room once its replica has what it acknowledged
        # (WAIT): what a master acknowledged and had not replicated when it died is the
        # window docs/deploy.md describes.
        sync = redis.cluster.RedisCluster(*dev.startup_nodes[0])
        try:
            owner = sync.get_node_from_key(keys.room_meta(room))
            assert sync.execute_command("WAIT", 1, 2000, target_nodes=owner) == 1
        finally:
            sync.close()
        dev.kill_master(dev.master_ports().index(owner.port))
        dev.wait_for_failover()
        # The engines reach the promoted replica; grabs go on where they stopped.
        later = await poll(lambda: _grab_all(crowd[5:], sale),
                           lambda answers: all(a.get("status") for a in answers),
                           timeout_s=30)  # fmt: skip
        assert [a["status"] for a in later] == ["reserved"] * 5
        # The room's bus lived on the dead master: both engines subscribed again on the
        # promoted replica, and a comment made on one reaches viewers on the other.
        await poll(lambda: _comment(crowd[0], "after failover"), bool, timeout_s=30)
        await asyncio.wait_for(comments_seen(crowd[1], {"after failover"}), 30)
        async with HostClient(pair[1].base_url, room, token(room, "host", "host-1")) as host:
            state = await host.sale(sale)
            assert (state["reserved"], state["available"]) == (10, 10)
            audit = await host.call("GET", f"/api/rooms/{room}/audit")
        assert audit["ok"], [c for c in audit["checks"] if not c["ok"]]
        for viewer in viewers:
            await viewer.close()
        for engine in pair:
            await engine.stop()


async def _comment(viewer: ViewerClient, text: str) -> bool:
    try:
        await viewer.comment(text)
    except Exception:  # refused while the bus reconnects
        return False
    return True


async def _grab_all(crowd: list[ViewerClient], sale: str) -> list[dict[str, Any]]:
    """Each viewer's grab (the same request id on retries), {} while storage is away."""
    answers = []
    for n, viewer in enumerate(crowd):
        try:
            answers.append(await viewer.grab(sale, request_id=f"after-failover-{n}"))
        except Exception:
            answers.append({})
    return answers
