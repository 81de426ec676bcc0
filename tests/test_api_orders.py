"""Buying end to end over real HTTP and WebSockets: grab, claim a coupon, check out, pay
through the simulated provider (which calls the engine back over HTTP), refund."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from clients import HostClient, ShopperClient
from clients.api import ApiClient
from clients.errors import LivecartClientError
from engine.server.app import Engine
from tests.conftest import ADDRESS, EngineFactory, ViewerFactory, token
from tests.test_api_catalog import JACKET

CONTACT = {"email": "ana@example.com"}


@pytest.fixture
async def seller(host: HostClient) -> HostClient:
    """The `room`'s host with product p1 (SKUs DJ-S at 4900, DJ-M at 5200)."""
    await host.create_product(**JACKET)
    return host


@pytest.fixture
async def ana(engine: Engine, room: str) -> AsyncIterator[ShopperClient]:
    client = ShopperClient(engine.base_url, room, token(room, "viewer", "ana"))
    async with client:
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


# ---- helpers ------------------------------------------------------------------------------------


@pytest.fixture
async def bob(engine: Engine, room: str) -> AsyncIterator[ShopperClient]:
    client = ShopperClient(engine.base_url, room, token(room, "viewer", "bob"))
    async with client:
        yield client


@asynccontextmanager
async def client_as(peer: ApiClient, role: str, user: str) -> AsyncIterator[HostClient]:
    """A host's API client for `peer`'s engine and room, with a `role` token for `user`
    (to try the host's routes as someone else)."""
    client = HostClient(peer.base_url, peer.room, token(peer.room, role, user))
    async with client:
        yield client


async def hold(viewer_factory: ViewerFactory, room: str, sale: str, user: str = "ana", *,
               quantity: int = 1) -> str:  # fmt: skip
    """A reservation of `quantity` units of `sale` for `user`, grabbed over the WebSocket."""
    viewer = await viewer_factory(room, user=user)
    grabbed = await viewer.grab(sale, quantity)
    assert grabbed["status"] == "reserved", grabbed
    reservation: str = grabbed["reservation"]
    return reservation


async def buy(shopper: ShopperClient, reservation: str, **kw: Any) -> dict[str, Any]:
    return await shopper.checkout([reservation], address=ADDRESS, contact=CONTACT, **kw)


async def paid_order(shopper: ShopperClient, reservation: str) -> dict[str, Any]:
    order = await buy(shopper, reservation)
    payment = await shopper.start_payment(order["id"])
    assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    return await shopper.order(order["id"])


async def at_provider(peer: ApiClient, payment: str) -> dict[str, Any]:
    """The simulated provider's record of `payment` (on `peer`'s engine)."""
    async with httpx.AsyncClient(base_url=peer.base_url) as http:
        record: dict[str, Any] = (await http.get(f"/psp/payments/{payment}")).json()
    return record


async def refused(call: Awaitable[Any], status: int, code: str) -> LivecartClientError:
    with pytest.raises(LivecartClientError) as caught:
        await call
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    return caught.value


# ---- who may do what ----------------------------------------------------------------------------


async def test_another_viewer_cannot_see_cancel_or_pay_an_order(
    seller: HostClient, ana: ShopperClient, bob: ShopperClient, viewer_factory: ViewerFactory,
    room: str,
) -> None:  # fmt: skip
    sale = await seller.launch_sale("DJ-M", 5)
    order = await buy(ana, await hold(viewer_factory, room, sale["id"]))
    await refused(bob.order(order["id"]), 403, "forbidden")
    await refused(bob.cancel(order["id"]), 403, "forbidden")
    await refused(bob.start_payment(order["id"]), 403, "forbidden")
    assert await bob.orders() == []
    async with client_as(ana, "moderator", "mod-1") as moderator:
        seen = await moderator.call("GET", f"/api/rooms/{room}/orders/{order['id']}")
    assert seen["user"] == "ana"
    assert (await ana.order(order["id"]))["state"] == "pending_payment"
    assert [o["id"] for o in await ana.orders()] == [order["id"]]


