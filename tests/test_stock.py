"""Flash-sale stock: batched grabs, idempotency, releases, expiry, confirmation and the
waitlist, against real Redis and real engines."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from clients import HostClient, LivecartClientError, ViewerClient
from engine.commerce.stock import GrabAnswer, GrabBatcher, GrabRequest
from engine.core.errors import ConflictError, ForbiddenError, NotFoundError
from engine.insights.audit import audit_room
from engine.store import keys
from engine.store.redis_server import EmbeddedRedis
from tests.conftest import T0, EngineFactory, RoomFactory, Shop, ViewerFactory, eventually, token

# ---- the batcher ---------------------------------------------------------------------------


async def test_grabs_arriving_during_a_batch_go_together_in_the_next() -> None:
    release = asyncio.Event()
    batches: list[int] = []

    async def run(batch: list[GrabRequest]) -> list[GrabAnswer]:
        batches.append(len(batch))
        await release.wait()
        return [GrabAnswer({"status": "reserved", "n": r.request_id}, False) for r in batch]

    batcher = GrabBatcher(run, max_batch=4, window_s=0, on_idle=lambda: None)
    tasks = [asyncio.create_task(batcher.submit(GrabRequest("u", str(n), 1))) for n in range(7)]
    await eventually(lambda: bool(batches))
    assert batches == [1]  # the first goes out at once; the rest wait for it
    release.set()
    answers = await asyncio.gather(*tasks)
    assert batches == [1, 4, 2]  # then at most max_batch per call
    assert [a.body["n"] for a in answers] == [str(n) for n in range(7)]


async def test_the_next_batch_is_sent_before_the_answers_of_the_last_are_written() -> None:
    """Redis runs batch n+1 while the engine writes batch n's answers; answers still go out
    in arrival order, and the batcher is idle once the last is answered."""
    events: list[str] = []
    idle: list[bool] = []

    async def run(batch: list[GrabRequest]) -> list[GrabAnswer]:
        events.append("sent " + ",".join(r.request_id for r in batch))
        await asyncio.sleep(0.01)
        return [GrabAnswer({"n": r.request_id}, False) for r in batch]

    batcher = GrabBatcher(run, max_batch=2, window_s=0, on_idle=lambda: idle.append(True))
    for n in range(5):
        batcher.submit_nowait(GrabRequest("u", str(n), 1),
                              lambda answer: events.append(f"answered {answer.body['n']}"))  # type: ignore[union-attr]  # fmt: skip
    await eventually(lambda: len(events) == 8)
    assert events == [
        "sent 0", "sent 1,2", "answered 0", "sent 3,4", "answered 1", "answered 2",
        "answered 3", "answered 4",
    ]  # fmt: skip
    assert idle == [True]
    assert not batcher.in_flight


async def test_a_failed_batch_fails_each_of_its_grabs() -> None:
    async def run(batch: list[GrabRequest]) -> list[GrabAnswer]:
        raise ConnectionError("redis down")

    batcher = GrabBatcher(run, max_batch=8, window_s=0, on_idle=lambda: None)
    results = await asyncio.gather(
        *(batcher.submit(GrabRequest("u", str(n), 1)) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_window_collects_grabs_before_the_first_batch() -> None:
    batches: list[int] = []

    async def run(batch: list[GrabRequest]) -> list[GrabAnswer]:
        batches.append(len(batch))
        return [GrabAnswer({"status": "reserved"}, False) for _ in batch]

    batcher = GrabBatcher(run, max_batch=8, window_s=0.02, on_idle=lambda: None)
    await asyncio.gather(*(batcher.submit(GrabRequest("u", str(n), 1)) for n in range(5)))
    assert batches == [5]


# ---- grab semantics ---------------------------------------------------------------------------


async def test_grab_answers(shop: Shop) -> None:
    sale = await shop.sale(allotment=3, per_user_limit=2, countdown_s=10, hold_s=60)
    assert (await shop.grab(sale, "a", "early"))["status"] == "not_started"
    start = T0 + 10_000
    reserved = await shop.grab(sale, "a", "1", at=start)
    assert reserved == {
        "status": "reserved", "reservation": f"{sale}.1", "quantity": 1,
        "expires_at": start + 60_000, "price": 2500, "currency": "EUR", "replayed": False,
    }  # fmt: skip
    assert (await shop.grab(sale, "a", "2", quantity=2, at=start)) == {
        "status": "limit_reached", "limit": 2, "holding": 1, "replayed": False}  # fmt: skip
    assert (await shop.grab(sale, "b", "1", quantity=2, at=start))["status"] == "reserved"
    assert (await shop.grab(sale, "c", "1", at=start)) == {
        "status": "sold_out", "available": 0, "replayed": False}  # fmt: skip
    ended = await shop.grab(sale, "c", "2", at=T0 + 10_000 + 600_000)
    assert ended["status"] == "ended"
    await shop.audit_ok()


async def test_the_same_request_id_always_gets_the_same_answer(shop: Shop) -> None:
    sale = await shop.sale(allotment=1)
    first = await shop.grab(sale, "a", "tap-1")
    assert first["status"] == "reserved"
    again = await shop.grab(sale, "a", "tap-1")
    assert again == {**first, "replayed": True}
    # Even an answer that was "not started" or "sold out" is replayed as it was.
    sold_out = await shop.grab(sale, "b", "tap-1")
    await shop.stock.release(shop.room, first["reservation"], "a", at_ms=T0)
    assert await shop.grab(sale, "b", "tap-1") == {**sold_out, "replayed": True}
    sale_state = await shop.sales.get(shop.room, sale)
    assert (sale_state.available, sale_state.reserved) == (1, 0)


async def test_a_request_is_all_or_nothing(shop: Shop) -> None:
    sale = await shop.sale(allotment=2, per_user_limit=5)
    assert (await shop.grab(sale, "a", "1", quantity=3)) == {
        "status": "sold_out", "available": 2, "replayed": False}  # fmt: skip
    assert (await shop.sales.get(shop.room, sale)).available == 2


async def test_one_batch_serves_requests_in_order(shop: Shop) -> None:
    sale = await shop.sale(allotment=2)
    answers = await shop.stock.grab_batch(
        shop.room, sale, [GrabRequest(u, "r", 1) for u in ("a", "b", "c", "a")], at_ms=T0
    )
    assert [a.status for a in answers] == ["reserved", "reserved", "sold_out", "reserved"]
    assert [a.replayed for a in answers] == [False, False, False, True]


async def test_a_users_requests_in_one_batch_count_against_one_limit(shop: Shop) -> None:
    """The script reads every user's units once per batch: a user's second request in the
    same batch must see the first one's units."""
    sale = await shop.sale(allotment=5, per_user_limit=2)
    requests = [GrabRequest("a", "1", 1), GrabRequest("a", "2", 1), GrabRequest("a", "3", 1),
                GrabRequest("b", "1", 2), GrabRequest("a", "2", 1)]  # fmt: skip
    answers = await shop.stock.grab_batch(shop.room, sale, requests, at_ms=T0)
    assert [a.status for a in answers] == [
        "reserved", "reserved", "limit_reached", "reserved", "reserved"]  # fmt: skip
    assert answers[2].body == {"status": "limit_reached", "limit": 2, "holding": 2}
    assert answers[4] == GrabAnswer(answers[1].body, replayed=True)
    units = await shop.redis.hgetall(keys.sale_users(shop.room, sale))
    assert units == {b"a": b"2", b"b": b"2"}
    assert (await shop.sales.get(shop.room, sale)).available == 1
    await shop.audit_ok()


