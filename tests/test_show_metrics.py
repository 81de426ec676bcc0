"""engine.insights.show_metrics: the counters parsed, per-minute rows, the derived figures."""

from __future__ import annotations

import pytest

from engine.commerce.sales import Sale
from engine.insights.show_metrics import (
    MINUTE_COLUMNS,
    Counters,
    derived,
    main_currency,
    minute_rows,
    sell_through_ms,
    sell_through_text,
)
from engine.server.api.dashboard import comments_last_minute
from engine.store.meter import Metric

RAW = {
    b"100:comments": b"4", b"100:online_sum": b"30", b"100:online_samples": b"4",
    b"100:online_max": b"9", b"100:gmv.USD": b"5600", b"100:gmv.EUR": b"100",
    b"102:comments": b"1", b"102:refunded.USD": b"1000",
    b"t:comments": b"5", b"t:clicks.p1": b"2", b"t:clicks.p2": b"1", b"t:clicks": b"3",
    b"junk": b"7",  # not ours: ignored
}  # fmt: skip


def test_parse_splits_minutes_and_totals() -> None:
    counters = Counters.parse(RAW)
    assert list(counters.minutes) == [100, 102]
    assert counters.minutes[100]["online_max"] == 9
    assert counters.total(Metric.COMMENTS) == 5
    assert counters.total(Metric.CLICKS, "p2") == 1
    assert counters.by_dim(Metric.CLICKS) == {"p1": 2, "p2": 1}
    assert counters.span_ms() == (6_000_000, 6_180_000)
    assert Counters().span_ms() is None


def test_minute_rows_fill_quiet_minutes_with_zeros() -> None:
    rows = minute_rows(Counters.parse(RAW), "USD")
    assert [row["minute"] for row in rows] == [6_000_000, 6_060_000, 6_120_000]
    assert all(list(row) == list(MINUTE_COLUMNS) for row in rows)
    first, quiet, last = rows
    assert (first["online_avg"], first["online_max"], first["gmv"]) == (7.5, 9, 5600)
    assert quiet == {column: 0 for column in MINUTE_COLUMNS} | {"minute": 6_060_000,
                                                               "online_avg": 0.0}  # fmt: skip
    assert (last["comments"], last["refunded"]) == (1, 1000)
    assert minute_rows(Counters.parse(RAW), "EUR")[0]["gmv"] == 100
    assert minute_rows(Counters(), "USD") == []


def test_derived_figures_never_divide_by_zero() -> None:
    zero = derived(viewers=0, views=0, clicks=0, grab_attempts=0, reservations=0, orders=0,
                   paid_orders=0, paid_buyers=0, gmv=0, claims=0, redemptions=0,
                   referral_gmv=0)  # fmt: skip
    assert zero["conversion"] == zero["click_to_order_rate"] == zero["referral_gmv_share"] == 0
    assert zero["average_order_value"] == zero["gmv_per_thousand_views"] == 0
    figures = derived(viewers=3, views=7, clicks=4, grab_attempts=9, reservations=2, orders=2,
                      paid_orders=2, paid_buyers=1, gmv=1001, claims=3, redemptions=1,
                      referral_gmv=250)  # fmt: skip
    assert figures["conversion"] == 0.3333
    assert figures["click_to_order_rate"] == 0.5
    assert figures["average_order_value"] == 500  # integer minor units, rounded down
    assert figures["gmv_per_thousand_views"] == 143_000  # 1001 * 1000 // 7
    assert figures["coupon_redemption_rate"] == 0.3333
    assert figures["referral_gmv_share"] == 0.2498
    assert figures["funnel"] == {"viewers": 3, "product_clicks": 4, "grab_attempts": 9,
                                 "reservations": 2, "orders": 2, "paid": 2}  # fmt: skip


@pytest.mark.parametrize(
    ("units", "ms", "text"),
    [(1000, 3200, "1,000 units in 3.2 s"), (1, 40, "1 unit in 0.0 s"),
     (50, 125_000, "50 units in 2:05"), (5, None, None)],
)  # fmt: skip
def test_sell_through_text(units: int, ms: int | None, text: str | None) -> None:
    assert sell_through_text(units, ms) == text


def test_main_currency_is_the_one_with_most_gmv() -> None:
    assert main_currency({"USD": 5, "EUR": 9}) == "EUR"
    assert main_currency({"USD": 5, "EUR": 5}) == "EUR"  # ties: alphabetical
    assert main_currency({}, "GBP") == "GBP"
    assert main_currency({}) is None


def test_comments_last_minute_prorates_the_previous_minute() -> None:
    counters = Counters.parse({b"100:comments": b"60", b"101:comments": b"5"})
    assert comments_last_minute(counters, 101 * 60 + 15) == 5 + 45  # 3/4 of minute 100 left
    assert comments_last_minute(counters, 101 * 60) == 65
    assert comments_last_minute(counters, 103 * 60) == 0


def sale_of(units: int, starts_at: int = 1000) -> Sale:
    return Sale(id="s1", sku="M", product="p1", title="Mug", price=900, currency="GBP",
                limit=5, hold_ms=60_000, allotment=units, topups=0, available=0, reserved=0,
                sold=units, created_at=0, starts_at=starts_at, ends_at=10**13)  # fmt: skip


def test_sell_through_is_the_first_moment_no_unit_was_left() -> None:
    records = [
        {"s": "sold", "c": 1100, "q": 1, "x": 9000},
        {"s": "expired", "c": 1200, "q": 1, "x": 1300},  # back before the third grab
        {"s": "sold", "c": 1400, "q": 1, "x": 9000},
        {"s": "held", "c": 1500, "q": 1},  # the 3rd unit taken with 2 still out: sold out
        {"s": "released", "c": 2000, "q": 1, "x": 2500},  # after the 3rd: no change for 3
    ]
    assert sell_through_ms(sale_of(3), records) == 500
    assert sell_through_ms(sale_of(4), records) == 1000  # the 4th unit, at 2000
    assert sell_through_ms(sale_of(5), records) is None  # never all 5 at once
    # A unit back at the same ms as a grab: the grab does not sell it out.
    tie = [{"s": "expired", "c": 1000, "q": 1, "x": 1600}, {"s": "held", "c": 1600, "q": 1}]
    assert sell_through_ms(sale_of(2), tie) is None
    assert sell_through_ms(sale_of(2, starts_at=2000), [{"s": "held", "c": 1500, "q": 2}]) == 0
