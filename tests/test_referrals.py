"""engine.social.referrals: share links are signed and unforgeable, attribution is first touch
within the show (no stealing, no self-referral, signed-in viewers only), joins through real
WebSocket viewers with `hello.ref`, and the GMV a sharer brought follows paid orders and
refunds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from clients import HostClient, ShopperClient
from engine.core.identity import Author, Role
from engine.server.app import Engine
from engine.social.referrals import Referrals
from engine.store.scripts import Scripts
from tests.conftest import ADDRESS, SECRET, ViewerFactory, eventually, token
from tests.test_api_catalog import JACKET, failed, ok

CONTACT = {"email": "ana@example.com"}


@pytest.fixture
async def referrals(redis: aioredis.Redis) -> Referrals:
    scripts = Scripts()
    await scripts.load(redis)
    return Referrals(redis, SECRET, scripts)


def viewer(user: str) -> Author:
    return Author(user, user.title(), Role.VIEWER)


# ---- links -------------------------------------------------------------------------------


def test_a_ref_verifies_only_for_its_room_and_user(referrals: Referrals) -> None:
    ref = referrals.sign("r1", "alice")
    assert ref.startswith("alice.")
    assert referrals.verify("r1", ref) == "alice"
    assert referrals.verify("r2", ref) is None  # another show
    user, _, sig = ref.rpartition(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    assert referrals.verify("r1", f"{user}.{flipped}") is None
    assert referrals.verify("r1", f"mallory.{sig}") is None  # someone else's name
    assert referrals.verify("r1", "alice") is None
    assert referrals.verify("r1", "") is None
    assert referrals.verify("r1", "bad user!." + sig) is None
    forger = Referrals(referrals.redis, "another-secret-" + "y" * 20, referrals.scripts)
    assert referrals.verify("r1", forger.sign("r1", "alice")) is None


def test_refs_are_short_and_keep_dotted_user_ids(referrals: Referrals) -> None:
    dotted = "Alice.B@example.com"
    assert referrals.verify("r1", referrals.sign("r1", dotted)) == dotted
    longest = referrals.sign("r1", "x" * 64)
    assert len(longest) == 64 + 1 + 22  # within hello's 200-character `ref`


# ---- attribution ---------------------------------------------------------------------------


async def test_first_touch_wins_and_counts_one_invite(referrals: Referrals) -> None:
    room = "ref-first"
    await referrals.on_join(room, viewer("bob"), referrals.sign(room, "alice"))
    await referrals.on_join(room, viewer("bob"), referrals.sign(room, "carol"))  # no stealing
    await referrals.on_join(room, viewer("bob"), referrals.sign(room, "alice"))  # no recount
    await referrals.on_join(room, viewer("dave"), referrals.sign(room, "carol"))
    await referrals.on_join(room, viewer("erin"), referrals.sign(room, "alice"))
    await referrals.on_join(room, viewer("fay"), referrals.sign(room, "bea"))
    assert await referrals.referrer_of(room, "bob") == "alice"
    assert await referrals.referrer_of(room, "dave") == "carol"
    leaders = await referrals.leaderboard(room, 10)
    # Ties: lower user id first. No name stored (no link made here): the user id.
    assert [(x["name"], x["invites"]) for x in leaders] == [("alice", 2), ("bea", 1), ("carol", 1)]
    assert [x["rank"] for x in leaders] == [1, 2, 3]
    assert await referrals.leaderboard(room, 1) == [{"rank": 1, "name": "alice", "invites": 2}]


async def test_self_referral_anonymous_staff_and_bad_refs_are_ignored(
    referrals: Referrals,
) -> None:
    room = "ref-ignored"
    ref = referrals.sign(room, "alice")
    await referrals.on_join(room, viewer("alice"), ref)
    await referrals.on_join(room, Author("anon-d1", "guest", Role.ANONYMOUS), ref)
    await referrals.on_join(room, Author("mod-1", "Mo", Role.MODERATOR), ref)
    await referrals.on_join(room, viewer("bob"), ref[:-2] + "xx")
    await referrals.on_join(room, viewer("bob"), "not a ref")
    assert await referrals.leaderboard(room, 10) == []
    # A viewer who first came without a (valid) link is still attributed by their first one.
    await referrals.on_join(room, viewer("bob"), ref)
    assert await referrals.referrer_of(room, "bob") == "alice"


# ---- over the wire -------------------------------------------------------------------------


@pytest.fixture
async def seller(host: HostClient) -> HostClient:
    await host.create_product(**JACKET)
    return host


@pytest.fixture
async def shoppers(engine: Engine, room: str) -> AsyncIterator[dict[str, ShopperClient]]:
    clients = {
        user: ShopperClient(engine.base_url, room, token(room, "viewer", user, name=user.title()))
        for user in ("alice", "bob", "carol", "dave")
    }
    for client in clients.values():
        await client.__aenter__()
    yield clients
    for client in clients.values():
        await client.__aexit__(None, None, None)


async def test_joins_through_share_links_fill_the_leaderboard(
    engine: Engine, room: str, shoppers: dict[str, ShopperClient], viewer_factory: ViewerFactory
) -> None:
    link = await shoppers["alice"].share_link()
    assert link["url"] == f"/live/{room}?ref={link['ref']}"
    assert link["invites"] == 0
    assert (await shoppers["alice"].share_link())["ref"] == link["ref"]  # one link per user
    carol = await shoppers["carol"].share_link()
    await viewer_factory(room, user="bob", ref=link["ref"])
    await viewer_factory(room, user="dave", ref=link["ref"])
    # A second link does not steal bob; a forged one is ignored and the join still works.
    await viewer_factory(room, user="bob", ref=carol["ref"])
    forged = await viewer_factory(room, user="carol", ref=link["ref"][:-3] + "abc")
    assert forged.welcome["type"] == "welcome"
    await viewer_factory(room, role=None, ref=carol["ref"])  # anonymous: not attributed

    async def alice_leads() -> bool:
        return await shoppers["bob"].leaderboard() == [{"rank": 1, "name": "Alice", "invites": 2}]

    await eventually(alice_leads)
    assert (await shoppers["alice"].share_link())["invites"] == 2
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        public = ok(await http.get(f"/api/rooms/{room}/referrals/leaderboard?limit=1"))
        assert public["leaders"] == [{"rank": 1, "name": "Alice", "invites": 2}]
        failed(await http.get(f"/api/rooms/{room}/referrals/leaderboard?limit=0"), 400,
               "invalid_field")  # fmt: skip
        failed(await http.get(f"/api/rooms/{room}/referrals"), 401, "auth_required")
        bob = {"authorization": f"Bearer {token(room, 'viewer', 'bob')}"}
        failed(await http.get(f"/api/rooms/{room}/referrals", headers=bob), 403, "forbidden")
        failed(await http.post(f"/api/rooms/{room}/share"), 401, "auth_required")
        failed(await http.get("/api/rooms/nope/referrals/leaderboard"), 404, "room_not_found")


async def _buy(shopper: ShopperClient, viewer_factory: ViewerFactory, room: str, user: str,
               sale: str) -> dict[str, Any]:  # fmt: skip
    """One unit grabbed over the WebSocket, checked out and paid over HTTP: the paid order."""
    client = await viewer_factory(room, user=user)
    grabbed = await client.grab(sale)
    order = await shopper.checkout([grabbed["reservation"]], address=ADDRESS, contact=CONTACT)
    payment = await shopper.start_payment(order["id"])
    assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    return order


async def test_paid_orders_of_referred_buyers_count_net_of_refunds(
    engine: Engine, room: str, seller: HostClient, shoppers: dict[str, ShopperClient],
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    sale = (await seller.launch_sale("DJ-M", 10, price=5000, per_user_limit=3))["id"]
    # dave buys before arriving through a link: that order is not the link's doing.
    early = await _buy(shoppers["dave"], viewer_factory, room, "dave", sale)
    link = await shoppers["alice"].share_link()
    await viewer_factory(room, user="bob", ref=link["ref"])
    await viewer_factory(room, user="dave", ref=link["ref"])
    await eventually(lambda: _invites(seller, 2))
    first = await _buy(shoppers["bob"], viewer_factory, room, "bob", sale)
    await _buy(shoppers["bob"], viewer_factory, room, "bob", sale)
    await _buy(shoppers["dave"], viewer_factory, room, "dave", sale)
    await _buy(shoppers["carol"], viewer_factory, room, "carol", sale)  # not referred
    # An order that is never paid does not count either.
    unpaid = await viewer_factory(room, user="bob")
    held = await unpaid.grab(sale)
    await shoppers["bob"].checkout([held["reservation"]], address=ADDRESS, contact=CONTACT)
    each = 5000 + 600
    assert early["pricing"] == first["pricing"]
    report = await seller.referrals()
    [alice] = report["sharers"]
    assert alice == {"user": "alice", "name": "Alice", "invites": 2, "buyers": 2, "orders": 3,
                     "gmv": {"USD": 3 * each}}  # fmt: skip
    assert report["referred_viewers"] == 2
    assert report["gmv"] == {"USD": 5 * each}
    assert report["referred_gmv"] == {"USD": 3 * each}
    assert report["referred_share"] == {"USD": 0.6}
    await seller.refund(first["id"], "r1", 1000)
    report = await seller.referrals()
    assert report["sharers"][0]["gmv"] == {"USD": 3 * each - 1000}
    assert report["referred_gmv"] == {"USD": 3 * each - 1000}
    assert report["gmv"] == {"USD": 5 * each - 1000}


async def _invites(seller: HostClient, invites: int) -> bool:
    sharers = (await seller.referrals())["sharers"]
    return bool(sharers) and sharers[0]["invites"] == invites