async def test_viewers_cannot_run_the_rooms_orders(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5)
    order = await paid_order(ana, await hold(viewer_factory, room, sale["id"]))
    async with client_as(ana, "viewer", "ana") as buyer:
        await refused(buyer.orders(), 403, "forbidden")
        await refused(buyer.refund(order["id"], "r1"), 403, "forbidden")
        await refused(buyer.fulfill(order["id"]), 403, "forbidden")
        await refused(buyer.block("user", "bob"), 403, "forbidden")
    async with client_as(ana, "moderator", "mod-1") as moderator:
        assert [o["id"] for o in await moderator.orders()] == [order["id"]]
        error = await refused(moderator.refund(order["id"], "r1"), 403, "forbidden")
        assert error.details == {"needs": ["host"]}
        await refused(moderator.fulfill(order["id"]), 403, "forbidden")
    assert await ana.order(order["id"]) == order


async def test_the_host_lists_orders_by_state(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5, per_user_limit=2)
    viewer = await viewer_factory(room, user="ana")
    first = (await viewer.grab(sale["id"]))["reservation"]
    second = (await viewer.grab(sale["id"]))["reservation"]
    paid = await paid_order(ana, first)
    pending = await buy(ana, second)
    assert [o["id"] for o in await seller.orders()] == [paid["id"], pending["id"]]
    assert [o["id"] for o in await seller.orders(state="paid")] == [paid["id"]]
    assert [o["id"] for o in await seller.orders(state="pending_payment")] == [pending["id"]]
    assert await seller.orders(state="refunded") == []
    error = await refused(seller.orders(state="shipped"), 400, "invalid_field")
    assert error.details == {"field": "state"}


# ---- checkout -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"shipping_address": {k: v for k, v in ADDRESS.items() if k != "city"}},
         "shipping_address.city"),
        ({"shipping_address": {**ADDRESS, "country": "PRT"}}, "shipping_address.country"),
        ({"shipping_address": {**ADDRESS, "planet": "Mars"}}, "shipping_address"),
        ({"shipping_address": {**ADDRESS, "city": "x" * 201}}, "shipping_address.city"),
        ({"shipping_address": "1 Main St"}, "shipping_address"),
        ({"contact": {}}, "contact"),
        ({"contact": {"email": "  "}}, "contact.email"),
        ({"contact": "ana@example.com"}, "contact"),
        ({"idempotency_key": "short"}, "idempotency_key"),
        ({"idempotency_key": "has spaces in it"}, "idempotency_key"),
        ({"idempotency_key": 123456789}, "idempotency_key"),
        ({"device": "x"}, "device"),
        ({"device": 123456789}, "device"),
        ({"duplicate": True}, "reservations"),
        ({"reservations": []}, "reservations"),
        ({"reservations": "s1.1"}, "reservations"),
        ({"reservations": ["s1"]}, "reservation"),
        ({"coupons": "d2.1"}, "coupons"),
        ({"coupons": ["d2.1", "d2.2", "d2.3", "d2.4"]}, "coupons"),
        ({"coupons": ["d2"]}, "coupon"),
        ({"coupon": "d2"}, "coupon"),
    ],
)  # fmt: skip
async def test_checkout_validates_its_body(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory,
    change: dict[str, Any], field: str,
) -> None:  # fmt: skip
    sale = await seller.launch_sale("DJ-M", 5)
    rid = await hold(viewer_factory, seller.room, sale["id"])
    body: dict[str, Any] = {"reservations": [rid], "shipping_address": ADDRESS,
                            "contact": CONTACT, "idempotency_key": "key-0000001"}  # fmt: skip
    bad = {**body, **change}
    if bad.pop("duplicate", False):
        bad["reservations"] = [rid, rid]
    path = f"/api/rooms/{seller.room}/orders"
    error = await refused(ana.call("POST", path, bad), 400, "invalid_field")
    assert error.details == {"field": field}
    assert await ana.orders() == []
    # The same body without the fault is accepted.
    assert (await ana.call("POST", path, body))["state"] == "pending_payment"


