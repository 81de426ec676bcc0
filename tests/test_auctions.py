"""engine.features.auctions.store: the Lua bid script against the reference rules, anti-sniping
and sudden
death on the server's clock, closing once and awarding the lot at the winning price,
concurrent bids from many viewers through two engine processes, the winner's payment
window and the second-chance offer, bad input, and the audit's auction check."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from clients import HostClient, LivecartClientError, ShopperClient, ViewerClient
from engine.bench.auction import Bidder
from engine.core.errors import ConflictError, RejectedError
from engine.core.identity import Author, Role
from engine.features.auctions.rules import BidTooLow, Standing, apply_bid, replay
from engine.features.auctions.store import AuctionState, AuctionStore, AuctionTerms
from engine.insights.audit import audit_room
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import ADDRESS, T0, EngineFactory, Shop, ViewerFactory, eventually, poll, token
from tests.test_api_catalog import JACKET, failed, host_token, next_entry, ok

TABLE = ((0, 100), (5_000, 250))


def bidder(user: str) -> Author:
    return Author(user, user.title(), Role.VIEWER)


@pytest.fixture
async def auctions(shop: Shop) -> AuctionStore:
    return AuctionStore(shop.redis, shop.scripts, shop.sales, shop.stock, log_maxlen=1000,
                        payment_window_ms=300_000)  # fmt: skip


async def open_at(auctions: AuctionStore, room: str, **terms: Any) -> str:
    body = {"sku": "SKU-1", "start_price": 1_000, "duration_s": 60, "extend_s": 15,
            "increments": [list(r) for r in TABLE], **terms}  # fmt: skip
    return (await auctions.create(room, msgspec.convert(body, AuctionTerms), at_ms=T0)).id


# ---- storage level, pinned clock ---------------------------------------------------------


async def test_the_bid_script_follows_the_reference_rules(auctions: AuctionStore,
                                                          shop: Shop) -> None:  # fmt: skip
    """400 random bids (some too low, some with proxies, some from the leader): after each,
    Redis and engine.features.auctions.rules agree on the outcome, price, leader and next
    minimum."""
    aid = await open_at(auctions, shop.room, duration_s=3600)
    rng = random.Random(8)
    model = Standing.opening(1_000, TABLE)
    users = [f"u{i}" for i in range(6)]
    for n in range(400):
        user = rng.choice(users)
        amount = model.min_bid + rng.choice([-150, -1, 0, 0, 50, 100, 400])
        ceiling = amount + rng.choice([0, 0, 300, 1_200]) if rng.random() < 0.4 else None
        try:
            model, outcome = apply_bid(model, user, amount, ceiling)
            expected: Any = ("leading" if outcome.value != "outbid" else "outbid", model.price,
                             model.leader == user, model.min_bid)  # fmt: skip
        except BidTooLow as low:
            expected = ("bid_too_low", low.min_bid)
        try:
            got = await auctions.bid(shop.room, aid, bidder(user), amount, ceiling, at_ms=T0 + n)
            actual: Any = (got["status"], got["price"], got["leader"], got["min_bid"])
        except RejectedError as error:
            actual = (error.code, error.details["min_bid"])
        assert actual == expected, (n, user, amount, ceiling)
    stored = await auctions.get(shop.room, aid, at_ms=T0 + 500)
    assert (stored.price, stored.leader, stored.bids) == (model.price, model.leader, model.bids)
    replayed = replay(1_000, TABLE, await auctions.bid_log(shop.room, aid))
    assert (replayed.price, replayed.leader) == (model.price, model.leader)


async def test_anti_sniping_extends_the_clock(auctions: AuctionStore, shop: Shop) -> None:
    aid = await open_at(auctions, shop.room, mode="anti_snipe")
    await auctions.bid(shop.room, aid, bidder("ann"), 1_000, at_ms=T0 + 30_000)
    assert (await auctions.get(shop.room, aid, at_ms=T0 + 30_000)).ends_at == T0 + 60_000
    late = await auctions.bid(shop.room, aid, bidder("bob"), 1_100, at_ms=T0 + 55_000)
    assert late["ends_at"] == T0 + 70_000  # a bid in the last 15 s: now + 15 s
    again = await auctions.bid(shop.room, aid, bidder("ann"), 1_200, at_ms=T0 + 69_000)
    assert again["ends_at"] == T0 + 84_000
    assert (await auctions.get(shop.room, aid, at_ms=T0 + 83_999)).state is AuctionState.OPEN
    with pytest.raises(ConflictError, match="ended"):
        await auctions.bid(shop.room, aid, bidder("bob"), 5_000, at_ms=T0 + 84_000)
    closed = await auctions.get(shop.room, aid, at_ms=T0 + 84_000)
    assert (closed.state, closed.winner, closed.price) == (AuctionState.CLOSED, "ann", 1_200)


async def test_sudden_death_never_moves_the_clock(auctions: AuctionStore, shop: Shop) -> None:
    aid = await open_at(auctions, shop.room, mode="sudden_death")
    last = await auctions.bid(shop.room, aid, bidder("ann"), 1_000, at_ms=T0 + 59_999)
    assert last["ends_at"] == T0 + 60_000
    with pytest.raises(ConflictError):
        await auctions.bid(shop.room, aid, bidder("bob"), 9_000, at_ms=T0 + 60_000)


async def test_closing_once_awards_the_lot_at_the_winning_price(
    auctions: AuctionStore, shop: Shop
) -> None:
    aid = await open_at(auctions, shop.room)
    await auctions.bid(shop.room, aid, bidder("ann"), 1_000, 4_000, at_ms=T0 + 1)
    await auctions.bid(shop.room, aid, bidder("bob"), 2_000, at_ms=T0 + 2)
    early = await auctions.close(shop.room, aid, at_ms=T0 + 59_999)
    assert early.state is AuctionState.OPEN  # not due, and not ended by the host
    first, second = await asyncio.gather(
        auctions.close(shop.room, aid, at_ms=T0 + 60_000),
        auctions.close(shop.room, aid, at_ms=T0 + 60_001),
    )
    assert first.offers == second.offers
    assert len(first.offers) == 1
    offer = first.offers[0]
    assert (first.winner, first.price, offer["user"], offer["price"]) == (
        "ann",
        2_100,
        "ann",
        2_100,
    )
    reservation = await shop.stock.reservation(shop.room, offer["reservation"])
    assert (reservation["user"], reservation["price"], reservation["state"]) == (
        "ann",
        2_100,
        "held",
    )
    lot = await shop.sales.get(shop.room, first.sale)
    assert (lot.private, lot.units, lot.available, lot.reserved) == (f"auction:{aid}", 1, 0, 1)
    # The lot is not for grabs, and not among the room's flash sales.
    assert (await shop.grab(lot.id, "eve", "r1"))["status"] == "sale_not_found"
    assert lot.id not in [s.id for s in await shop.sales.list(shop.room)]
    await shop.audit_ok()


async def test_the_sweeper_closes_due_auctions_and_a_crash_before_the_award_heals(
    auctions: AuctionStore, shop: Shop
) -> None:
    aid = await open_at(auctions, shop.room)
    await auctions.bid(shop.room, aid, bidder("ann"), 1_000, at_ms=T0 + 1)
    await shop.redis.sadd(keys.rooms_index(), shop.room)
    try:
        assert await auctions.sweep([shop.room], T0 + 59_999, T0 + 59_999) == 0
        # A process that closes and dies before awarding the lot: the script ran, no offer.
        await shop.scripts.all["auction_close"](
            shop.redis,
            [keys.auction(shop.room, aid), keys.auctions_open(shop.room),
             keys.room_stream(shop.room)],
            [T0 + 60_000, 1000, keys.room_bus(shop.room), ""],
        )  # fmt: skip
        raw = await auctions.bid_log(shop.room, aid)
        assert len(raw) == 1
        healed = await auctions.get(shop.room, aid)  # any read finishes the award
        assert [(o["user"], o["price"]) for o in healed.offers] == [("ann", 1_000)]
        aid2 = await open_at(auctions, shop.room)
        await auctions.bid(shop.room, aid2, bidder("bob"), 1_000, at_ms=T0 + 1)
        assert await auctions.sweep([shop.room], T0 + 60_000, T0 + 60_000) == 1
        closed = await auctions.get(shop.room, aid2)
        assert (closed.state, closed.winner, len(closed.offers)) == (AuctionState.CLOSED, "bob", 1)
    finally:
        await shop.redis.srem(keys.rooms_index(), shop.room)
    await shop.audit_ok()


async def test_an_auction_without_bids_closes_unsold(auctions: AuctionStore, shop: Shop) -> None:
    aid = await open_at(auctions, shop.room)
    closed = await auctions.close(shop.room, aid, now=True)
    assert (closed.state, closed.winner, closed.offers) == (AuctionState.CLOSED, None, ())
    with pytest.raises(ConflictError, match="no other bidder"):
        await auctions.offer_runner_up(shop.room, aid)
    await shop.audit_ok()


async def test_the_audit_catches_a_tampered_price(auctions: AuctionStore, shop: Shop) -> None:
    aid = await open_at(auctions, shop.room)
    await auctions.bid(shop.room, aid, bidder("ann"), 1_000, at_ms=T0 + 1)
    await auctions.bid(shop.room, aid, bidder("bob"), 1_500, at_ms=T0 + 2)
    await shop.audit_ok()
    await shop.redis.hset(f"lc:{{{shop.room}}}:auction:{aid}", "price", 1_100)
    report = await audit_room(shop.redis, shop.room)
    assert not report.ok
    assert "replayed" in report.render()


# ---- through the engine ------------------------------------------------------------------


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


def headers(room: str, role: str = "host", user: str | None = None) -> dict[str, str]:
    tok = host_token(room) if role == "host" else token(room, role, user)
    return {"authorization": f"Bearer {tok}"}


async def open_auction(http: httpx.AsyncClient, room: str, **terms: Any) -> dict[str, Any]:
    ok(await http.post(f"/api/rooms/{room}/products", json=JACKET, headers=headers(room)), 201)
    body = {"sku": "DJ-M", "start_price": 1_000, "duration_s": 600, **terms}
    auction: dict[str, Any] = ok(
        await http.post(f"/api/rooms/{room}/auctions", json=body, headers=headers(room)), 201
    )
    return auction


async def test_http_wire_and_bad_input(http: httpx.AsyncClient, room: str,
                                       viewer_factory: ViewerFactory) -> None:  # fmt: skip
    watcher = await viewer_factory(room)
    auction = await open_auction(http, room)
    shown = ("id", "state", "price", "min_bid", "leader", "bids", "mode")
    assert {k: auction[k] for k in shown} == {
        "id": "a1", "state": "open", "price": 1_000, "min_bid": 1_000, "leader": None, "bids": 0,
        "mode": "anti_snipe",
    }  # fmt: skip
    assert "leader_max" not in auction  # proxies stay secret
    _, opened = await next_entry(watcher, "auction_opened", "a1")
    assert opened["start_price"] == 1_000
    base = f"/api/rooms/{room}/auctions"
    viewer = headers(room, "viewer")
    failed(await http.post(base, json={"sku": "DJ-M", "start_price": 1}, headers=viewer),
           403, "forbidden")  # fmt: skip
    for body, field in [({"sku": "DJ-M", "start_price": -1}, "start_price"),
                        ({"sku": "DJ-M", "start_price": 1, "mode": "dutch"}, "mode"),
                        ({"sku": "DJ-M", "start_price": 1, "increments": [[5, 1]]}, "increments"),
                        ({"sku": "DJ-M", "start_price": 1, "duration_s": 1},
                         "duration_s")]:  # fmt: skip
        error = failed(
            await http.post(base, json=body, headers=headers(room)), 400, "invalid_field"
        )
        assert error["details"]["field"] == field
    failed(await http.post(base, json={"sku": "NOPE", "start_price": 1}, headers=headers(room)),
           404, "sku_not_found")  # fmt: skip
    bid = f"{base}/a1/bids"
    low = failed(await http.post(bid, json={"amount": 999}, headers=headers(room, "viewer", "ann")),
                 422, "bid_too_low")  # fmt: skip
    assert low["details"]["min_bid"] == 1_000
    failed(await http.post(bid, json={"amount": 1_000, "max": 10}, headers=headers(room, "viewer")),
           400, "invalid_field")  # fmt: skip
    failed(await http.post(bid, json={"amount": 1_000}), 401, "auth_required")
    failed(await http.get(f"{base}/a9"), 404, "auction_not_found")
    failed(await http.get(f"{base}/x!"), 400, "invalid_field")
    placed = ok(
        await http.post(bid, json={"amount": 1_000}, headers=headers(room, "viewer", "ann"))
    )
    assert placed == {"auction": "a1", "status": "leading", "price": 1_000, "leader": True,
                      "min_bid": 1_100, "ends_at": placed["ends_at"]}  # fmt: skip
    _, entry = await next_entry(watcher, "auction_bid", "a1")
    assert (entry["price"], entry["leader"], entry["min_bid"]) == (1_000, "ann", 1_100)
    listed = ok(await http.get(base))["auctions"]
    assert [a["id"] for a in listed] == ["a1"]
    closed = ok(await http.post(f"{base}/a1/close", headers=headers(room)))
    assert (closed["state"], closed["winner"], closed["price"]) == ("closed", "ann", 1_000)
    failed(await http.post(bid, json={"amount": 5_000}, headers=headers(room, "viewer", "bob")),
           409, "auction_closed")  # fmt: skip
    _, entry = await next_entry(watcher, "auction_closed", "a1")
    assert (entry["winner"], entry["price"]) == ("ann", 1_000)


async def test_ws_bids_errors_keep_the_connection(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await open_auction(http, room)
    ann = await viewer_factory(room, user="ann")
    bob = await viewer_factory(room, user="bob")
    for bad, code in [({"type": "bid", "auction": "a1", "amount": "ten"}, "invalid_field"),
                      ({"type": "bid", "auction": "a1", "amount": 2_000, "max": 1_000},
                       "invalid_field"),
                      ({"type": "bid", "amount": 2_000}, "invalid_field"),
                      ({"type": "bid", "auction": "a7", "amount": 2_000}, "auction_not_found"),
                      ({"type": "bid", "auction": "a1", "amount": 10}, "bid_too_low")]:  # fmt: skip
        with pytest.raises(LivecartClientError) as error:
            await ann.request(bad)
        assert error.value.code == code
    lead = await ann.request({"type": "bid", "auction": "a1", "amount": 1_000, "max": 3_000})
    assert lead["result"]["status"] == "leading"
    answer = await bob.request({"type": "bid", "auction": "a1", "amount": 1_500})
    assert answer["result"] == {**answer["result"], "status": "outbid", "price": 1_600,
                                "leader": False, "min_bid": 1_700}  # fmt: skip
    top = await bob.request({"type": "bid", "auction": "a1", "amount": 3_500})
    assert top["result"]["status"] == "leading"
    assert top["result"]["price"] == 3_500
    notice = await ann.wait_for_notice("auction_outbid")
    assert (notice["auction"], notice["price"], notice["min_bid"]) == ("a1", 3_500, 3_600)
    assert (await ann.comment("still here"))["text"] == "still here"


async def test_welcomes_carry_open_auctions_as_bids_move_them(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    """A joining viewer sees the open auction (and giveaway) in its welcome, current to
    the last bid, without asking the HTTP API; a closed one is gone."""
    first = await viewer_factory(room, user="ann")  # the hub is up before the auction opens
    await open_auction(http, room)
    gift = {"title": "Lucky bag", "prize": "a tote", "winners": 1, "duration_s": 60}
    ok(await http.post(f"/api/rooms/{room}/giveaways", json=gift, headers=headers(room)), 201)
    await first.request({"type": "bid", "auction": "a1", "amount": 1_000})
    await next_entry(first, "auction_bid", "a1")
    welcome = (await viewer_factory(room, user="bob")).welcome
    [auction] = welcome["auctions"]
    assert (auction["id"], auction["price"], auction["leader"], auction["min_bid"]) == (
        "a1", 1_000, "ann", 1_100,
    )  # fmt: skip
    assert [g["id"] for g in welcome["giveaways"]] == ["g1"]
    ok(await http.post(f"/api/rooms/{room}/auctions/a1/close", headers=headers(room)))
    await next_entry(first, "auction_closed", "a1")
    assert (await viewer_factory(room, user="cat")).welcome["auctions"] == []


async def test_losing_bid_races_is_not_abuse(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    """In a contested auction most bids arrive too late: refusals for that never count
    towards the connection's error budget (a malformed frame does)."""
    await open_auction(http, room)
    eve = await viewer_factory(room, user="eve")
    await eve.request({"type": "bid", "auction": "a1", "amount": 5_000})
    for _ in range(35):  # above the budget of 30 errors, within the 40-frame burst
        with pytest.raises(LivecartClientError, match="bid at least"):
            await eve.request({"type": "bid", "auction": "a1", "amount": 1_000})
    await ok_after_close(http, room)
    for _ in range(3):
        with pytest.raises(LivecartClientError) as closed:
            await eve.request({"type": "bid", "auction": "a1", "amount": 9_000})
        assert closed.value.code == "auction_closed"
    assert (await eve.comment("still connected"))["text"] == "still connected"


