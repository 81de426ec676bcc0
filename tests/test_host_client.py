"""The SDK's interactive and social selling calls against a real engine: HostClient's
giveaways, auctions, comment-to-buy settings, group buys, referral and reminder reports,
ViewerClient's enter_giveaway, bid and notices."""

from __future__ import annotations

import hashlib

import pytest

from clients import HostClient, LivecartClientError
from tests.conftest import ViewerFactory
from tests.test_console import BOOTS, JACKET


async def test_giveaway_open_enter_close(host: HostClient, viewer_factory: ViewerFactory) -> None:
    opened = await host.open_giveaway("Lucky bag", "1 mystery bag", 2, duration_s=60)
    assert (opened["id"], opened["state"], opened["winners_count"]) == ("g1", "open", 2)
    assert (opened["seed"], opened["winners"]) == (None, None)  # secret until drawn
    fans = [await viewer_factory(host.room, user=f"fan-{i}") for i in range(3)]
    answers = [await fan.enter_giveaway("g1") for fan in fans]
    assert [a["new"] for a in answers] == [True] * 3
    again = await fans[0].enter_giveaway("g1")  # idempotent
    assert (again["new"], again["entrants"]) == (False, 3)
    assert (await host.giveaway("g1"))["entrants_count"] == 3
    assert [g["id"] for g in await host.giveaways()] == ["g1"]

    closed = await host.close_giveaway("g1")
    assert closed["state"] == "closed"
    assert len(closed["winners"]) == 2
    assert set(closed["winners"]) <= {"fan-0", "fan-1", "fan-2"}
    assert hashlib.sha256(bytes.fromhex(closed["seed"])).hexdigest() == closed["commitment"]
    with pytest.raises(LivecartClientError) as late:
        await fans[1].enter_giveaway("g1")
    assert late.value.code == "giveaway_closed"


async def test_keyword_giveaway_and_refusals(
    host: HostClient, viewer_factory: ViewerFactory
) -> None:
    await host.open_giveaway("Say it", "a tote", 1, rule="keyword", keyword="Boots 4 me")
    fan = await viewer_factory(host.room, user="fan")
    with pytest.raises(LivecartClientError) as wrong:
        await fan.enter_giveaway("g1", "boots")
    assert wrong.value.code == "keyword_mismatch"
    assert (await fan.enter_giveaway("g1", "boots 4 ME"))["entered"] is True
    anonymous = await viewer_factory(host.room, None)
    with pytest.raises(LivecartClientError) as refused:
        await anonymous.enter_giveaway("g1")
    assert refused.value.code == "auth_required"
    with pytest.raises(LivecartClientError) as viewer_opens:
        async with HostClient(host.base_url, host.room, fan.token or "") as not_host:
            await not_host.open_giveaway("Mine", "x")
    assert viewer_opens.value.status == 403


async def test_product_prize_is_awarded_with_a_notice(
    host: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs prize_kind "product" and the giveaway_won notice."""
    await host.create_product(**JACKET)
    await host.open_giveaway("Win it", "Denim jacket", 1, prize_kind="product", sku="DJ-M")
    fan = await viewer_factory(host.room, user="fan")
    await fan.enter_giveaway("g1")
    closed = await host.close_giveaway("g1")
    assert closed["winners"] == ["fan"]
    won = await fan.wait_for_notice("giveaway_won")
    assert won["giveaway"] == "g1"
    assert won["reservation"] == closed["awards"]["fan"]["reservation"]


async def test_auction_bids_outbid_close_and_offer(
    host: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs the auctions API, `bid` frames and the auction notices."""
    await host.create_product(**BOOTS)
    auction = await host.open_auction("LB-42", 5000, 60, mode="sudden_death")
    assert (auction["state"], auction["price"], auction["bids"]) == ("open", 5000, 0)
    ana, bo = (await viewer_factory(host.room, user="ana"),
               await viewer_factory(host.room, user="bo"))  # fmt: skip
    with pytest.raises(LivecartClientError) as low:
        await ana.bid(auction["id"], auction["min_bid"] - 1)
    assert low.value.code == "bid_too_low"
    assert low.value.details["min_bid"] == auction["min_bid"]
    first = await ana.bid(auction["id"], auction["min_bid"])
    assert (first["status"], first["leader"]) == ("leading", True)
    second = await bo.bid(auction["id"], first["min_bid"], max=first["min_bid"] + 5000)
    assert second["status"] == "leading"
    outbid = await ana.wait_for_notice("auction_outbid")
    assert outbid["auction"] == auction["id"]
    assert [a["leader"] for a in await host.auctions()] == ["bo"]

    closed = await host.close_auction(auction["id"])
    assert (closed["state"], closed["winner"]) == ("closed", "bo")
    won = await bo.wait_for_notice("auction_won")
    assert (won["auction"], won["price"]) == (auction["id"], closed["price"])
    assert won["reservation"]
    with pytest.raises(LivecartClientError) as holds:
        await host.offer_runner_up(auction["id"])
    assert holds.value.code == "winner_holds"
    with pytest.raises(LivecartClientError) as ended:
        await ana.bid(auction["id"], closed["price"] + 10_000)
    assert ended.value.code == "auction_closed"
    assert (await host.auction(auction["id"]))["winner"] == "bo"


async def test_comment_to_buy_settings_and_reply(
    host: HostClient, viewer_factory: ViewerFactory
) -> None:
    """Needs the comment-to-buy settings API and its notices."""
    boots = await host.create_product(**BOOTS)
    saved = await host.set_comment_to_buy(enabled=True, keyword="SOLD",
                                          keywords={"BOOTS": boots["id"]})  # fmt: skip
    assert saved == {"enabled": True, "keyword": "SOLD", "keywords": {"BOOTS": boots["id"]}}
    assert await host.comment_to_buy() == saved
    await host.launch_sale("LB-42", 1, price=9900)
    fan = await viewer_factory(host.room, user="fan")
    await fan.comment("SOLD BOOTS")
    reply = await fan.wait_for_notice("comment_buy")
    assert reply["status"] == "reserved"
    assert reply["reservation"]


async def test_group_buy_opened_listed_and_refused(host: HostClient) -> None:
    """Needs the group-buy API."""
    await host.create_product(**BOOTS)
    deal = await host.open_group_buy("LB-42", 7900, 3, 600, 9, per_user_limit=1)
    assert (deal["sku"], deal["group_price"], deal["team_size"]) == ("LB-42", 7900, 3)
    assert (deal["window_s"], deal["units"], deal["available"], deal["teams"]) == (600, 9, 9, [])
    assert [d["id"] for d in await host.group_buys()] == [deal["id"]]
    assert (await host.group_buy(deal["id"]))["teams"] == []
    with pytest.raises(LivecartClientError) as unknown:
        await host.open_group_buy("NOPE", 100, 3, 600, 9)
    assert unknown.value.status in (404, 422)
    with pytest.raises(LivecartClientError) as lone:
        await host.open_group_buy("LB-42", 7900, 1, 600, 9)  # a team of one is no team
    assert lone.value.code == "invalid_field"
    assert (await host.referrals())["sharers"] == []
    assert await host.reminder_count() == 0
