"""engine/ledger/privacy.py through `livecart customers`: a buyer's data exported, erased
(a pseudonym in the books, nothing personal left in PostgreSQL or Redis, the totals and the
audit unchanged) and old addresses emptied by retention. A real engine, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from clients import HostClient, ShopperClient, ViewerClient
from engine.features.giveaways.store import check_draw
from engine.insights.audit import audit_room
from engine.ledger import database, privacy
from engine.ledger.privacy_scan import pseudonym
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import SECRET, EngineFactory, ViewerFactory, eventually, token
from tests.test_api_catalog import JACKET


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


ANA = "ana-q7"
NAME = "Ana Q. Lima"  # her display name (the token's)
ADDRESS = {"name": "Ana Quintela-Lima", "line1": "17 Rua das Flores", "city": "Porto",
           "postal_code": "4050-262", "country": "PT"}  # fmt: skip
CONTACT = {"email": "ana.q@example.org", "phone": "+351 911 222 333"}
DEVICE = "dev-ana-a1"
# What must be gone after `forget` (the country and the city are not hers alone).
HERS = [ANA, NAME, ADDRESS["name"], ADDRESS["line1"], CONTACT["email"], CONTACT["phone"],
        DEVICE]  # fmt: skip
BOB_ADDRESS = {**ADDRESS, "name": "Bob Stays", "line1": "2 Other Rd"}


def livecart(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIVECART_SECRET": SECRET}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)  # fmt: skip


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(livecart, *args)


async def caught_up(engine: Engine) -> None:
    """The ledger holds every order event Redis has."""
    assert engine.node is not None
    assert engine.node.ledger is not None
    writer = engine.node.ledger.writer
    assert writer is not None

    async def done() -> bool:
        return await writer.lag() == 0

    await eventually(done, timeout_s=30)


async def paid_order(engine: Engine, room: str, user: str, sale: str, *, name: str,
                     address: dict[str, str], contact: dict[str, str],
                     device: str | None = None, coupons: list[str] | None = None,
                     ref: str | None = None) -> str:  # fmt: skip
    viewer = ViewerClient(engine.ws_url, room, token(room, "viewer", user, name=name), ref=ref)
    await viewer.connect()
    try:
        grabbed = await viewer.grab(sale)
    finally:
        await viewer.close()
    async with ShopperClient(engine.base_url, room, token(room, "viewer", user)) as me:
        order = await me.checkout([grabbed["reservation"]], address=address, contact=contact,
                                  coupons=coupons, device=device)  # fmt: skip
        payment = await me.start_payment(order["id"])
        await me.pay(payment["payment"])
    return str(order["id"])


async def busy_room(engine: Engine, room: str, viewer_factory: ViewerFactory) -> dict[str, str]:
    """Ana does everything a buyer can in a room: joins through Bob's share link, comments,
    likes, claims a coupon and uses it, pays, shares her own link (Carol comes through it),
    subscribes to reminders, votes, bids, enters a giveaway, waits for a sold-out sale and
    starts a group-buy team. Bob buys too."""
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Show")
        await host.go_live()
        await host.create_product(**JACKET)
        sale = (await host.launch_sale("DJ-M", 5, price=5000, per_user_limit=2))["id"]
        scarce = (await host.launch_sale("DJ-S", 1, price=4000))["id"]
        template = await host.create_coupon("amount_off", "5 off", 10, "USD", amount=500)
        drop = (await host.drop_coupons(template["id"], 5))["id"]
        bob = await viewer_factory(room, user="bob")
        async with ShopperClient(engine.base_url, room, token(room, "viewer", "bob")) as bobs:
            bob_ref = (await bobs.share_link())["ref"]
        await bob.grab(scarce)
        ana = ViewerClient(engine.ws_url, room, token(room, "viewer", ANA, name=NAME),
                           ref=bob_ref)  # fmt: skip
        await ana.connect()
        try:
            await ana.comment(f"hello, {NAME} here")
            await ana.like(3, confirm=True)
            await ana.join_waitlist(scarce)
            coupon = (await ana.claim(drop))["coupon"]
            poll = await host.open_poll("Colour?", ["Red", "Blue"])
            await ana.vote(poll["id"], 1)
            auction = await host.open_auction("DJ-S", 1000, 600)
            await ana.bid(auction["id"], 1000)
            giveaway = await host.open_giveaway("Bag", "tote", winners=1)
            await ana.enter_giveaway(giveaway["id"])
            deal = await host.open_group_buy("DJ-M", 3000, 3, 600, 3)
            async with ShopperClient(engine.base_url, room,
                                     token(room, "viewer", ANA, name=NAME)) as me:  # fmt: skip
                link = await me.share_link()
                await me.subscribe_reminders()
                await me.start_team(deal["id"])
            carol = ViewerClient(engine.ws_url, room, token(room, "viewer", "carol"),
                                 ref=link["ref"])  # fmt: skip
            await carol.connect()
            await carol.close()
        finally:
            await ana.close()
        order = await paid_order(engine, room, ANA, sale, name=NAME, address=ADDRESS,
                                 contact=CONTACT, device=DEVICE, coupons=[coupon])  # fmt: skip
        bobs_order = await paid_order(engine, room, "bob", sale, name="Bob", address=BOB_ADDRESS,
                                      contact={"email": "bob@example.org"})  # fmt: skip
        await host.fulfill(order)
    return {"order": order, "bob": bobs_order}


async def second_room(engine: Engine, room: str) -> str:
    """Ana's paid order partly refunded, and an order she cancelled, in another show."""
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Second show")
        await host.go_live()
        await host.create_product(**JACKET)
        sale = (await host.launch_sale("DJ-S", 5, price=4000, per_user_limit=2))["id"]
        order = await paid_order(engine, room, ANA, sale, name=NAME, address=ADDRESS,
                                 contact=CONTACT, device=DEVICE)  # fmt: skip
        await host.refund(order, "r-1", amount=1500)
        viewer = ViewerClient(engine.ws_url, room, token(room, "viewer", ANA, name=NAME))
        await viewer.connect()
        grabbed = await viewer.grab(sale)
        await viewer.close()
        async with ShopperClient(engine.base_url, room, token(room, "viewer", ANA)) as me:
            pending = await me.checkout([grabbed["reservation"]], address=ADDRESS,
                                        contact=CONTACT)  # fmt: skip
            await me.cancel(pending["id"])
    return order