# ---- release, expiry, confirmation ---------------------------------------------------------


async def test_release_returns_units_and_guards_ownership(shop: Shop) -> None:
    sale = await shop.sale(allotment=1)
    reservation = (await shop.grab(sale, "a", "1"))["reservation"]
    with pytest.raises(ForbiddenError):
        await shop.stock.release(shop.room, reservation, "b", at_ms=T0)
    await shop.stock.release(shop.room, reservation, "a", at_ms=T0)
    with pytest.raises(ConflictError) as twice:
        await shop.stock.release(shop.room, reservation, "a", at_ms=T0)
    assert (twice.value.code, twice.value.details) == (
        "reservation_not_held",
        {"state": "released"},
    )
    with pytest.raises(NotFoundError):
        await shop.stock.release(shop.room, f"{sale}.99", "a", at_ms=T0)
    assert (await shop.grab(sale, "b", "1"))["status"] == "reserved"
    await shop.audit_ok()


async def test_expiry_only_touches_holds_whose_time_is_up(shop: Shop) -> None:
    sale = await shop.sale(allotment=2, hold_s=30)
    early = (await shop.grab(sale, "a", "1"))["reservation"]
    late = (await shop.grab(sale, "b", "1", at=T0 + 10_000))["reservation"]
    due = await shop.stock.due(shop.room, T0 + 30_000, 100)
    assert due == [early]
    outcomes = await shop.stock.expire(shop.room, sale, [early, late], at_ms=T0 + 30_000)
    assert outcomes == ["expired", "not_expired"]
    assert (await shop.stock.reservation(shop.room, early))["state"] == "expired"
    assert (await shop.sales.get(shop.room, sale)).available == 1
    await shop.audit_ok()


