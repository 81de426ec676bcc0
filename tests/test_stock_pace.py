"""A rushed sale's counters go out in ticks at most once per RUSH_STOCK_MS; a change of its
state, and every change outside a rush, goes out at once (engine/realtime/stock_pace.py)."""

from __future__ import annotations

from typing import Any

from engine.realtime.stock_pace import RUSH_STOCK_MS, StockPace

GAP_S = RUSH_STOCK_MS / 1000


def stock(available: int, state: str = "live") -> dict[str, Any]:
    return {"available": available, "reserved": 100 - available, "sold": 0, "units": 100,
            "state": state, "waiting": 0}  # fmt: skip


def test_outside_a_rush_every_change_goes_out() -> None:
    pace = StockPace()
    assert pace.due("s1", stock(90), stock(100), rushed=False, now=10.0)
    assert pace.due("s1", stock(80), stock(90), rushed=False, now=10.1)
    assert pace.due("s1", stock(70), stock(80), rushed=False, now=10.2)


def test_in_a_rush_counters_wait_for_the_gap() -> None:
    pace = StockPace()
    assert pace.due("s1", stock(90), stock(100), rushed=True, now=10.0)  # the first one
    assert not pace.due("s1", stock(80), stock(90), rushed=True, now=10.1)
    assert not pace.due("s1", stock(70), stock(90), rushed=True, now=10.0 + GAP_S - 0.01)
    assert pace.due("s1", stock(60), stock(90), rushed=True, now=10.0 + GAP_S)
    assert not pace.due("s1", stock(50), stock(60), rushed=True, now=10.0 + GAP_S + 0.1)


def test_a_change_of_state_goes_out_at_once_even_in_a_rush() -> None:
    pace = StockPace()
    assert pace.due("s1", stock(10), stock(20), rushed=True, now=10.0)
    assert pace.due("s1", stock(0, "sold_out"), stock(10), rushed=True, now=10.05)
    assert pace.due("s1", stock(0, "ended"), stock(0, "sold_out"), rushed=True, now=10.06)


def test_a_sale_never_shown_goes_out_and_sales_are_paced_apart() -> None:
    pace = StockPace()
    assert pace.due("s1", stock(90), None, rushed=True, now=10.0)
    assert pace.due("s2", stock(90), stock(100), rushed=True, now=10.01)
    assert not pace.due("s1", stock(80), stock(90), rushed=True, now=10.02)
    pace.forget("s1")
    assert pace.due("s1", stock(80), stock(90), rushed=True, now=10.03)