async def tables(url: str) -> dict[str, list[str]]:
    """Every row of every table, as text (what a search of the database would see)."""
    connection = await asyncpg.connect(url)
    try:
        names = [r["tablename"] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]  # fmt: skip
        return {name: [r["t"] for r in await connection.fetch(f"SELECT t::text AS t FROM {name} t")]
                for name in names}  # fmt: skip
    finally:
        await connection.close()


async def redis_text(redis: aioredis.Redis, rooms: list[str]) -> dict[str, str]:
    """Every key of these rooms and the host's audience: its name and whole content."""
    found = {}
    for pattern in [keys.room_keys_pattern(room) for room in rooms] + [keys.audience("host-1")]:
        async for raw in redis.scan_iter(match=pattern):
            key = raw.decode()
            kind = (await redis.type(key)).decode()
            if kind == "hash":
                content: Any = await redis.hgetall(key)
            elif kind == "set":
                content = await redis.smembers(key)
            elif kind == "zset":
                content = await redis.zrange(key, 0, -1)
            elif kind == "list":
                content = await redis.lrange(key, 0, -1)
            elif kind == "stream":
                content = await redis.xrange(key)
            else:
                content = await redis.get(key)
            found[key] = f"{key} {content!r}"
    return found


async def figures(url: str) -> dict[str, Any]:
    """What the books add up to, per room: money, refunds, coupons, events, buyers."""
    connection = await asyncpg.connect(url)
    try:
        queries = {
            "orders": "SELECT room, count(*), sum(total), sum(refunded), count(DISTINCT user_id)"
                      " FROM orders GROUP BY room ORDER BY room",
            "payments": "SELECT room, count(*), sum(amount), count(DISTINCT user_id) FROM payments"
                        " GROUP BY room ORDER BY room",
            "refunds": "SELECT room, sum(amount) FROM refunds GROUP BY room ORDER BY room",
            "coupons": "SELECT room, count(*) FROM coupon_uses GROUP BY room ORDER BY room",
            "events": "SELECT room, type, count(*), sum(amount) FROM order_events"
                      " GROUP BY room, type ORDER BY room, type",
        }  # fmt: skip
        return {name: [tuple(r) for r in await connection.fetch(sql)]
                for name, sql in queries.items()}  # fmt: skip
    finally:
        await connection.close()