async def ok_after_close(http: httpx.AsyncClient, room: str) -> None:
    ok(await http.post(f"/api/rooms/{room}/auctions/a1/close", headers=headers(room)))


async def bid_prices(viewer: ViewerClient) -> list[int]:
    """The prices of the `auction_bid` entries the viewer's ticks carried, up to the close."""
    prices = []
    async with asyncio.timeout(10):
        while True:
            frame = await viewer.events.get()
            for entry in frame.get("entries", []) if frame["type"] == "tick" else []:
                if entry["kind"] == "auction_bid":
                    prices.append(entry["price"])
                elif entry["kind"] == "auction_closed":
                    return prices


async def test_concurrent_bids_through_two_processes(
    engine: Engine, engine_factory: EngineFactory, http: httpx.AsyncClient, room: str,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    """30 viewers on two engine processes bid against each other for a 5 s sudden-death
    auction (the bench's bidders: raise to the minimum plus a random step whenever outbid,
    never while leading). The sweeper ends it on the server's clock. Every accepted bid is
    ordered, so each took the lead at its own amount: amounts strictly rise in the log, the
    prices viewers see only rise, and the final price and winner are the highest valid
    bid's, which the bid log replays to. The winner gets the lot at that price, pays, and
    the audit passes."""
    second = await engine_factory()
    opened = await open_auction(http, room, duration_s=5, mode="sudden_death")
    viewers = [
        await viewer_factory(room, user=f"b{i}", target=engine if i % 2 else second)
        for i in range(30)
    ]
    rng = random.Random(3)
    bidders = [Bidder(v, random.Random(rng.random()), think_ms=150) for v in viewers]
    await asyncio.gather(*(b.run("a1", opened["ends_at"], 1_000) for b in bidders))
    accepted = sorted((at, amount, b.user) for b in bidders for amount, at in b.accepted)
    _, top_amount, first_top = max(accepted, key=lambda bid: (bid[1], -bid[0]))

    async def settled() -> dict[str, Any]:
        auction: dict[str, Any] = ok(await http.get(f"/api/rooms/{room}/auctions/a1"))
        return auction

    closed = await poll(settled, lambda a: a["state"] == "closed" and bool(a["offers"]))
    assert (closed["price"], closed["winner"], closed["bids"]) == (top_amount, first_top,
                                                                    len(accepted))  # fmt: skip
    log = await engine.node.service("auctions").bid_log(room, "a1")
    amounts = [b.amount for b in log]
    assert amounts == sorted(set(amounts))  # strictly rising: each bid took the lead
    standing = replay(1_000, ((0, 100), (5_000, 250), (10_000, 500), (50_000, 1_000),
                              (100_000, 2_500)), log)  # fmt: skip
    assert (standing.price, standing.leader) == (top_amount, first_top)
    for viewer in viewers[:2]:  # both processes relayed the bids, in order
        prices = await bid_prices(viewer)
        assert prices == sorted(prices)
        assert prices[-1] == top_amount
    winner = next(v for v in viewers if v.welcome["user"] == first_top)
    won = await winner.wait_for_notice("auction_won")
    assert (won["price"], won["auction"]) == (top_amount, "a1")
    async with ShopperClient(engine.base_url, room, token(room, "viewer", first_top)) as me:
        order = await me.checkout([won["reservation"]], address=ADDRESS,
                                  contact={"email": "w@example.com"})  # fmt: skip
        assert order["lines"][0]["unit_price"] == top_amount
        payment = await me.start_payment(order["id"])
        await me.pay(payment["payment"])
        assert (await me.order(order["id"]))["state"] == "paid"
    report = await audit_room(engine.node.redis, room)
    assert report.ok, report.render()
    assert "bids replayed" in report.render()


async def test_second_chance_after_the_winner_lets_the_hold_lapse(
    engine_factory: EngineFactory, viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    engine = await engine_factory(payment_window_s=10)
    room = f"r-{secrets.token_hex(5)}"
    async with HostClient(engine.base_url, room, host_token(room)) as host:
        await host.create_room("Auction night")
        await host.go_live()
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        await open_auction(http, room)
        ann = await viewer_factory(room, user="ann", target=engine)
        bob = await viewer_factory(room, user="bob", target=engine)
        await bob.request({"type": "bid", "auction": "a1", "amount": 1_000, "max": 2_400})
        await ann.request({"type": "bid", "auction": "a1", "amount": 3_000})
        closed = ok(await http.post(f"/api/rooms/{room}/auctions/a1/close", headers=headers(room)))
        assert (closed["winner"], closed["price"]) == ("ann", 3_000)
        offer_url = f"/api/rooms/{room}/auctions/a1/offer"
        failed(await http.post(offer_url, headers=headers(room)), 409, "winner_holds")
        won = await ann.wait_for_notice("auction_won")

        # ann never checks out: after the payment window the sweeper returns the unit.
        async def lapsed() -> bool:
            record = await engine.node.stock.reservation(room, won["reservation"])
            return bool(record["state"] != "held")

        await eventually(lapsed, timeout_s=20)
        second = ok(await http.post(offer_url, headers=headers(room)))
        assert [(o["user"], o["price"]) for o in second["offers"]] == [("ann", 3_000),
                                                                       ("bob", 2_400)]  # fmt: skip
        offer = await bob.wait_for_notice("auction_offer")
        assert (offer["price"], offer["reservation"]) == (2_400, second["offers"][1]["reservation"])
        failed(await http.post(offer_url, headers=headers(room)), 409, "no_runner_up")
        async with ShopperClient(engine.base_url, room, token(room, "viewer", "bob")) as me:
            order = await me.checkout([offer["reservation"]], address=ADDRESS,
                                      contact={"email": "b@example.com"})  # fmt: skip
            assert order["pricing"]["subtotal"] == 2_400
            await me.pay((await me.start_payment(order["id"]))["payment"])
        report = await audit_room(engine.node.redis, room)
        assert report.ok, report.render()