async def test_confirm_turns_a_hold_into_sold_exactly_once(shop: Shop) -> None:
    sale = await shop.sale(allotment=2, hold_s=30)
    reservation = (await shop.grab(sale, "a", "1"))["reservation"]
    assert await shop.stock.confirm(shop.room, reservation, "order-1", at_ms=T0 + 1) == ("a", 1)
    with pytest.raises(ConflictError) as again:
        await shop.stock.confirm(shop.room, reservation, "order-2", at_ms=T0 + 2)
    assert again.value.details == {"state": "sold"}
    # A hold past its time cannot be confirmed, even before the sweeper got to it.
    stale = (await shop.grab(sale, "b", "1"))["reservation"]
    with pytest.raises(ConflictError) as expired:
        await shop.stock.confirm(shop.room, stale, "order-3", at_ms=T0 + 30_000)
    assert expired.value.code == "reservation_expired"
    sale_state = await shop.sales.get(shop.room, sale)
    assert (sale_state.sold, sale_state.reserved, sale_state.available) == (1, 1, 0)
    await shop.audit_ok()


@pytest.mark.parametrize("round_", range(10))
async def test_release_expiry_and_confirm_racing_return_a_unit_once(
    shop: Shop, round_: int
) -> None:
    sale = await shop.sale(allotment=1, hold_s=30)
    reservation = (await shop.grab(sale, "a", "1"))["reservation"]
    at = T0 + 29_999 + round_ % 2  # just before or exactly at expiry
    results = await asyncio.gather(
        shop.stock.confirm(shop.room, reservation, "order", at_ms=at),
        shop.stock.release(shop.room, reservation, "a", at_ms=at),
        shop.stock.expire(shop.room, sale, [reservation], at_ms=at),
        shop.stock.expire(shop.room, sale, [reservation], at_ms=at),
        return_exceptions=True,
    )
    confirmed, released, *expired = results
    won = {
        "sold": isinstance(confirmed, tuple),
        "released": released is None,
        "expired": sum(outcome == ["expired"] for outcome in expired),
    }
    assert sum(won.values()) == 1, results
    final = (await shop.stock.reservation(shop.room, reservation))["state"]
    assert won[final] == 1
    sale_state = await shop.sales.get(shop.room, sale)
    assert (sale_state.available, sale_state.reserved, sale_state.sold) == (
        (0, 0, 1) if final == "sold" else (1, 0, 0)
    )
    await shop.audit_ok()


# ---- the waitlist -------------------------------------------------------------------------------


