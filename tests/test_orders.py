"""Orders against a real Redis: checkout, payment, cancel, expiry, refunds and their races."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from engine.commerce.orders import Order, OrderState
from engine.commerce.risk import BlockEntry, Blocklist, RiskRules
from engine.core.errors import ConflictError, ForbiddenError, RejectedError
from engine.insights.audit import audit_room
from engine.server.sweeper import Sweeper
from engine.store import keys
from engine.store.redis_client import stream_rows, text
from tests.conftest import Store, now_ms


async def test_checkout_pays_and_sells(store: Store) -> None:
    sale = await store.sale(allotment=5)
    rid = await store.reserve(sale, "ana", 2)
    coupon = await store.coupon("ana", amount=500, min_spend=1000)
    order = await store.checkout("ana", [rid], [coupon])
    assert order.state is OrderState.PENDING_PAYMENT
    pricing = order.detail["pricing"]
    assert pricing == {"subtotal": 5000, "discount": 500, "shipping": 600, "total": 5100,
                       "coupons": [{"coupon": coupon, "discount": 500}]}  # fmt: skip
    assert (await store.coupons.record(store.room, coupon))["s"] == "locked"
    result = await store.pay(order)
    assert result["outcome"] == "paid"
    paid = await store.orders.get(store.room, order.id)
    assert paid.state is OrderState.PAID
    assert (await store.coupons.record(store.room, coupon))["s"] == "used"
    sold = await store.shop.sales.get(store.room, sale)
    assert (sold.available, sold.reserved, sold.sold) == (3, 0, 2)
    await store.audit_ok()


async def pending(store: Store, user: str = "ana", quantity: int = 1,
                  coupon: bool = False) -> tuple[str, Order]:  # fmt: skip
    """A live sale of 5 and `user`'s order for `quantity` of it (with a coupon if asked)."""
    sale = await store.sale(allotment=5)
    rid = await store.reserve(sale, user, quantity)
    coupons = [await store.coupon(user, amount=300)] if coupon else []
    return sale, await store.checkout(user, [rid], coupons)


async def counters(store: Store, sale: str) -> tuple[int, int, int]:
    s = await store.shop.sales.get(store.room, sale)
    return s.available, s.reserved, s.sold


# ---- checkout ----------------------------------------------------------------------------


async def test_two_checkouts_of_one_reservation_make_one_order(store: Store) -> None:
    sale = await store.sale()
    rid = await store.reserve(sale, "ana")
    results = await asyncio.gather(
        *(store.checkout("ana", [rid]) for _ in range(8)), return_exceptions=True
    )
    orders = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(orders) == 1
    assert {type(e) for e in errors} == {ConflictError}
    assert {e.code for e in errors if isinstance(e, ConflictError)} == {"reservation_in_order"}
    await store.audit_ok()


async def test_one_coupon_in_two_concurrent_checkouts_is_locked_once(store: Store) -> None:
    sale = await store.sale()
    first, second = await store.reserve(sale, "ana"), await store.reserve(sale, "ana")
    coupon = await store.coupon("ana", amount=300)
    results = await asyncio.gather(
        store.checkout("ana", [first], [coupon]), store.checkout("ana", [second], [coupon]),
        return_exceptions=True,
    )  # fmt: skip
    codes = sorted(r.code if isinstance(r, ConflictError) else "ok" for r in results)
    assert codes == ["coupon_not_available", "ok"]
    record = await store.coupons.record(store.room, coupon)
    assert record["s"] == "locked"
    await store.audit_ok()


async def test_checkout_is_idempotent_by_key(store: Store) -> None:
    sale = await store.sale()
    rid = await store.reserve(sale, "ana")
    first = await store.checkout("ana", [rid], key="same-key-123")
    again = await store.checkout("ana", [rid], key="same-key-123")
    assert again.id == first.id
    assert len(await store.orders.list_user(store.room, "ana")) == 1


