"""Buying end to end over real HTTP and WebSockets: grab, claim a coupon, check out, pay
through the simulated provider (which calls the engine back over HTTP), refund."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clients import HostClient, ShopperClient
from engine.app import Engine
from tests.conftest import ADDRESS, ViewerFactory, token
from tests.test_api_catalog import JACKET

CONTACT = {"email": "ana@example.com"}


@pytest.fixture
async def seller(host: HostClient) -> HostClient:
    """The `room`'s host with product p1 (SKUs DJ-S at 4900, DJ-M at 5200)."""
    await host.create_product(**JACKET)
    return host


@pytest.fixture
async def ana(engine: Engine, room: str) -> AsyncIterator[ShopperClient]:
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as client:
        yield client


async def test_grab_claim_checkout_pay(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5, price=5000)
    template = await seller.create_coupon("amount_off", "10 off 50", 100, "USD", amount=1000,
                                          min_spend=5000)  # fmt: skip
    drop = await seller.drop_coupons(template["id"], 10)
    viewer = await viewer_factory(room, user="ana")
    grabbed = await viewer.grab(sale["id"])
    claimed = await viewer.claim(drop["id"])
    assert claimed["status"] == "claimed"
    order = await ana.checkout([grabbed["reservation"]], address=ADDRESS, contact=CONTACT,
                               coupons=[claimed["coupon"]])  # fmt: skip
    assert order["state"] == "pending_payment"
    assert order["pricing"]["total"] == 5000 - 1000 + 600
    payment = await ana.start_payment(order["id"])
    assert payment["amount"] == order["pricing"]["total"]
    paid = await ana.pay(payment["payment"])
    assert paid["engine"]["outcome"] == "paid", paid
    assert (await ana.order(order["id"]))["state"] == "paid"
    [listed] = await seller.orders(state="paid")
    assert listed["id"] == order["id"]
    refunded = await seller.refund(order["id"], "r1", 1000, restock=[grabbed["reservation"]])
    assert refunded["state"] == "partially_refunded"
    assert (await seller.sale(sale["id"]))["available"] == 5