async def test_units_that_come_back_go_to_the_waitlist_first(shop: Shop) -> None:
    sale = await shop.sale(allotment=1)
    held = (await shop.grab(sale, "a", "1"))["reservation"]
    assert (await shop.grab(sale, "b", "1"))["status"] == "sold_out"
    assert await shop.stock.join_waitlist(shop.room, sale, "b", at_ms=T0) == 1
    assert await shop.stock.join_waitlist(shop.room, sale, "c", at_ms=T0) == 2
    assert await shop.stock.join_waitlist(shop.room, sale, "b", at_ms=T0) == 1  # once only
    await shop.stock.release(shop.room, held, "a", at_ms=T0)
    # b was first in line: the unit is b's now, and nobody else can grab it.
    assert (await shop.grab(sale, "d", "1"))["status"] == "sold_out"
    sale_state = await shop.sales.get(shop.room, sale)
    assert (sale_state.available, sale_state.reserved) == (0, 1)
    await shop.sales.adjust(shop.room, sale, "topup", 1, at_ms=T0)
    assert (await shop.grab(sale, "d", "2"))["status"] == "sold_out"  # c took the top-up
    with pytest.raises(ConflictError) as refused:
        await shop.stock.join_waitlist(shop.room, sale, "b", at_ms=T0)
    assert refused.value.code == "limit_reached"
    await shop.audit_ok()


async def test_waitlist_refusals(shop: Shop) -> None:
    sale = await shop.sale(allotment=1, countdown_s=5)
    for at, code in [(T0, "sale_not_started"), (T0 + 5_000, "sale_available")]:
        with pytest.raises(ConflictError) as refused:
            await shop.stock.join_waitlist(shop.room, sale, "a", at_ms=at)
        assert refused.value.code == code
    await shop.sales.adjust(shop.room, sale, "stop", at_ms=T0 + 6_000)
    with pytest.raises(ConflictError) as ended:
        await shop.stock.join_waitlist(shop.room, sale, "a", at_ms=T0 + 6_000)
    assert ended.value.code == "sale_ended"


# ---- end to end through engines ---------------------------------------------------------------


async def launch(host: HostClient, allotment: int, **terms: Any) -> str:
    await host.create_product("Sneaker", "USD", [{"sku": "SNK", "list_price": 9900}])
    return str((await host.launch_sale("SNK", allotment, **terms))["id"])