@pytest.mark.parametrize(
    ("owner", "code"), [("bob", "reservation_not_yours"), ("ana", "reservation_expired")]
)
async def test_checkout_refuses_what_the_buyer_does_not_hold(
    store: Store, owner: str, code: str
) -> None:
    sale = await store.sale(hold_s=10)
    rid = await store.reserve(sale, owner)
    with pytest.raises((ForbiddenError, ConflictError)) as caught:
        await store.checkout("ana", [rid], at_ms=now_ms() + 60_000)
    assert caught.value.code == code


async def test_a_reservation_in_an_order_cannot_be_released(store: Store) -> None:
    _, order = await pending(store)
    with pytest.raises(ConflictError) as caught:
        await store.shop.stock.release(store.room, order.lines[0]["reservation"], "ana")
    assert caught.value.code == "reservation_in_order"


async def test_checkout_never_takes_stock(store: Store) -> None:
    sale = await store.sale()
    rid = await store.reserve(sale, "ana", 2)
    before = await counters(store, sale)
    await store.checkout("ana", [rid])
    assert await counters(store, sale) == before == (3, 2, 0)


# ---- cancel and expiry -------------------------------------------------------------------


async def test_cancel_returns_units_and_coupon(store: Store) -> None:
    sale, order = await pending(store, quantity=2, coupon=True)
    cancelled = await store.orders.cancel(store.room, order.id, "ana", owner="ana")
    assert cancelled.state is OrderState.CANCELLED
    assert await counters(store, sale) == (5, 0, 0)
    assert (await store.coupons.record(store.room, order.coupons[0]))["s"] == "claimed"
    with pytest.raises(ConflictError):
        await store.orders.cancel(store.room, order.id, "ana")
    await store.audit_ok()


async def test_only_the_buyer_cancels_their_order(store: Store) -> None:
    _, order = await pending(store)
    with pytest.raises(ForbiddenError):
        await store.orders.cancel(store.room, order.id, "bob", owner="bob")


async def test_an_unpaid_order_expires_with_its_units_and_coupon(store: Store) -> None:
    sale, order = await pending(store, coupon=True)
    with pytest.raises(ConflictError) as early:
        await store.orders.expire(store.room, order.id)
    assert early.value.code == "not_due"
    expired = await store.orders.expire(store.room, order.id, at_ms=order.expires_at)
    assert expired.state is OrderState.EXPIRED
    assert await counters(store, sale) == (5, 0, 0)
    assert (await store.coupons.record(store.room, order.coupons[0]))["s"] == "claimed"
    await store.audit_ok()


async def test_the_sweeper_expires_due_orders(store: Store) -> None:
    sale, order = await pending(store, coupon=True)
    sweeper = Sweeper(store.shop.redis, store.shop.stock, store.orders)
    await store.shop.redis.sadd(keys.rooms_index(), store.room)
    try:
        await sweeper.sweep(at_ms=order.expires_at - 1)
        assert (await store.orders.get(store.room, order.id)).state is OrderState.PENDING_PAYMENT
        await sweeper.sweep(at_ms=order.expires_at)
    finally:
        await store.shop.redis.srem(keys.rooms_index(), store.room)
    assert (await store.orders.get(store.room, order.id)).state is OrderState.EXPIRED
    assert await counters(store, sale) == (5, 0, 0)
    await store.audit_ok()


# ---- payment races -----------------------------------------------------------------------


async def test_payment_racing_expiry_never_loses_a_unit(store: Store) -> None:
    for n in range(10):
        sale, order = await pending(store, user=f"racer{n}")
        payment = await store.start_payment(order)
        await asyncio.gather(
            store.pay(order, payment),
            store.orders.expire(store.room, order.id, at_ms=order.expires_at),
            return_exceptions=True,
        )
        final = await store.orders.get(store.room, order.id)
        # Either order wins the race; a payment that lands after expiry re-takes the unit.
        assert final.state is OrderState.PAID
        assert await counters(store, sale) == (4, 0, 1)
    await store.audit_ok()