async def test_a_checkout_body_that_is_not_an_object_is_a_bad_request(
    seller: HostClient, ana: ShopperClient
) -> None:
    path = f"/api/rooms/{seller.room}/orders"
    for body in (["s1.1"], "s1.1", 7):
        await refused(ana.call("POST", path, body), 400, "bad_request")
    assert await ana.orders() == []


async def test_the_same_idempotency_key_returns_the_same_order(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5)
    rid = await hold(viewer_factory, room, sale["id"])
    first = await buy(ana, rid, key="checkout-key-1")
    again = await buy(ana, rid, key="checkout-key-1")
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    assert [o["id"] for o in await ana.orders()] == [first["id"]]
    await refused(buy(ana, rid, key="checkout-key-2"), 409, "reservation_in_order")


async def test_the_buyer_cancels_and_gets_units_and_coupon_back(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5, price=5000, per_user_limit=2)
    template = await seller.create_coupon("amount_off", "10 off", 100, "USD", amount=1000)
    drop = await seller.drop_coupons(template["id"], 10)
    viewer = await viewer_factory(room, user="ana")
    rid = (await viewer.grab(sale["id"], 2))["reservation"]
    coupon = (await viewer.claim(drop["id"]))["coupon"]
    order = await buy(ana, rid, coupons=[coupon])
    assert (await seller.sale(sale["id"]))["available"] == 3
    [locked] = await ana.coupons()
    assert (locked["id"], locked["state"], locked["order"]) == (coupon, "locked", order["id"])
    cancelled = await ana.cancel(order["id"])
    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "cancelled_by_buyer")
    assert (await seller.sale(sale["id"]))["available"] == 5
    [back] = await ana.coupons()
    assert (back["id"], back["state"]) == (coupon, "claimed")
    await refused(ana.cancel(order["id"]), 409, "illegal_transition")


# ---- after payment ------------------------------------------------------------------------------


async def test_fulfilment_waits_for_payment(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5)
    order = await buy(ana, await hold(viewer_factory, room, sale["id"]))
    await refused(seller.fulfill(order["id"]), 409, "illegal_transition")
    assert (await ana.order(order["id"]))["state"] == "pending_payment"
    payment = await ana.start_payment(order["id"])
    await ana.pay(payment["payment"])
    fulfilled = await seller.fulfill(order["id"])
    assert fulfilled["state"] == "fulfilled"
    assert fulfilled["fulfilled_at"] is not None
    await refused(seller.fulfill(order["id"]), 409, "illegal_transition")
    await refused(ana.start_payment(order["id"]), 409, "illegal_transition")


async def test_a_high_value_order_waits_for_review(
    engine_factory: EngineFactory, seller: HostClient, viewer_factory: ViewerFactory, room: str
) -> None:
    strict = await engine_factory(review_threshold=10_000)
    sale = await seller.launch_sale("DJ-M", 5, price=5000, per_user_limit=3)
    viewer = await viewer_factory(room, user="ana", target=strict)
    small = (await viewer.grab(sale["id"]))["reservation"]
    big = (await viewer.grab(sale["id"], 2))["reservation"]
    ana = ShopperClient(strict.base_url, room, token(room, "viewer", "ana"))
    host = HostClient(strict.base_url, room, token(room, "host", "host-1"))
    async with ana, host:
        below = await paid_order(ana, small)  # 5000 + 600 shipping
        assert below["review"] is None
        above = await paid_order(ana, big)  # 10000 + 600 shipping
        assert above["review"] == "flagged"
        assert [o["id"] for o in await host.orders(review="flagged")] == [above["id"]]
        await refused(host.fulfill(above["id"]), 409, "review_pending")
        assert (await ana.order(above["id"]))["state"] == "paid"
        approved = await host.approve(above["id"])
        assert (approved["review"], approved["state"]) == ("approved", "paid")
        assert (await host.fulfill(above["id"]))["state"] == "fulfilled"
        await refused(host.approve(below["id"]), 409, "not_flagged")


