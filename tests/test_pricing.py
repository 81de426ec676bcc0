"""engine.commerce.pricing.price: each rule of its docstring, then properties that hold for any
lines and any coupons (hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.commerce.pricing import Breakdown, CouponKind, Line, Offer, price
from engine.core.errors import RejectedError

SHIPPING = 600


def amount_off(amount: int, *, coupon: str = "d2.1", template: str = "t1", **terms: Any) -> Offer:
    return Offer(coupon, template, CouponKind.AMOUNT_OFF, amount=amount, **terms)


def percent_off(percent: int, *, coupon: str = "d2.1", template: str = "t1",
                **terms: Any) -> Offer:  # fmt: skip
    return Offer(coupon, template, CouponKind.PERCENT_OFF, percent=percent, **terms)


def free_shipping(*, coupon: str = "d2.1", template: str = "t1", **terms: Any) -> Offer:
    return Offer(coupon, template, CouponKind.FREE_SHIPPING, **terms)


def refused(lines: Sequence[Line], offers: Sequence[Offer]) -> RejectedError:
    """The error pricing raises for this order (the test fails if it prices)."""
    with pytest.raises(RejectedError) as caught:
        price(lines, offers, SHIPPING)
    return caught.value


def breakdown(subtotal: int, discount: int, applied: Sequence[tuple[str, int]] = (),
              shipping: int = SHIPPING) -> Breakdown:  # fmt: skip
    return Breakdown(subtotal, discount, shipping, subtotal - discount + shipping, tuple(applied))


# ---- no coupon -----------------------------------------------------------------------------


def test_subtotal_is_unit_price_times_quantity_summed() -> None:
    lines = [Line("A", 1250, 3), Line("B", 999, 1)]
    assert price(lines, [], SHIPPING) == breakdown(4749, 0)


def test_an_empty_order_is_refused() -> None:
    assert refused([], []).code == "order_empty"
    assert refused([], [amount_off(100)]).code == "order_empty"


# ---- amount off ----------------------------------------------------------------------------


def test_amount_off_above_a_threshold_applies_at_the_threshold() -> None:
    # "20 off 199": 2000 off an order of at least 19900.
    offer = amount_off(2000, min_spend=19900)
    assert price([Line("A", 19900, 1)], [offer], SHIPPING) == breakdown(
        19900, 2000, [("d2.1", 2000)]
    )


def test_amount_off_below_its_threshold_is_refused_with_the_numbers() -> None:
    error = refused([Line("A", 19899, 1)], [amount_off(2000, min_spend=19900)])
    assert error.code == "coupon_threshold_not_met"
    assert error.details == {"coupon": "d2.1", "min_spend": 19900, "eligible": 19899}


def test_amount_off_never_exceeds_the_amount_it_applies_to() -> None:
    lines = [Line("A", 700, 1), Line("B", 5000, 1)]
    offer = amount_off(1000, skus=frozenset({"A"}))
    assert price(lines, [offer], SHIPPING) == breakdown(5700, 700, [("d2.1", 700)])


# ---- percent off ---------------------------------------------------------------------------


def test_percent_off_without_a_cap_is_floored() -> None:
    # 15% of 9999 is 1499.85.
    assert price([Line("A", 9999, 1)], [percent_off(15)], SHIPPING) == breakdown(
        9999, 1499, [("d2.1", 1499)]
    )


def test_percent_off_stops_at_its_cap() -> None:
    offer = percent_off(10, cap=3000)
    assert price([Line("A", 25000, 2)], [offer], SHIPPING) == breakdown(
        50000, 3000, [("d2.1", 3000)]
    )


def test_percent_off_under_its_cap_is_the_percentage() -> None:
    offer = percent_off(10, cap=3000)
    assert price([Line("A", 2000, 1)], [offer], SHIPPING).discount == 200


def test_hundred_percent_off_makes_the_goods_free_but_not_the_shipping() -> None:
    result = price([Line("A", 4321, 2)], [percent_off(100)], SHIPPING)
    assert (result.discount, result.total) == (8642, SHIPPING)


# ---- free shipping -------------------------------------------------------------------------


def test_free_shipping_zeroes_shipping_and_discounts_nothing() -> None:
    assert price([Line("A", 3000, 1)], [free_shipping()], SHIPPING) == breakdown(
        3000, 0, [("d2.1", 0)], shipping=0
    )


def test_free_shipping_has_a_threshold_too() -> None:
    error = refused([Line("A", 3000, 1)], [free_shipping(min_spend=5000)])
    assert error.code == "coupon_threshold_not_met"


# ---- scope ---------------------------------------------------------------------------------


def test_a_sku_scoped_coupon_discounts_only_its_skus() -> None:
    lines = [Line("A", 10000, 1), Line("B", 20000, 1), Line("C", 5000, 2)]
    offer = percent_off(50, skus=frozenset({"B", "C"}))
    assert price(lines, [offer], SHIPPING) == breakdown(40000, 15000, [("d2.1", 15000)])


def test_min_spend_is_compared_with_the_in_scope_amount_not_the_subtotal() -> None:
    lines = [Line("A", 10000, 1), Line("B", 20000, 1)]
    error = refused(lines, [amount_off(1000, min_spend=15000, skus=frozenset({"A"}))])
    assert error.code == "coupon_threshold_not_met"
    assert error.details == {"coupon": "d2.1", "min_spend": 15000, "eligible": 10000}
    # In scope for B, the same threshold is met.
    met = price(lines, [amount_off(1000, min_spend=15000, skus=frozenset({"B"}))], SHIPPING)
    assert met.discount == 1000


def test_a_coupon_for_none_of_the_lines_is_refused() -> None:
    error = refused([Line("A", 10000, 1)], [amount_off(1000, skus=frozenset({"Z"}))])
    assert error.code == "coupon_not_applicable"
    assert error.details == {"coupon": "d2.1"}


# ---- stacking ------------------------------------------------------------------------------


def test_two_coupons_are_refused_unless_both_stack() -> None:
    lines = [Line("A", 10000, 1)]
    stacks = amount_off(500, coupon="d2.1", template="t1", stackable=True)
    alone = amount_off(500, coupon="d4.1", template="t3")
    for offers in ([stacks, alone], [alone, stacks]):
        assert refused(lines, offers).code == "coupon_not_stackable"


def test_a_single_coupon_needs_not_stack() -> None:
    assert price([Line("A", 10000, 1)], [amount_off(500)], SHIPPING).discount == 500


def test_stackable_coupons_of_different_templates_add_up_in_order() -> None:
    lines = [Line("A", 10000, 1)]
    offers = [
        percent_off(10, coupon="d2.1", template="t1", stackable=True),
        amount_off(500, coupon="d4.1", template="t3", stackable=True),
        free_shipping(coupon="d6.1", template="t5", stackable=True),
    ]
    assert price(lines, offers, SHIPPING) == breakdown(
        10000, 1500, [("d2.1", 1000), ("d4.1", 500), ("d6.1", 0)], shipping=0
    )


def test_one_template_twice_is_refused_even_if_it_stacks() -> None:
    offers = [
        amount_off(500, coupon="d2.1", template="t1", stackable=True),
        amount_off(500, coupon="d3.1", template="t1", stackable=True),
    ]
    assert refused([Line("A", 10000, 1)], offers).code == "coupon_not_stackable"


def test_stacked_discounts_stop_at_the_subtotal() -> None:
    offers = [
        amount_off(3000, coupon="d2.1", template="t1", stackable=True),
        amount_off(3000, coupon="d4.1", template="t3", stackable=True),
    ]
    assert price([Line("A", 5000, 1)], offers, SHIPPING) == breakdown(
        5000, 5000, [("d2.1", 3000), ("d4.1", 2000)]
    )


def test_breakdown_wire_form() -> None:
    result = price([Line("A", 5000, 1)], [amount_off(700)], SHIPPING)
    assert result.to_wire() == {
        "subtotal": 5000, "discount": 700, "shipping": SHIPPING, "total": 4900,
        "coupons": [{"coupon": "d2.1", "discount": 700}],
    }  # fmt: skip


# ---- properties ----------------------------------------------------------------------------

SKUS = ["A", "B", "C", "D"]
lines_st = st.lists(
    st.builds(
        Line,
        sku=st.sampled_from(SKUS),
        unit_price=st.integers(0, 5_000),
        quantity=st.integers(1, 5),
    ),
    max_size=6,
)


@st.composite
def offers_st(draw: st.DrawFn) -> list[Offer]:
    """Up to three coupons of any kind and terms, on templates that may repeat."""
    offers = []
    for n in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(list(CouponKind)))
        skus = draw(st.none() | st.frozensets(st.sampled_from([*SKUS, "Z"]), min_size=1))
        offers.append(
            Offer(
                coupon=f"d{n + 2}.1",
                template=draw(st.sampled_from(["t1", "t2", "t3"])),
                kind=kind,
                amount=draw(st.integers(1, 40_000)) if kind is CouponKind.AMOUNT_OFF else 0,
                percent=draw(st.integers(1, 100)) if kind is CouponKind.PERCENT_OFF else 0,
                cap=draw(st.none() | st.integers(1, 10_000))
                if kind is CouponKind.PERCENT_OFF
                else None,
                min_spend=draw(st.sampled_from([0, 0, 1000, 10_000, 30_000])),
                skus=skus,
                stackable=draw(st.sampled_from([True, True, True, False])),
            )
        )
    return offers


def expected_refusal(lines: Sequence[Line], offers: Sequence[Offer]) -> str | None:
    """Why this order cannot be priced, by the docstring's rules in their order (None: it
    can): no lines; coupons that do not stack; then, coupon by coupon, no line in scope or
    a threshold not met."""
    if not lines:
        return "order_empty"
    if len(offers) > 1 and (
        not all(o.stackable for o in offers) or len({o.template for o in offers}) < len(offers)
    ):
        return "coupon_not_stackable"
    for offer in offers:
        eligible = offer.in_scope(lines)
        if eligible == 0:
            return "coupon_not_applicable"
        if eligible < offer.min_spend:
            return "coupon_threshold_not_met"
    return None


def check_invariants(lines: Sequence[Line], offers: Sequence[Offer], shipping_fee: int,
                     result: Breakdown) -> None:  # fmt: skip
    subtotal = sum(line.unit_price * line.quantity for line in lines)
    assert result.subtotal == subtotal
    assert result.total == result.subtotal - result.discount + result.shipping
    assert result.total >= 0
    assert 0 <= result.discount <= result.subtotal
    assert [coupon for coupon, _ in result.applied] == [o.coupon for o in offers]
    assert sum(off for _, off in result.applied) == result.discount
    for offer, (_, off) in zip(offers, result.applied, strict=True):
        assert off >= 0
        eligible = offer.in_scope(lines)
        assert off <= eligible
        if offer.kind is CouponKind.PERCENT_OFF:
            assert off <= eligible * offer.percent // 100
            assert offer.cap is None or off <= offer.cap
        elif offer.kind is CouponKind.AMOUNT_OFF:
            assert off <= offer.amount
        else:
            assert off == 0
    free = any(o.kind is CouponKind.FREE_SHIPPING for o in offers)
    assert result.shipping == (0 if free else shipping_fee)
    numbers = [result.subtotal, result.discount, result.shipping, result.total]
    assert all(type(n) is int for n in [*numbers, *(off for _, off in result.applied)])


@settings(max_examples=200, database=None)
@given(lines=lines_st, offers=offers_st(), shipping_fee=st.integers(0, 5000))
def test_any_order_prices_consistently_or_is_refused_for_a_documented_reason(
    lines: list[Line], offers: list[Offer], shipping_fee: int
) -> None:
    reason = expected_refusal(lines, offers)
    if reason is not None:
        with pytest.raises(RejectedError) as refusal:
            price(lines, offers, shipping_fee)
        assert refusal.value.code == reason
    else:
        check_invariants(lines, offers, shipping_fee, price(lines, offers, shipping_fee))


@st.composite
def priceable_st(draw: st.DrawFn) -> tuple[list[Line], list[Offer]]:
    """Lines worth something and stackable coupons of distinct templates, each with a
    scope that meets its threshold: orders that must price."""
    lines = draw(
        st.lists(
            st.builds(Line, sku=st.sampled_from(SKUS), unit_price=st.integers(1, 100_000),
                      quantity=st.integers(1, 10)),
            min_size=1, max_size=6,
        )
    )  # fmt: skip
    present = sorted({line.sku for line in lines})
    offers = []
    for n in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(list(CouponKind)))
        scope = draw(st.none() | st.sets(st.sampled_from(present), min_size=1).map(frozenset))
        eligible = sum(line.amount for line in lines if scope is None or line.sku in scope)
        offers.append(
            Offer(
                coupon=f"d{n + 2}.1",
                template=f"t{n + 1}",
                kind=kind,
                amount=draw(st.integers(1, 200_000)),
                percent=draw(st.integers(1, 100)),
                cap=draw(st.none() | st.integers(1, 50_000)),
                min_spend=draw(st.integers(0, eligible)),
                skus=scope,
                stackable=True,
            )
        )
    return lines, offers


@settings(max_examples=200, database=None)
@given(order=priceable_st(), shipping_fee=st.integers(0, 5000))
def test_stackable_coupons_whose_terms_are_met_always_price(
    order: tuple[list[Line], list[Offer]], shipping_fee: int
) -> None:
    lines, offers = order
    check_invariants(lines, offers, shipping_fee, price(lines, offers, shipping_fee))


@settings(max_examples=150, database=None)
@given(
    lines=st.lists(st.builds(Line, sku=st.sampled_from(SKUS), unit_price=st.integers(1, 100_000),
                             quantity=st.integers(1, 10)), min_size=1, max_size=6),
    percent=st.integers(1, 100),
    cap=st.none() | st.integers(1, 50_000),
)  # fmt: skip
def test_a_lone_percent_coupon_is_exactly_the_floored_percentage_up_to_its_cap(
    lines: list[Line], percent: int, cap: int | None
) -> None:
    result = price(lines, [percent_off(percent, cap=cap)], SHIPPING)
    expected = sum(line.amount for line in lines) * percent // 100
    assert result.discount == (expected if cap is None else min(expected, cap))


@settings(max_examples=150, database=None)
@given(
    lines=st.lists(st.builds(Line, sku=st.sampled_from(SKUS), unit_price=st.integers(1, 100_000),
                             quantity=st.integers(1, 10)), min_size=1, max_size=6),
    amount=st.integers(1, 200_000),
)  # fmt: skip
def test_a_lone_amount_coupon_is_its_amount_or_the_whole_subtotal(
    lines: list[Line], amount: int
) -> None:
    result = price(lines, [amount_off(amount)], SHIPPING)
    assert result.discount == min(amount, result.subtotal)


@st.composite
def scoped_threshold_st(draw: st.DrawFn) -> tuple[list[Line], Offer]:
    """Lines of at least two SKUs and an amount coupon scoped to some of them, whose
    `min_spend` lies above the in-scope amount but not above the subtotal."""
    lines = draw(
        st.lists(
            st.builds(Line, sku=st.sampled_from(SKUS), unit_price=st.integers(1, 100_000),
                      quantity=st.integers(1, 10)),
            min_size=2, max_size=6,
        ).filter(lambda ls: len({line.sku for line in ls}) >= 2)
    )  # fmt: skip
    present = sorted({line.sku for line in lines})
    scope = draw(st.sets(st.sampled_from(present), min_size=1, max_size=len(present) - 1))
    in_scope = sum(line.amount for line in lines if line.sku in scope)
    subtotal = sum(line.amount for line in lines)
    min_spend = draw(st.integers(in_scope + 1, subtotal))
    return lines, amount_off(100, min_spend=min_spend, skus=frozenset(scope))


@settings(max_examples=150, database=None)
@given(order=scoped_threshold_st())
def test_a_threshold_the_subtotal_meets_but_the_scope_does_not_is_refused(
    order: tuple[list[Line], Offer],
) -> None:
    lines, offer = order
    error = refused(lines, [offer])
    assert error.code == "coupon_threshold_not_met"
    assert error.details["eligible"] == offer.in_scope(lines) < offer.min_spend