async def test_a_late_payment_re_reserves_when_stock_is_there(store: Store) -> None:
    sale, order = await pending(store, coupon=True)
    await store.orders.expire(store.room, order.id, at_ms=order.expires_at)
    result = await store.pay(order)
    assert result["outcome"] == "paid"
    paid = await store.orders.get(store.room, order.id)
    assert paid.state is OrderState.PAID
    assert paid.to_wire()["late_payment"] is True
    assert await counters(store, sale) == (4, 0, 1)
    assert (await store.coupons.record(store.room, order.coupons[0]))["s"] == "used"
    await store.audit_ok()


async def expire_before_the_units_go_back(store: Store, order: Order) -> None:
    """The first half of an order's expiry (order_release.lua) without the second
    (`Stock.expire`), as when the process stops in between: the order is `expired` and no
    longer counted, but its units are still held, now for the buyer rather than the order,
    until the reservation sweeper returns them."""
    [line] = order.lines
    room = store.room
    result = await store.shop.scripts.order_release(
        store.shop.redis,
        [keys.order(room, order.id), keys.order_expiry(room), keys.order_counts(room),
         keys.coupons(room), keys.expiry(room), keys.order_events(room),
         keys.sale_reservations(room, line["sale"])],
        [order.expires_at, 10_000, "expire", "sweeper", "payment_timeout",
         line["reservation"], 7],
    )  # fmt: skip
    assert [r.decode() for r in result] == ["ok", "expired", line["reservation"]]


async def test_a_payment_after_expiry_is_late_even_when_the_units_were_still_held(
    store: Store,
) -> None:
    """Nothing had to be re-taken from stock, but the order had expired: still late."""
    sale, order = await pending(store)
    await expire_before_the_units_go_back(store, order)
    assert (await store.orders.get(store.room, order.id)).state is OrderState.EXPIRED
    assert await counters(store, sale) == (4, 1, 0)  # the unit is still held
    result = await store.pay(order)
    assert (result["outcome"], result["detail"]) == ("paid", "1")
    paid = await store.orders.get(store.room, order.id)
    assert paid.state is OrderState.PAID
    assert paid.to_wire()["late_payment"] is True
    assert await counters(store, sale) == (4, 0, 1)
    [event] = [e for e in await order_events(store) if e["type"] == "order_paid"]
    assert event["late"] == "1"
    await store.audit_ok()


async def test_a_payment_just_past_the_deadline_is_late_before_any_sweep(store: Store) -> None:
    """Lateness is judged by the clock: an order whose deadline passed a few milliseconds
    ago, still `pending_payment` because no sweeper has run, is paid late."""
    sale = await store.sale(allotment=5)
    rid = await store.reserve(sale, "ana")
    window = store.orders.payment_window_ms
    order = await store.checkout("ana", [rid], at_ms=now_ms() - window - 5)
    assert order.expires_at < now_ms()
    assert (await store.orders.get(store.room, order.id)).state is OrderState.PENDING_PAYMENT
    result = await store.pay(order)
    assert (result["outcome"], result["detail"]) == ("paid", "1")
    assert (await store.orders.get(store.room, order.id)).to_wire()["late_payment"] is True
    [event] = [e for e in await order_events(store) if e["type"] == "order_paid"]
    assert event["late"] == "1"
    # Paid in time (the deadline still ahead): not late.
    on_time = await store.checkout("ana", [await store.reserve(sale, "ana")])
    assert order.expires_at < now_ms() < on_time.expires_at
    assert (await store.pay(on_time))["detail"] == "0"
    assert (await store.orders.get(store.room, on_time.id)).to_wire()["late_payment"] is False
    await store.audit_ok()


async def order_events(store: Store) -> list[dict[str, str]]:
    rows = stream_rows(await store.shop.redis.xrange(keys.order_events(store.room)))
    return [{text(k): text(v) for k, v in fields.items()} for _, fields in rows]