async def test_blocked_users_and_devices_cannot_check_out(
    seller: HostClient, ana: ShopperClient, bob: ShopperClient, viewer_factory: ViewerFactory,
    room: str,
) -> None:  # fmt: skip
    sale = await seller.launch_sale("DJ-M", 5)
    ana_rid = await hold(viewer_factory, room, sale["id"], "ana")
    bob_rid = await hold(viewer_factory, room, sale["id"], "bob")
    assert await seller.block("user", "ana") == {"users": ["ana"], "devices": []}
    await seller.block("device", "device-0001")
    error = await refused(buy(ana, ana_rid), 403, "blocked")
    assert error.details == {"detail": "user"}
    error = await refused(buy(bob, bob_rid, device="device-0001"), 403, "blocked")
    assert error.details == {"detail": "device"}
    assert await ana.orders() == await bob.orders() == []
    await seller.unblock("user", "ana")
    assert (await buy(ana, ana_rid))["state"] == "pending_payment"
    assert (await buy(bob, bob_rid, device="device-0002"))["state"] == "pending_payment"


async def test_the_per_user_order_limit(
    engine_factory: EngineFactory, seller: HostClient, viewer_factory: ViewerFactory, room: str
) -> None:
    strict = await engine_factory(max_orders_per_user=1)
    sale = await seller.launch_sale("DJ-M", 5, per_user_limit=2)
    viewer = await viewer_factory(room, user="ana", target=strict)
    first = (await viewer.grab(sale["id"]))["reservation"]
    second = (await viewer.grab(sale["id"]))["reservation"]
    ana = ShopperClient(strict.base_url, room, token(room, "viewer", "ana"))
    async with ana:
        await buy(ana, first)
        error = await refused(buy(ana, second), 422, "order_limit")
        assert error.details == {"detail": "user"}
        assert len(await ana.orders()) == 1


async def test_a_full_refund_with_restock(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5, per_user_limit=2)
    rid = await hold(viewer_factory, room, sale["id"], quantity=2)
    order = await paid_order(ana, rid)
    assert (await seller.sale(sale["id"]))["available"] == 3
    refunded = await seller.refund(order["id"], "r-all", restock=[rid], reason="returned")
    assert (refunded["state"], refunded["refunded"]) == ("refunded", order["pricing"]["total"])
    assert refunded["replayed"] is False
    [record] = refunded["refunds"]
    assert (record["id"], record["amount"], record["restocked"]) == (
        "r-all", order["pricing"]["total"], 1,
    )  # fmt: skip
    assert (await seller.sale(sale["id"]))["available"] == 5
    assert (await at_provider(seller, order["payment"]))["refunded"] == order["pricing"]["total"]
    await refused(seller.refund(order["id"], "r-more", 1), 409, "illegal_transition")


async def test_refunds_never_exceed_the_payment_and_replay_by_id(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5, price=5000)
    order = await paid_order(ana, await hold(viewer_factory, room, sale["id"]))
    total = order["pricing"]["total"]
    part = await seller.refund(order["id"], "r1", 1000)
    assert (part["state"], part["refunded"], part["replayed"]) == (
        "partially_refunded", 1000, False,
    )  # fmt: skip
    again = await seller.refund(order["id"], "r1", 1000)
    assert (again["state"], again["refunded"], again["replayed"]) == (
        "partially_refunded", 1000, True,
    )  # fmt: skip
    assert (await at_provider(seller, order["payment"]))["refunded"] == 1000
    error = await refused(seller.refund(order["id"], "r2", total), 422, "refund_too_large")
    assert error.details == {"refundable": total - 1000}
    rest = await seller.refund(order["id"], "r3")  # the default: all that is left
    assert (rest["state"], rest["refunded"]) == ("refunded", total)
    assert [r["id"] for r in rest["refunds"]] == ["r1", "r3"]
    assert (await at_provider(seller, order["payment"]))["refunded"] == total
    assert (await seller.sale(sale["id"]))["available"] == 4  # nothing restocked


