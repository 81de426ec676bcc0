"""The SDK's ShopperClient social calls against a real engine: group-buy teams (start, join,
check out and pay at the group price), share links and the invite leaderboard, reminders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from clients import HostClient, LivecartClientError, ShopperClient
from engine.server.app import Engine
from tests.conftest import ADDRESS, RoomFactory, ViewerFactory, eventually, token
from tests.test_console import BOOTS

Shoppers = Callable[[str, str], Awaitable[ShopperClient]]


@pytest.fixture
async def shoppers(engine: Engine) -> AsyncIterator[Shoppers]:
    opened: list[ShopperClient] = []

    async def make(room: str, user: str) -> ShopperClient:
        client = ShopperClient(
            engine.base_url, room, token(room, "viewer", user, name=user.title())
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


async def buy(me: ShopperClient, reservation: str) -> dict[str, object]:
    order = await me.checkout([reservation], address=ADDRESS, contact={"email": "a@example.com"})
    payment = await me.start_payment(order["id"])
    await me.pay(payment["payment"])
    return await me.order(order["id"])


async def test_team_started_joined_paid_and_completed(
    host: HostClient, shoppers: Shoppers, viewer_factory: ViewerFactory
) -> None:
    """Needs the group-buy API, the team notices and the paid hook."""
    await host.create_product(**BOOTS)
    deal = await host.open_group_buy("LB-42", 7900, team_size=2, window_s=600, units=4)
    ana, bo = await shoppers(host.room, "ana"), await shoppers(host.room, "bo")
    ana_seat = await viewer_factory(host.room, user="ana")
    team = await ana.start_team(deal["id"])
    assert (team["state"], team["needed"], team["members"]) == ("forming", 1, 1)
    assert [m["name"] for m in team["roster"]] == ["Ana"]
    assert team["share_path"] == f"/live/{host.room}?team={deal['id']}.{team['id']}"
    joined = await bo.join_team(deal["id"], team["id"])
    assert (joined["id"], joined["state"], joined["needed"]) == (team["id"], "full", 0)
    with pytest.raises(LivecartClientError) as full:
        await (await shoppers(host.room, "cleo")).join_team(deal["id"], team["id"])
    assert full.value.code == "team_full"

    paid = [await buy(me, answer["reservation"]) for me, answer in ((ana, team), (bo, joined))]
    assert [o["state"] for o in paid] == ["paid", "paid"]
    assert [o["lines"][0]["unit_price"] for o in paid] == [7900, 7900]  # the group price
    done = await ana_seat.wait_for_notice("team_completed")
    assert (done["groupbuy"], done["team"], done["price"]) == (deal["id"], team["id"], 7900)
    [settled] = (await host.group_buy(deal["id"]))["teams"]
    assert settled["state"] == "completed"


async def test_share_link_attributes_a_join(
    host: HostClient, shoppers: Shoppers, viewer_factory: ViewerFactory
) -> None:
    """Needs POST .../share, hello's `ref` and the referral reports."""
    ana = await shoppers(host.room, "ana")
    link = await ana.share_link()
    assert link["url"] == f"/live/{host.room}?ref={link['ref']}"
    await viewer_factory(host.room, user="bo", ref=link["ref"])

    async def attributed() -> bool:
        board = await ana.leaderboard()
        return [(s["rank"], s["name"], s["invites"]) for s in board] == [(1, "Ana", 1)]

    await eventually(attributed)
    report = await host.referrals()
    [sharer] = report["sharers"]
    assert (sharer["user"], sharer["invites"], sharer["orders"]) == ("ana", 1, 0)
    assert report["referred_viewers"] == 1


async def test_reminders_subscribe_and_unsubscribe(
    engine: Engine, room_factory: RoomFactory, shoppers: Shoppers
) -> None:
    """Needs the reminders API."""
    room = await room_factory(live=False)
    ana = await shoppers(room, "ana")
    assert (await ana.reminders())["subscribed"] is False
    await ana.subscribe_reminders()
    await ana.subscribe_reminders()  # idempotent
    assert (await ana.reminders())["subscribed"] is True
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        assert await host.reminder_count() == 1
        await ana.unsubscribe_reminders()
        assert await host.reminder_count() == 0
    assert (await ana.reminders())["subscribed"] is False