async def test_viewers_grab_release_and_get_waitlist_offers(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    sale = await launch(host, 1, hold_s=30)
    alice = await viewer_factory(room, user="alice")
    bob = await viewer_factory(room, user="bob")
    mine = await alice.grab(sale)
    assert mine["status"] == "reserved"
    assert (await bob.grab(sale))["status"] == "sold_out"
    assert await bob.join_waitlist(sale) == 1
    await alice.release(mine["reservation"])
    offer = await bob.wait_for(lambda e: e.get("kind") == "reservation_offered")
    assert offer["sale"] == sale
    assert offer["quantity"] == 1
    tick = await alice.wait_for(lambda e: sale in e.get("stock", {}))
    assert tick["stock"][sale]["reserved"] == 1


async def test_anonymous_viewers_cannot_grab(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    sale = await launch(host, 5)
    anonymous = await viewer_factory(room, role=None)
    with pytest.raises(LivecartClientError) as refused:
        await anonymous.grab(sale)
    assert refused.value.code == "forbidden"


async def test_grab_frames_are_validated(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    sale = await launch(host, 5)
    viewer = await viewer_factory(room)
    for frame, code in [
        ({"type": "grab", "sale": sale}, "invalid_field"),  # no request id
        ({"type": "grab", "sale": "x1", "id": "a"}, "invalid_field"),
        ({"type": "grab", "sale": "s999", "id": "b"}, "sale_not_found"),
        ({"type": "grab", "sale": sale, "id": "c", "quantity": 11}, "invalid_field"),
        ({"type": "release", "reservation": "nope", "id": "d"}, "invalid_field"),
        ({"type": "release", "reservation": f"{sale}.77", "id": "e"}, "reservation_not_found"),
    ]:
        await viewer.send_raw(orjson.dumps(frame).decode())
        error = await viewer.wait_for(lambda e: e.get("type") == "error")
        assert error["code"] == code, frame


async def age(redis: aioredis.Redis, room: str, sale: str, reservation: str) -> None:
    """Move a hold's expiry into the past (instead of waiting out the hold time)."""
    res_key = keys.sale_reservations(room, sale)
    record = orjson.loads(await redis.hget(res_key, reservation))
    record["e"] = 1
    await redis.hset(res_key, reservation, orjson.dumps(record))
    await redis.zadd(keys.expiry(room), {reservation: 1})


async def test_expired_hold_is_swept_and_its_owner_told(
    engine_factory: EngineFactory, viewer_factory: ViewerFactory
) -> None:
    engine = await engine_factory(sweep_ms=50)
    assert engine.node is not None
    room = f"sweep-{secrets.token_hex(3)}"
    async with HostClient(engine.base_url, room, token(room, "host")) as host:
        await host.create_room("t")
        sale = await launch(host, 1, hold_s=10)
        viewer = await viewer_factory(room, target=engine, user="slowpoke")
        reservation = (await viewer.grab(sale))["reservation"]
        await age(engine.node.redis, room, sale, reservation)
        notice = await viewer.wait_for(lambda e: e.get("kind") == "reservation_expired")
        assert notice["reservation"] == reservation
        assert (await host.sale(sale))["available"] == 1


async def test_thousands_of_grabs_through_two_engines_never_oversell(
    engine_factory: EngineFactory, room_factory: RoomFactory, redis: aioredis.Redis
) -> None:
    first, second = await engine_factory(), await engine_factory()
    room = await room_factory()
    async with HostClient(first.base_url, room, token(room, "host", "host-1")) as host:
        sale = await launch(host, 150, per_user_limit=2)
    viewers = [
        ViewerClient(
            (first if n % 2 else second).ws_url,
            room,
            token(room, user=f"v{n}"),
            codec="msgpack" if n % 3 else "json",
        )
        for n in range(300)
    ]
    await asyncio.gather(*(v.connect() for v in viewers))
    try:
        answers = await asyncio.gather(
            *(v.grab(sale) for v in viewers for _ in range(7)), return_exceptions=True
        )
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
    assert not [a for a in answers if isinstance(a, BaseException)]
    statuses = Counter(a["status"] for a in answers if isinstance(a, dict))
    reserved_units = sum(
        a["quantity"] for a in answers if isinstance(a, dict) and a["status"] == "reserved"
    )
    assert reserved_units == 150
    assert statuses["reserved"] + statuses["sold_out"] + statuses["limit_reached"] == 2100
    per_user = Counter(
        v.welcome["user"]
        for v, a in zip((v for v in viewers for _ in range(7)), answers, strict=True)
        if isinstance(a, dict) and a["status"] == "reserved"
    )
    assert max(per_user.values()) <= 2
    assert first.node is not None
    report = await audit_room(redis, room)
    assert report.ok, report.render()


async def test_redis_restart_mid_sale_loses_nothing_acknowledged(
    engine_factory: EngineFactory, tmp_path: Path
) -> None:
    # appendfsync always: every acknowledged grab is on disk before its answer.
    with EmbeddedRedis(tmp_path / "redis", appendfsync="always") as server:
        engine = await engine_factory(redis_url=server.url)
        assert engine.node is not None
        room = "restart-sale"
        async with HostClient(engine.base_url, room, token(room, "host")) as host:
            await host.create_room("t")
            sale = await launch(host, 20, per_user_limit=20)
            buyer = ViewerClient(engine.ws_url, room, token(room, user="buyer"))
            await buyer.connect()
            try:
                before = [await buyer.grab(sale) for _ in range(5)]
                server.kill()
                server.restart()  # the AOF is replayed; the script cache is empty
                after: list[dict[str, Any]] = []
                refusals: set[str] = set()
                async with asyncio.timeout(20):
                    while len(after) < 5:
                        try:
                            after.append(await buyer.grab(sale))
                        except LivecartClientError as exc:  # while the engine reconnects
                            refusals.add(exc.code)
                            await asyncio.sleep(0.1)
                assert refusals <= {"unavailable"}
            finally:
                await buyer.close()
            held = {a["reservation"] for a in before + after}
            assert len(held) == 10
            state = await host.sale(sale)
            assert (state["reserved"], state["available"]) == (10, 10)
        report = await audit_room(engine.node.redis, room)
        assert report.ok, report.render()