async def test_a_buyer_in_two_rooms_is_exported_then_forgotten(
    ledger_url: str,
    engine_factory: EngineFactory,
    viewer_factory: ViewerFactory,
    redis: aioredis.Redis,
    redis_url: str,
) -> None:
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    first, second = f"pv-{os.urandom(3).hex()}", f"pv-{os.urandom(3).hex()}"
    ids = await busy_room(engine, first, viewer_factory)
    refunded = await second_room(engine, second)
    await caught_up(engine)
    where = ["--redis-url", redis_url, "--database-url", ledger_url]

    # ---- export: everything, from both rooms and the ledger, in one JSON document
    done = await cli("customers", "export", ANA, *where, "--json")
    assert done.returncode == 0, done.stderr
    document = orjson.loads(done.stdout)
    assert document["user"] == ANA
    rooms = document["redis"]["rooms"]
    assert set(rooms) == {first, second}
    mine = rooms[first]
    assert [o["order"]["id"] for o in mine["orders"]] == [ids["order"]]
    assert mine["orders"][0]["order"]["shipping_address"] == ADDRESS
    assert mine["orders"][0]["order"]["contact"] == CONTACT
    assert [e["entry"]["text"] for e in mine["room_log"] if e["entry"]["kind"] == "comment"] == [
        f"hello, {NAME} here"
    ]
    for found in ("coupons", "coupon_wallet", "reservations", "units", "requests", "watched_ms",
                  "joined_at_ms", "reminders_since_ms", "share_name", "referred_by",
                  "referred_viewers", "poll_votes", "bids", "auctions", "giveaway_entries",
                  "group_buy_teams", "member_of", "order_counts", "order_events",
                  "stock_events"):  # fmt: skip
        assert mine.get(found), found
    assert {o["order"]["state"] for o in rooms[second]["orders"]} == {
        "partially_refunded", "cancelled",
    }  # fmt: skip
    assert document["redis"]["audience_of_shops"] == ["host-1"]
    books = document["ledger"]
    assert {(o["room"], o["state"]) for o in books["orders"]} == {
        (first, "fulfilled"), (second, "partially_refunded"), (second, "cancelled"),
    }  # fmt: skip
    assert all(o["shipping_address"] == ADDRESS for o in books["orders"])
    assert len(books["payments"]) == 2
    assert len(books["coupon_uses"]) == 1
    assert [(r["order_id"], r["amount"]) for r in books["refunds"]] == [(refunded, 1500)]
    assert {e["type"] for e in books["order_events"]} >= {
        "order_created", "order_paid", "order_fulfilled", "order_partially_refunded",
        "order_cancelled",
    }  # fmt: skip

    # ---- forget: Redis and the ledger lose everything personal; the books stay whole
    before = await figures(ledger_url)
    done = await cli("customers", "forget", ANA, "--who", "dpo@shop", *where, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    result = orjson.loads(done.stdout)
    alias = pseudonym(SECRET, ANA)
    assert (result["pseudonym"], result["erasure_recorded"], result["left"]) == (alias, True, [])
    assert result["redis"]["stream_entries_kept"] == 0
    await caught_up(engine)
    for table, found in (await tables(ledger_url)).items():
        if table == "erasures":
            continue  # the request's own record: who asked, when (docs/ledger.md)
        for row in found:
            assert not [s for s in HERS if s in row], (table, row)
    for content in (await redis_text(redis, [first, second])).values():
        assert not [s for s in HERS if s in content], content
    assert await figures(ledger_url) == before
    for room in (first, second):
        report = await audit_room(redis, room)
        assert report.ok, report.render()
    connection = await asyncpg.connect(ledger_url)
    try:
        erasure = await connection.fetchrow("SELECT shop, user_id, who FROM erasures")
        # This test's rooms (its Redis is its own now; kept narrow all the same).
        users = {r["user_id"] for r in await connection.fetch(
            "SELECT user_id FROM orders WHERE room = ANY($1)", [first, second])}  # fmt: skip
        bobs = await connection.fetchval(
            "SELECT shipping_address FROM orders WHERE order_id = $1 AND room = $2",
            ids["bob"], first,
        )  # fmt: skip
    finally:
        await connection.close()
    assert erasure is not None
    assert tuple(erasure) == ("*", ANA, "dpo@shop")
    assert users == {alias, "bob"}
    assert orjson.loads(bobs) == BOB_ADDRESS  # nobody else's data moved
    done = await cli("customers", "export", ANA, *where, "--json")
    again = orjson.loads(done.stdout)
    assert again["redis"]["rooms"] == {}
    assert list(again["ledger"])
    assert not any(rows for table, rows in again["ledger"].items() if table != "erasures")
    # A second request finds nothing more to change and agrees on the pseudonym.
    done = await cli("customers", "forget", ANA, "--who", "dpo@shop", *where, "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["redis"]["changes"] == 0


async def test_a_won_draw_keeps_its_winner_and_the_audit_holds(
    ledger_url: str,
    engine_factory: EngineFactory,
    viewer_factory: ViewerFactory,
    redis: aioredis.Redis,
    redis_url: str,
) -> None:
    """A draw is verified from its entrants' ids: the winner's id stays in the draw and
    its prize (their name goes); an entrant who was excluded leaves the entrants."""
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    room = f"pv-{os.urandom(3).hex()}"
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Show")
        await host.go_live()
        await host.create_product(**JACKET)
        ana = await viewer_factory(room, user=ANA)
        bob = await viewer_factory(room, user="bob")
        won = await host.open_giveaway("Jacket", "a jacket", winners=1, prize_kind="product",
                                       sku="DJ-M")  # fmt: skip
        lost = await host.open_giveaway("Bag", "a bag", winners=1, one_win_per_show=True)
        await ana.enter_giveaway(lost["id"])  # before she won: excluded at the draw
        await ana.enter_giveaway(won["id"])
        await host.close_giveaway(won["id"])
        await bob.enter_giveaway(lost["id"])
        closed = await host.close_giveaway(lost["id"])
        assert (closed["winners"], closed["excluded_count"]) == (["bob"], 1), closed
    done = await cli("customers", "forget", ANA, "--who", "dpo", "--redis-url", redis_url,
                     "--database-url", ledger_url, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result = orjson.loads(done.stdout)
    kept = {k["key"] for k in result["kept"]}
    assert keys.giveaway(room, won["id"]) in kept
    assert result["left"] == []
    record = await redis.hgetall(keys.giveaway(room, won["id"]))
    assert orjson.loads(record[b"winners_list"]) == [ANA]
    assert orjson.loads(record[b"names"]) == {ANA: pseudonym(SECRET, ANA)}
    record = await redis.hgetall(keys.giveaway(room, lost["id"]))
    assert orjson.loads(record[b"entrants"]) == ["bob"]
    assert orjson.loads(record[b"excluded"]) == []
    for giveaway in (won["id"], lost["id"]):
        assert (await check_draw(redis, room, giveaway))["ok"]
    report = await audit_room(redis, room)
    assert report.ok, report.render()
    mentions = [k for k, v in (await redis_text(redis, [room])).items() if ANA in v]
    assert set(mentions) <= kept


async def test_retention_empties_only_orders_closed_long_enough_ago(
    ledger_url: str,
    engine_factory: EngineFactory,
    redis: aioredis.Redis,
    redis_url: str,
) -> None:
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    assert engine.node is not None
    orders = engine.node.orders
    room = f"pv-{os.urandom(3).hex()}"
    long_ago = int(time.time() * 1000) - 100 * 86_400_000
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Show")
        await host.go_live()
        await host.create_product(**JACKET)
        sale = (await host.launch_sale("DJ-M", 10, price=5000, per_user_limit=5))["id"]
        made = {}
        for n in range(5):
            made[n] = await paid_order(engine, room, f"buyer{n}", sale, name="B",
                                       address=ADDRESS, contact=CONTACT)  # fmt: skip
        await orders.mark(room, made[0], "fulfill", "host-1", at_ms=long_ago)  # old: emptied
        await host.fulfill(made[1])  # fulfilled now: kept
        await host.refund(made[2], "r-1")  # refunded now: kept
        await orders.refund(room, made[3], "r-2", amount=5600, reason="", who="host-1",
                            at_ms=long_ago)  # refunded long ago: emptied  # fmt: skip
        # made[4] stays paid: open, kept however old
    await caught_up(engine)
    done = await cli("customers", "retention", "--redis-url", redis_url,
                     "--database-url", ledger_url, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["orders_emptied"] == 2
    await caught_up(engine)
    connection = await asyncpg.connect(ledger_url)
    try:
        books = {r["order_id"]: (orjson.loads(r["shipping_address"]), orjson.loads(r["contact"]))
                 for r in await connection.fetch("SELECT * FROM orders")}  # fmt: skip
    finally:
        await connection.close()
    for n, order_id in made.items():
        detail = orjson.loads(await redis.hget(keys.order(room, order_id), "detail"))
        expected = ({}, {}) if n in (0, 3) else (ADDRESS, CONTACT)
        assert (detail["shipping_address"], detail["contact"]) == expected, n
        assert books[order_id] == expected, n
    report = await audit_room(redis, room)
    assert report.ok, report.render()
    done = await cli("customers", "retention", "--redis-url", redis_url,
                     "--database-url", ledger_url, "--json")  # fmt: skip
    assert orjson.loads(done.stdout)["orders_emptied"] == 0


async def test_forget_in_one_shop_leaves_the_other_shop_alone(
    ledger_url: str,
    engine_factory: EngineFactory,
    redis: aioredis.Redis,
    redis_url: str,
) -> None:
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    rooms = {}
    for shop in ("shop-a", "shop-b"):
        room = rooms[shop] = f"pv-{os.urandom(3).hex()}"
        async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
            await host.create_room("Show")
            await host.go_live()
            await host.create_product(**JACKET)
            sale = (await host.launch_sale("DJ-M", 5, price=5000))["id"]
        await paid_order(engine, room, ANA, sale, name=NAME, address=ADDRESS, contact=CONTACT,
                         device=DEVICE)  # fmt: skip
    await caught_up(engine)
    where = ["--redis-url", redis_url, "--database-url", ledger_url, "--json"]
    done = await cli("customers", "export", ANA, "--shop", "shop-b", *where)
    assert list(orjson.loads(done.stdout)["redis"]["rooms"]) == [rooms["shop-b"]]
    done = await cli("customers", "forget", ANA, "--who", "dpo", "--shop", "shop-a", *where)
    assert done.returncode == 0, done.stderr + done.stdout
    alias = pseudonym(SECRET, ANA)
    connection = await asyncpg.connect(ledger_url)
    try:
        books = {(table, r["room"]): (r["user_id"], r["device"]) for table in ("orders",)
                 for r in await connection.fetch(f"SELECT * FROM {table}")}  # fmt: skip
        paid = {r["room"]: r["user_id"] for r in await connection.fetch("SELECT * FROM payments")}
        events = {(r["room"], r["user_id"]) for r in await connection.fetch(
            "SELECT room, user_id FROM order_events")}  # fmt: skip
        erasure = await connection.fetchval("SELECT shop FROM erasures WHERE user_id = $1", ANA)
    finally:
        await connection.close()
    assert books == {
        ("orders", rooms["shop-a"]): (alias, pseudonym(SECRET, DEVICE, kind="device")),
        ("orders", rooms["shop-b"]): (ANA, DEVICE),
    }  # fmt: skip
    assert paid == {rooms["shop-a"]: alias, rooms["shop-b"]: ANA}
    assert events == {(rooms["shop-a"], alias), (rooms["shop-b"], ANA)}
    assert erasure == "shop-a"
    text = await redis_text(redis, [rooms["shop-a"], rooms["shop-b"]])
    assert not [k for k, v in text.items() if ANA in v and rooms["shop-a"] in k]
    assert [k for k, v in text.items() if ANA in v and rooms["shop-b"] in k]
    for room in rooms.values():
        report = await audit_room(redis, room)
        assert report.ok, report.render()


async def test_the_hourly_pass_runs_on_one_engine_at_a_time(
    ledger_url: str, redis: aioredis.Redis
) -> None:
    """Every engine with a ledger runs the pass (engine/ledger/service.py): the one that
    gets the advisory lock does it, the others skip that hour."""
    await database.migrate(ledger_url)
    pool = await database.connect(ledger_url)
    other = await asyncpg.connect(ledger_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", privacy.RETENTION_LOCK)
        assert await privacy.retention_pass(redis, pool, 90) is None
        await other.execute("SELECT pg_advisory_unlock($1)", privacy.RETENTION_LOCK)
        done = await privacy.retention_pass(redis, pool, 90)
        assert done is not None
        assert done["days"] == 90
    finally:
        await other.close()
        await pool.close()