async def test_an_order_paid_late_counts_toward_the_order_limits_again(store: Store) -> None:
    """Expiry stops an order counting toward `max_orders_per_user` (and per device); a late
    payment that completes it makes it count again."""
    store.orders.risk = RiskRules(max_orders_per_user=1, max_orders_per_device=1)
    sale = await store.sale(allotment=5)
    order = await store.checkout("ana", [await store.reserve(sale, "ana")], device="device-0001")
    await store.orders.expire(store.room, order.id, at_ms=order.expires_at)
    assert (await store.pay(order))["outcome"] == "paid"
    assert (await store.orders.get(store.room, order.id)).to_wire()["late_payment"] is True
    with pytest.raises(RejectedError) as by_user:
        await store.checkout("ana", [await store.reserve(sale, "ana")])
    assert (by_user.value.code, by_user.value.details["detail"]) == ("order_limit", "user")
    with pytest.raises(RejectedError) as by_device:
        await store.checkout("bob", [await store.reserve(sale, "bob")], device="device-0001")
    assert (by_device.value.code, by_device.value.details["detail"]) == ("order_limit", "device")
    await store.audit_ok()


async def test_a_late_payment_is_refunded_when_the_units_are_gone(store: Store) -> None:
    sale = await store.sale(allotment=1)
    rid = await store.reserve(sale, "ana")
    order = await store.checkout("ana", [rid])
    await store.orders.expire(store.room, order.id, at_ms=order.expires_at)
    await store.reserve(sale, "bob")  # the returned unit is gone again
    payment = await store.start_payment(order)
    await store.provider.complete(payment, "succeeded")
    result = await store.pay(order, payment)
    assert (result["outcome"], result["detail"]) == ("refund", "sold_out")
    assert (await store.orders.get(store.room, order.id)).state is OrderState.EXPIRED
    assert (await store.provider.get(payment))["refunded"] == order.total
    assert (await store.orders.payment(store.room, payment) or {})["s"] == "refunded"
    assert await counters(store, sale) == (0, 1, 0)
    await store.audit_ok()


async def test_a_payment_for_a_cancelled_order_is_refunded(store: Store) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    await store.provider.complete(payment, "succeeded")
    await store.orders.cancel(store.room, order.id, "ana")
    result = await store.pay(order, payment)
    assert (result["outcome"], result["detail"]) == ("refund", "order_cancelled")
    assert await counters(store, sale) == (5, 0, 0)
    await store.audit_ok()


async def test_many_buyers_check_out_and_pay_concurrently(store: Store) -> None:
    sale = await store.sale(allotment=40, per_user_limit=1)

    async def buy(n: int) -> None:
        user = f"u{n}"
        rid = await store.reserve(sale, user)
        order = await store.checkout(user, [rid])
        if n % 4 == 0:
            await store.orders.cancel(store.room, order.id, user)
        else:
            assert (await store.pay(order))["outcome"] == "paid"

    await asyncio.gather(*(buy(n) for n in range(40)))
    assert await counters(store, sale) == (10, 0, 30)
    await store.audit_ok()


# ---- refunds and fulfilment --------------------------------------------------------------


async def test_refund_in_parts_never_above_what_was_paid(store: Store) -> None:
    sale, order = await pending(store, quantity=2)
    await store.pay(order)
    part, _ = await store.orders.refund(store.room, order.id, "r1", amount=1000, reason="damaged",
                                        who="host")  # fmt: skip
    assert (part.state, part.refunded) == (OrderState.PARTIALLY_REFUNDED, 1000)
    replay, replayed = await store.orders.refund(store.room, order.id, "r1", amount=1000,
                                                 reason="damaged", who="host")  # fmt: skip
    assert replayed
    assert replay.refunded == 1000
    with pytest.raises(RejectedError) as caught:
        await store.orders.refund(store.room, order.id, "r2", amount=order.total, reason="x",
                                  who="host")  # fmt: skip
    assert caught.value.code == "refund_too_large"
    rest, _ = await store.orders.refund(
        store.room, order.id, "r3", amount=order.total - 1000, reason="returned", who="host",
        restock=[order.lines[0]["reservation"]],
    )  # fmt: skip
    assert (rest.state, rest.refunded) == (OrderState.REFUNDED, order.total)
    assert await counters(store, sale) == (5, 0, 0)
    assert [r["id"] for r in rest.refunds()] == ["r1", "r3"]
    await store.audit_ok()


