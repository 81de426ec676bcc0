"""engine.features.groupbuys: a team completing when K members pay before the deadline,
failing when the deadline comes first (paid members refunded, pending orders cancelled,
held units released), the K-th payment exactly at the deadline, a late payment after the
team failed, concurrent joins through two engine processes never exceeding K, the audit
(and a tampered team it catches), bad input, and the feature's declaration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engine.commerce.orders import Order, OrderState
from engine.core.errors import ConflictError, NotFoundError, ProtocolError
from engine.core.feature import load_features
from engine.core.identity import Author, Role
from engine.features.groupbuys.audit import audit_groupbuys
from engine.features.groupbuys.store import DealTerms, GroupBuys, Team, TeamState
from engine.features.groupbuys.view import GroupBuysView
from engine.insights.audit import audit_room
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import EngineFactory, Store, ViewerFactory, token
from tests.test_api_catalog import JACKET, failed, host_token, next_entry, ok

WINDOW_MS = 60_000


def member(user: str) -> Author:
    return Author(user, user.title(), Role.VIEWER)


@pytest.fixture
async def groupbuys(store: Store) -> GroupBuys:
    shop = store.shop
    found = GroupBuys(shop.redis, shop.scripts, shop.sales, shop.stock, store.orders,
                      payments=store.payments, log_maxlen=1000)  # fmt: skip
    store.payments.paid_hooks.append(found.on_paid)
    return found


async def open_deal(groupbuys: GroupBuys, store: Store, **terms: Any) -> str:
    body = {"sku": "SKU-1", "group_price": 1_500, "team_size": 3,
            "window_s": WINDOW_MS // 1000, "units": 10, **terms}  # fmt: skip
    return (await groupbuys.create(store.room, DealTerms(**body))).id


async def checkout(store: Store, user: str, reservation: str, at_ms: int) -> Order:
    return await store.checkout(user, [reservation], at_ms=at_ms)


async def pay(store: Store, order: Order, at_ms: int) -> dict[str, Any]:
    payment = await store.start_payment(order)
    await store.provider.complete(payment, "succeeded")  # paid at the provider, then its callback
    headers, body = store.callback(order, payment)
    return await store.payments.callback(headers, body, now_s=time.time(), at_ms=at_ms)


async def team_of(groupbuys: GroupBuys, store: Store, deal: str, users: list[str],
                  at_ms: int) -> tuple[Team, dict[str, str]]:  # fmt: skip
    """A team led by users[0] and joined by the rest; (team, user -> reservation)."""
    team, first = await groupbuys.start(store.room, deal, member(users[0]), at_ms=at_ms)
    held = {users[0]: first}
    for n, user in enumerate(users[1:], 1):
        team, held[user] = await groupbuys.join(store.room, deal, team.id, member(user),
                                                at_ms=at_ms + n)  # fmt: skip
    return team, held


async def test_a_team_completes_when_k_members_pay_before_the_deadline(
    groupbuys: GroupBuys, store: Store
) -> None:
    deal = await open_deal(groupbuys, store)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann", "bob", "cy"], t0)
    assert (team.state, len(team.members), team.deadline) == (TeamState.FULL, 3, t0 + WINDOW_MS)
    orders = [await checkout(store, user, rid, t0 + 100) for user, rid in held.items()]
    for order in orders:
        assert order.lines[0]["unit_price"] == 1_500
        assert order.expires_at == t0 + WINDOW_MS  # capped at the team's deadline
    for n, order in enumerate(orders):
        assert (await pay(store, order, t0 + 1_000 + n))["outcome"] == "paid"
        if n < 2:  # not yet K paid
            assert (await groupbuys.team(store.room, deal, team.id)).state is TeamState.FULL
    done = await groupbuys.team(store.room, deal, team.id)
    assert (done.state, done.paid) == (TeamState.COMPLETED, 3)
    assert [o.state for o in await store.orders.list_room(store.room)] == [OrderState.PAID] * 3
    # A later settle (any process, past the deadline) changes nothing.
    again = await groupbuys.settle(store.room, deal, team.id, at_ms=t0 + WINDOW_MS + 5)
    assert (again.state, again.settled_at) == (TeamState.COMPLETED, done.settled_at)
    await store.audit_ok()


async def test_expiry_refunds_paid_members_cancels_pending_and_releases_held(
    groupbuys: GroupBuys, store: Store
) -> None:
    deal = await open_deal(groupbuys, store, team_size=4)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann", "bob", "cy"], t0)
    assert (team.state, team.to_wire(store.room)["needed"]) == (TeamState.FORMING, 1)
    paid = await checkout(store, "ann", held["ann"], t0 + 10)
    await pay(store, paid, t0 + 20)
    pending = await checkout(store, "bob", held["bob"], t0 + 30)
    sale = (await groupbuys.get(store.room, deal)).sale
    assert (await store.shop.sales.get(store.room, sale)).available == 7
    # Not due yet: nothing happens.
    assert await groupbuys.sweep([store.room], t0 + 100, at_ms=t0 + 100) == 0
    deadline = t0 + WINDOW_MS
    assert await groupbuys.sweep([store.room], deadline, at_ms=deadline) == 1
    failed_team = await groupbuys.team(store.room, deal, team.id)
    assert (failed_team.state, failed_team.paid) == (TeamState.FAILED, 1)
    assert failed_team.unwound_at is not None
    refunded = await store.orders.get(store.room, paid.id)
    assert (refunded.state, refunded.refunded) == (OrderState.REFUNDED, refunded.total)
    assert refunded.refunds()[0]["reason"] == "team_failed"
    cancelled = await store.orders.get(store.room, pending.id)
    assert (cancelled.state, cancelled.fields["reason"]) == (OrderState.CANCELLED, "team_failed")
    record = await store.shop.stock.reservation(store.room, held["cy"])
    assert record["state"] == "released"
    assert (await store.shop.sales.get(store.room, sale)).available == 10  # all back
    # The sweep does not pick it up again; a repeat settle is a no-op.
    assert not await store.shop.redis.zrange(keys.groupbuy_due(store.room), 0, -1)
    await groupbuys.settle(store.room, deal, team.id)
    assert (await store.orders.get(store.room, paid.id)).refunded == refunded.total
    await store.audit_ok()


@pytest.mark.parametrize(("paid_at_offset", "state"), [(-1, TeamState.COMPLETED),
                                                    (0, TeamState.FAILED)])  # fmt: skip
async def test_the_k_th_payment_at_the_deadline(groupbuys: GroupBuys, store: Store,
                                                paid_at_offset: int,
                                                state: TeamState) -> None:  # fmt: skip
    """The K-th member pays 1 ms before the deadline (complete, even if settled later) or
    exactly at it (failed, and both payments refunded)."""
    deal = await open_deal(groupbuys, store, team_size=2)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann", "bob"], t0)
    deadline = team.deadline
    first = await checkout(store, "ann", held["ann"], t0 + 10)
    second = await checkout(store, "bob", held["bob"], t0 + 20)
    await pay(store, first, deadline - 10)
    assert (await pay(store, second, deadline + paid_at_offset))["outcome"] == "paid"
    settled = await groupbuys.settle(store.room, deal, team.id, at_ms=deadline + 5_000)
    assert settled.state is state
    orders = [await store.orders.get(store.room, o.id) for o in (first, second)]
    expected = OrderState.PAID if state is TeamState.COMPLETED else OrderState.REFUNDED
    assert [o.state for o in orders] == [expected, expected]
    await store.audit_ok()


async def test_a_member_paying_just_past_the_deadline_is_paid_late(
    groupbuys: GroupBuys, store: Store
) -> None:
    """A member's payment 6 ms after the team's deadline, before any settle or sweep, is
    recorded late: lateness is judged by the clock (the order's deadline is the team's)."""
    deal = await open_deal(groupbuys, store, team_size=2)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann", "bob"], t0)
    order = await checkout(store, "ann", held["ann"], t0 + 10)
    assert order.expires_at == team.deadline
    result = await pay(store, order, team.deadline + 6)
    assert (result["outcome"], result["detail"]) == ("paid", "1")
    assert (await store.orders.get(store.room, order.id)).to_wire()["late_payment"] is True


async def test_a_refund_the_provider_refuses_is_retried_by_the_next_sweep(
    groupbuys: GroupBuys, store: Store
) -> None:
    """The unwind of a failed team survives a failing step: the team stays due, and the
    next sweep replays the same refund id (recorded once, paid out once)."""
    deal = await open_deal(groupbuys, store, team_size=2)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann"], t0)
    order = await checkout(store, "ann", held["ann"], t0 + 10)
    payment = await store.start_payment(order)
    headers, body = store.callback(order, payment)  # the provider has not marked it paid
    await store.payments.callback(headers, body, now_s=time.time(), at_ms=t0 + 20)
    stuck = await groupbuys.settle(store.room, deal, team.id, at_ms=team.deadline)
    assert (stuck.state, stuck.unwound_at) == (TeamState.FAILED, None)
    assert (await store.orders.get(store.room, order.id)).state is OrderState.REFUNDED
    await store.provider.complete(payment, "succeeded")
    assert await groupbuys.sweep([store.room], team.deadline + 1, at_ms=team.deadline + 1) == 1
    assert (await groupbuys.team(store.room, deal, team.id)).unwound_at is not None
    at_provider = await store.provider.get(payment)
    assert at_provider["refunded"] == order.total
    assert len((await store.orders.get(store.room, order.id)).refunds()) == 1
    await store.audit_ok()


async def test_a_late_payment_after_the_team_failed_is_refunded(
    groupbuys: GroupBuys, store: Store
) -> None:
    deal = await open_deal(groupbuys, store, team_size=2)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann"], t0)
    order = await checkout(store, "ann", held["ann"], t0 + 10)
    payment = await store.start_payment(order)
    await groupbuys.settle(store.room, deal, team.id, at_ms=team.deadline)
    assert (await store.orders.get(store.room, order.id)).state is OrderState.CANCELLED
    await store.provider.complete(payment, "succeeded")
    headers, body = store.callback(order, payment)
    late = await store.payments.callback(headers, body, now_s=time.time(),
                                         at_ms=team.deadline + 1_000)  # fmt: skip
    assert (late["outcome"], late["detail"]) == ("refund", "order_cancelled")
    record = await store.orders.payment(store.room, payment)
    assert record is not None
    assert record["s"] == "refunded"
    await store.audit_ok()


async def test_bad_input_and_closed_teams(groupbuys: GroupBuys, store: Store) -> None:
    """(Terms out of their ranges are refused as the body is decoded: the HTTP test below.)"""
    room = store.room
    with pytest.raises(ProtocolError) as info:  # above the SKU's list price
        await groupbuys.create(room, DealTerms("SKU-1", group_price=2_501, team_size=2, units=1))
    assert (info.value.code, info.value.details["field"]) == ("invalid_field", "group_price")
    with pytest.raises(NotFoundError) as missing:
        await groupbuys.create(room, DealTerms("NOPE", group_price=1, team_size=2, units=1))
    assert missing.value.code == "sku_not_found"
    deal = await open_deal(groupbuys, store, team_size=2, units=3)
    t0 = int(time.time() * 1000)
    team, _ = await team_of(groupbuys, store, deal, ["ann"], t0)

    async def join_code(user: str, team_id: str = team.id, deal_id: str = deal,
                        at: int = t0 + 5) -> str:  # fmt: skip
        try:
            await groupbuys.join(room, deal_id, team_id, member(user), at_ms=at)
        except (ConflictError, NotFoundError, ProtocolError) as error:
            return error.code
        return "joined"

    assert await join_code("ann") == "already_in_team"
    assert await join_code("bob", at=team.deadline) == "team_closed"  # now >= deadline
    assert await join_code("bob", "t9") == "team_not_found"
    assert await join_code("bob", deal_id="gb99") == "groupbuy_not_found"
    assert await join_code("bob", "x") == "invalid_field"
    assert await join_code("bob") == "joined"
    assert await join_code("cy") == "team_full"
    with pytest.raises(ConflictError) as limit:  # one team per user by default
        await groupbuys.start(room, deal, member("ann"), at_ms=t0 + 6)
    assert limit.value.code == "groupbuy_limit"
    await groupbuys.start(room, deal, member("cy"), at_ms=t0 + 7)
    with pytest.raises(ConflictError) as sold_out:  # 3 units, 3 held
        await groupbuys.start(room, deal, member("dee"), at_ms=t0 + 8)
    assert sold_out.value.code == "groupbuy_sold_out"
    await groupbuys.settle(room, deal, team.id, at_ms=team.deadline)
    assert await join_code("dee", at=team.deadline + 1) == "team_closed"
    await store.audit_ok()


async def test_the_audit_catches_a_tampered_team(groupbuys: GroupBuys, store: Store) -> None:
    deal = await open_deal(groupbuys, store, team_size=2)
    t0 = int(time.time() * 1000)
    team, held = await team_of(groupbuys, store, deal, ["ann", "bob"], t0)
    order = await checkout(store, "ann", held["ann"], t0 + 10)
    await pay(store, order, t0 + 20)
    await store.audit_ok()
    key = keys.groupbuy_team(store.room, deal, team.id)
    await store.shop.redis.hset(key, "state", "completed")  # only one of two paid
    report = await audit_room(store.shop.redis, store.room)
    assert not report.ok
    assert "completed with 1 of 2 orders paid" in report.render()
    # Failed and being unwound (just now): the money checks hold, so that passes...
    await store.shop.redis.hset(key, mapping={"state": "failed", "settled_at": t0 + 30})
    await store.audit_ok()
    # ...but not for long: a minute on, an unfinished unwind is reported.
    await store.shop.redis.hset(key, "settled_at", t0 - 61_000)
    report = await audit_room(store.shop.redis, store.room)
    assert "still not unwound" in report.render()
    # Marked unwound, yet a unit is still held and a paid order was never refunded.
    await store.shop.redis.hset(key, "unwound_at", t0 + 40)
    report = await audit_room(store.shop.redis, store.room)
    assert "still hold a unit" in report.render()
    assert "refunded 0" in report.render()


def test_the_feature_plugs_in_through_the_seam() -> None:
    (feature,) = load_features(["engine.features.groupbuys"])
    assert (feature.name, feature.entry_kinds) == ("group_buys", ("groupbuy_", "team_"))
    assert (feature.sweep, feature.on_paid) == (GroupBuys.sweep, GroupBuys.on_paid)
    assert (feature.audit, feature.room_view) == (audit_groupbuys, GroupBuysView)
    assert len(feature.routes) == 6


# ---- through the engine ------------------------------------------------------------------


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


def auth(room: str, user: str | None = None) -> dict[str, str]:
    tok = host_token(room) if user is None else token(room, "viewer", user)
    return {"authorization": f"Bearer {tok}"}


async def test_http_wire_room_feed_and_concurrent_joins_through_two_processes(
    engine: Engine, engine_factory: EngineFactory, http: httpx.AsyncClient, room: str,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    """40 viewers, half on each of two engine processes, join one team of 5 at once: exactly
    4 get in (the leader is the 5th), everyone else is told `team_full`; the room sees each
    join with how many are still needed."""
    watcher = await viewer_factory(room)
    second = await engine_factory()
    ok(await http.post(f"/api/rooms/{room}/products", json=JACKET, headers=auth(room)), 201)
    base = f"/api/rooms/{room}/group-buys"
    body = {"sku": "DJ-M", "group_price": 3_900, "team_size": 5, "window_s": 600, "units": 50}
    failed(await http.post(base, json=body, headers=auth(room, "eve")), 403, "forbidden")
    failed(await http.post(base, json={**body, "group_price": 5_201}, headers=auth(room)),
           400, "invalid_field")  # fmt: skip
    deal = ok(await http.post(base, json=body, headers=auth(room)), 201)
    assert {k: deal[k] for k in ("id", "group_price", "list_price", "team_size", "available",
                                 "teams")} == {"id": "gb1", "group_price": 3_900,
                                               "list_price": 5_200, "team_size": 5,
                                               "available": 50, "teams": []}  # fmt: skip
    _, opened = await next_entry(watcher, "groupbuy_opened", "gb1")
    assert (opened["group_price"], opened["team_size"], opened["teams"]) == (3_900, 5, [])
    started = ok(await http.post(f"{base}/gb1/teams", headers=auth(room, "lead")), 201)
    assert (started["id"], started["state"], started["needed"], started["share_path"]) == (
        "t1",
        "forming",
        4,
        f"/live/{room}?team=gb1.t1",
    )
    assert started["reservation"].startswith(deal["sale"] + ".")
    _, entry = await next_entry(watcher, "team_started", "gb1.t1")
    assert (entry["needed"], entry["user"], entry["deadline"]) == (4, "lead", started["deadline"])
    join = f"{base}/gb1/teams/t1/join"
    async with httpx.AsyncClient(base_url=second.base_url, timeout=10) as other:
        clients = [http, other]
        answers = await asyncio.gather(*(
            clients[i % 2].post(join, headers=auth(room, f"v{i}")) for i in range(40)
        ))  # fmt: skip
    codes = [r.json()["error"]["code"] if r.status_code != 200 else "joined" for r in answers]
    assert codes.count("joined") == 4
    assert codes.count("team_full") == 36
    team = ok(await http.get(f"{base}/gb1/teams/t1"))
    assert (team["state"], team["members"], team["needed"]) == ("full", 5, 0)
    assert len({m["user"] for m in team["roster"]}) == 5
    _, joined = await next_entry(watcher, "team_joined", "gb1.t1")
    assert joined["needed"] == 3
    listed = ok(await http.get(base))["group_buys"]
    assert (listed[0]["available"], listed[0]["teams"][0]["members"]) == (45, 5)
    # A viewer joining now gets the deals in its welcome, current to the last team change.
    welcomed = (await viewer_factory(room, target=second)).welcome["group_buys"]

    def timeless(deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**d, "teams": [{k: v for k, v in t.items() if k != "server_time"}
                                for t in d["teams"]]} for d in deals]  # fmt: skip

    assert timeless(welcomed) == timeless(listed)
    failed(await http.get(f"{base}/gb9"), 404, "groupbuy_not_found")
    failed(await http.post(f"{base}/gb1/teams/t9/join", headers=auth(room, "z")), 404,
           "team_not_found")  # fmt: skip
    failed(await http.post(f"{base}/gb1/teams"), 401, "auth_required")
    report = await audit_room(engine.node.redis, room)
    assert report.ok, report.render()
    assert "group buys" in report.render()


async def test_bad_terms_are_refused_with_their_field(
    engine: Engine, http: httpx.AsyncClient, room: str
) -> None:
    ok(await http.post(f"/api/rooms/{room}/products", json=JACKET, headers=auth(room)), 201)
    base = f"/api/rooms/{room}/group-buys"
    terms = {"sku": "DJ-M", "group_price": 3_900, "team_size": 2, "units": 1}
    for change, field in [({"group_price": 5_201}, "group_price"),
                          ({"group_price": -1}, "group_price"),
                          ({"team_size": 1}, "team_size"), ({"team_size": 51}, "team_size"),
                          ({"team_size": True}, "team_size"), ({"units": 0}, "units"),
                          ({"window_s": 4}, "window_s"), ({"per_user_limit": 0}, "per_user_limit"),
                          ({"sku": None}, "sku")]:  # fmt: skip
        refused = await http.post(base, json={**terms, **change}, headers=auth(room))
        error = failed(refused, 400, "invalid_field")
        assert error["details"]["field"] == field, (change, error)
    missing = {k: v for k, v in terms.items() if k != "units"}
    assert failed(await http.post(base, json=missing, headers=auth(room)), 400,
                  "invalid_field")["details"]["field"] == "units"  # fmt: skip
    failed(await http.post(base, json=[terms], headers=auth(room)), 400, "bad_request")
    assert ok(await http.get(base))["group_buys"] == []  # a refused body opens nothing


async def test_the_sweeper_fails_a_short_team_and_tells_its_members(
    engine: Engine, http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    ok(await http.post(f"/api/rooms/{room}/products", json=JACKET, headers=auth(room)), 201)
    base = f"/api/rooms/{room}/group-buys"
    body = {"sku": "DJ-S", "group_price": 100, "team_size": 2, "window_s": 5, "units": 4}
    ok(await http.post(base, json=body, headers=auth(room)), 201)
    viewer = await viewer_factory(room, user="ann")
    started = ok(await http.post(f"{base}/gb1/teams", headers=auth(room, "ann")), 201)
    notice = await viewer.wait_for_notice("team_failed", timeout_s=15)
    assert (notice["team"], notice["refunded"]) == ("t1", 0)
    _, entry = await next_entry(viewer, "team_failed", "gb1.t1")
    assert (entry["state"], entry["paid"]) == ("failed", 0)
    team = ok(await http.get(f"{base}/gb1/teams/t1"))
    assert team["state"] == "failed"
    assert engine.node is not None
    assert isinstance(engine.node.service("group_buys"), GroupBuys)
    record = await engine.node.stock.reservation(room, started["reservation"])
    assert record["state"] in ("released", "expired")
    report = await audit_room(engine.node.redis, room)
    assert report.ok, report.render()