async def test_a_full_refund_retried_without_an_amount_is_a_replay(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    """The host's client omits `amount` for "refund everything"; retrying that exact
    request (say after a timeout) must be answered as a replay, not refused."""
    sale = await seller.launch_sale("DJ-M", 5)
    order = await paid_order(ana, await hold(viewer_factory, room, sale["id"]))
    first = await seller.refund(order["id"], "r-all")
    assert (first["state"], first["replayed"]) == ("refunded", False)
    again = await seller.refund(order["id"], "r-all")
    assert (again["state"], again["refunded"], again["replayed"]) == (
        "refunded", order["pricing"]["total"], True,
    )  # fmt: skip
    # A new refund of a fully refunded order is an illegal transition, amount or not.
    for amount in (None, 1):
        error = await refused(seller.refund(order["id"], "r-new", amount), 409,
                              "illegal_transition")  # fmt: skip
        assert error.details == {"state": "refunded"}
    # An explicit amount must still be positive.
    error = await refused(seller.refund(order["id"], "r-all", 0), 400, "invalid_field")
    assert error.details == {"field": "amount"}


async def test_a_refund_body_is_checked_before_anything_is_refunded(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5)
    order = await paid_order(ana, await hold(viewer_factory, room, sale["id"]))
    path = f"/api/rooms/{room}/orders/{order['id']}/refund"
    for body, field in [
        ({}, "id"),
        ({"id": "has spaces"}, "id"),
        ({"id": 7}, "id"),
        ({"id": "r1", "amount": "100"}, "amount"),
        ({"id": "r1", "amount": True}, "amount"),
        ({"id": "r1", "amount": None}, "amount"),
        ({"id": "r1", "amount": 1.5}, "amount"),
        ({"id": "r1", "restock": "s1.1"}, "restock"),
        ({"id": "r1", "reason": ""}, "reason"),
        ({"id": "r1", "reason": "x" * 201}, "reason"),
    ]:
        error = await refused(seller.call("POST", path, body), 400, "invalid_field")
        assert error.details == {"field": field}, body
    await refused(seller.call("POST", path, ["r1"]), 400, "bad_request")
    assert await ana.order(order["id"]) == order


async def test_blocklist_bodies_are_checked(seller: HostClient) -> None:
    path = f"/api/rooms/{seller.room}/blocklist"
    for body, field in [
        ({"id": "ana"}, "kind"),
        ({"kind": "ip", "id": "10.0.0.1"}, "kind"),
        ({"kind": "user"}, "id"),
        ({"kind": "user", "id": 7}, "id"),
        ({"kind": "user", "id": "not a user id"}, "id"),
        ({"kind": "device", "id": "short"}, "id"),
    ]:
        for method in ("POST", "DELETE"):
            error = await refused(seller.call(method, path, body), 400, "invalid_field")
            assert error.details == {"field": field}, (method, body)
    await refused(seller.call("POST", path, ["user", "ana"]), 400, "bad_request")
    assert await seller.call("GET", path) == {"users": [], "devices": []}


async def test_an_unpaid_order_cannot_be_refunded(
    seller: HostClient, ana: ShopperClient, viewer_factory: ViewerFactory, room: str
) -> None:
    sale = await seller.launch_sale("DJ-M", 5)
    order = await buy(ana, await hold(viewer_factory, room, sale["id"]))
    for amount in (100, None):
        error = await refused(seller.refund(order["id"], "r1", amount), 409, "illegal_transition")
        assert error.details == {"state": "pending_payment"}
    assert (await ana.order(order["id"]))["state"] == "pending_payment"
