"""GET /api/rooms/{room}/dashboard: live numbers for hosts and moderators, equal to what
the test did (viewers, comments, grabs, one paid order, one reservation left unpaid).
The counters reach Redis on each process's next metrics flush, so the tests poll."""

from __future__ import annotations

import httpx
import pytest

from clients import HostClient, LivecartClientError, ShopperClient
from engine.server.app import Engine
from tests.conftest import ViewerFactory, poll, token
from tests.test_api_orders import ana, client_as, hold, paid_order, seller  # noqa: F401


async def test_dashboard_counts_what_happened(
    seller: HostClient,  # noqa: F811
    ana: ShopperClient,  # noqa: F811
    viewer_factory: ViewerFactory,
    room: str,
) -> None:
    empty = await seller.call("GET", f"/api/rooms/{room}/dashboard")
    assert (empty["online"], empty["orders"], empty["gmv"], empty["conversion"]) == (0, 0, {}, 0)
    assert empty["coupon_drops"] == {}
    assert (empty["coupon_claims"], empty["coupon_redemption_rate"]) == (0, 0)  # console: "—"
    sale = await seller.launch_sale("DJ-M", 2, price=5000)
    paid = await hold(viewer_factory, room, sale["id"], "ana")
    await hold(viewer_factory, room, sale["id"], "bob")  # reserved, never checked out
    chatty = await viewer_factory(room, user="carl")
    await chatty.comment("how long is the jacket?")
    order = await paid_order(ana, paid)
    total = order["pricing"]["total"]
    board = await poll(
        lambda: seller.call("GET", f"/api/rooms/{room}/dashboard"),
        lambda b: b["online"] == 3 and b["paid_orders"] == 1 and b["comments_last_minute"] == 1,
    )
    assert (board["online"], board["unique"]) == (3, 3)
    assert board["peak"] >= 3
    assert board["comments_last_minute"] == 1
    assert (board["grab_attempts"], board["reservations"]) == (2, 2)
    assert (board["orders"], board["paid_orders"], board["paid_buyers"]) == (1, 1, 1)
    assert board["gmv"] == {"USD": total}
    assert board["average_order_value"] == {"USD": total}
    assert board["conversion"] == round(1 / 3, 4)
    assert isinstance(board["server_time"], int)
    [product] = board["products"]
    assert product["id"] == "p1"
    assert (product["reservations"], product["sold"], product["grab_attempts"]) == (2, 1, 2)
    # Both units are taken (one sold, one held): sold out, as fast as the last grab.
    assert product["sell_through_ms"] is not None
    assert 0 <= product["sell_through_ms"] < 60_000


async def test_refunds_come_off_gmv(
    seller: HostClient,  # noqa: F811
    ana: ShopperClient,  # noqa: F811
    viewer_factory: ViewerFactory,
    room: str,
) -> None:
    sale = await seller.launch_sale("DJ-M", 5, price=5000)
    order = await paid_order(ana, await hold(viewer_factory, room, sale["id"], "ana"))
    await seller.refund(order["id"], "r1", 1000)
    net = order["pricing"]["total"] - 1000
    board = await poll(
        lambda: seller.call("GET", f"/api/rooms/{room}/dashboard"),
        lambda b: b["gmv"] == {"USD": net},
    )
    assert (board["paid_orders"], board["gmv"], board["average_order_value"]) == (
        1,
        {"USD": net},
        {"USD": net},
    )
    assert board["products"][0]["sell_through_ms"] is None  # four units still available


async def test_moderators_read_it_viewers_cannot(seller: HostClient, room: str) -> None:  # noqa: F811
    async with client_as(seller, "moderator", "mo") as moderator:
        board = await moderator.call("GET", f"/api/rooms/{room}/dashboard")
    assert board["products"][0]["views"] == 0
    async with client_as(seller, "viewer", "vi") as viewer:
        with pytest.raises(LivecartClientError) as refused:
            await viewer.call("GET", f"/api/rooms/{room}/dashboard")
    assert refused.value.code == "forbidden"


async def test_anonymous_is_401(engine: Engine, room: str) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url) as anonymous:
        response = await anonymous.get(f"/api/rooms/{room}/dashboard")
    assert response.status_code == 401
    async with HostClient(engine.base_url, room, token(room, "host")) as host:
        assert (await host.call("GET", f"/api/rooms/{room}/dashboard"))["products"] == []