async def test_unpaid_orders_cannot_be_refunded_or_fulfilled(store: Store) -> None:
    _, order = await pending(store)
    with pytest.raises(ConflictError):
        await store.orders.refund(store.room, order.id, "r1", amount=1, reason="x", who="host")
    with pytest.raises(ConflictError):
        await store.orders.mark(store.room, order.id, "fulfill", "host")
    await store.pay(order)
    fulfilled = await store.orders.mark(store.room, order.id, "fulfill", "host")
    assert fulfilled.state is OrderState.FULFILLED


# ---- risk rules --------------------------------------------------------------------------


async def test_order_limits_per_user_and_device(store: Store) -> None:
    sale = await store.sale(allotment=20, per_user_limit=10)
    for _ in range(5):
        await store.checkout("ana", [await store.reserve(sale, "ana")])
    with pytest.raises(RejectedError) as by_user:
        await store.checkout("ana", [await store.reserve(sale, "ana")])
    assert (by_user.value.code, by_user.value.details["detail"]) == ("order_limit", "user")
    for n in range(10):
        user = f"d{n}"
        await store.checkout(user, [await store.reserve(sale, user)], device="device-0001")
    with pytest.raises(RejectedError) as by_device:
        await store.checkout("zed", [await store.reserve(sale, "zed")], device="device-0001")
    assert by_device.value.details["detail"] == "device"


async def test_blocked_users_and_devices_cannot_order(store: Store) -> None:
    sale = await store.sale()
    blocklist = Blocklist(store.shop.redis)
    await blocklist.add(store.room, BlockEntry("user", "ana"))
    await blocklist.add(store.room, BlockEntry("device", "bad-device-1"))
    for user, device in [("ana", None), ("bob", "bad-device-1")]:
        with pytest.raises(ForbiddenError) as caught:
            await store.checkout(user, [await store.reserve(sale, user)], device=device)
        assert caught.value.code == "blocked"


async def test_high_value_orders_are_flagged_until_approved(store: Store) -> None:
    store.orders.risk = RiskRules(review_threshold=5000)
    _, order = await pending(store, quantity=2)
    assert order.review == "flagged"
    await store.pay(order)
    with pytest.raises(ConflictError) as caught:
        await store.orders.mark(store.room, order.id, "fulfill", "host")
    assert caught.value.code == "review_pending"
    await store.orders.mark(store.room, order.id, "approve", "host")
    assert (await store.orders.mark(store.room, order.id, "fulfill", "host")).state is (
        OrderState.FULFILLED
    )


# ---- the audit sees damage ---------------------------------------------------------------


async def test_audit_reports_money_that_does_not_add_up(store: Store) -> None:
    _, order = await pending(store, coupon=True)
    await store.pay(order)
    await store.audit_ok()
    redis = store.shop.redis
    await redis.hset(keys.order(store.room, order.id), "total", order.total + 1)
    report = await audit_room(redis, store.room)
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {"orders: paid orders match verified payments", "orders: GMV equal both ways"}


async def test_audit_reports_a_used_coupon_without_a_paid_order(store: Store) -> None:
    _, order = await pending(store, coupon=True)
    redis = store.shop.redis
    await redis.hset(keys.coupons(store.room), order.coupons[0],
                     orjson.dumps({"u": "ana", "t": "t1", "d": "d2", "s": "used", "o": order.id,
                                   "c": 1}))  # fmt: skip
    report = await audit_room(redis, store.room)
    assert [c.name for c in report.checks if not c.ok] == [
        "coupons: used and locked match their orders"
    ]


async def test_a_late_payment_never_puts_the_buyer_above_the_cap(store: Store) -> None:
    sale = await store.sale(allotment=5, per_user_limit=1)
    order = await store.checkout("ana", [await store.reserve(sale, "ana")])
    await store.orders.expire(store.room, order.id, at_ms=order.expires_at)
    await store.reserve(sale, "ana")  # ana holds her one unit again, outside the order
    payment = await store.start_payment(order)
    await store.provider.complete(payment, "succeeded")
    result = await store.pay(order, payment)
    assert (result["outcome"], result["detail"]) == ("refund", "limit_reached")
    assert await counters(store, sale) == (4, 1, 0)
    await store.audit_ok()
