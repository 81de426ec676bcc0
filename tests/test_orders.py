"""Orders against a real Redis: checkout, payment, cancel, expiry, refunds and their races."""

from __future__ import annotations

from engine.orders import OrderState
from tests.conftest import Store


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
