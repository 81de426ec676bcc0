"""Ticks during a rush (engine/realtime/rush_pace.py): a tick waits while the room's grabs or
claims wait for their answers, at most TICK_HOLD_MS; a rushed sale's counters go out at most
once per RUSH_STOCK_MS, and a change of its state, and every change outside a rush, at once."""

from __future__ import annotations

from typing import Any

from engine.commerce.stock import GrabAnswer, GrabRequest
from engine.realtime.rush_pace import RUSH_STOCK_MS, TICK_HOLD_MS, StockPace, tick_waits
from engine.server.app import Engine
from tests.conftest import Shop, Store, ViewerFactory, eventually
from tests.test_coupons import live_drop

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


def test_a_tick_waits_for_pending_answers_at_most_the_hold() -> None:
    hold_s = TICK_HOLD_MS / 1000
    assert tick_waits(answering=True, since_tick_s=0.1)
    assert tick_waits(answering=True, since_tick_s=hold_s - 0.01)
    assert not tick_waits(answering=True, since_tick_s=hold_s)  # then it goes regardless
    assert not tick_waits(answering=False, since_tick_s=0.1)  # nothing pending: on time


async def test_stock_is_answering_while_a_grab_batch_is_queued_or_in_flight(shop: Shop) -> None:
    sale = await shop.sale()
    answers: list[GrabAnswer | Exception] = []
    assert not shop.stock.answering(shop.room)
    shop.stock.grab_nowait(shop.room, sale, GrabRequest("u1", "r1", 1), answers.append)
    shop.stock.grab_nowait(shop.room, sale, GrabRequest("u2", "r2", 1), answers.append)
    assert shop.stock.answering(shop.room)  # one in a script call, one queued behind it
    assert not shop.stock.answering("another-room")

    async def answered() -> bool:
        return len(answers) == 2

    await eventually(answered)
    assert not shop.stock.answering(shop.room)


async def test_coupons_are_answering_while_a_claim_is_pending(store: Store) -> None:
    drop = await live_drop(store, 3)
    answers: list[GrabAnswer | Exception] = []
    store.coupons.claim_nowait(store.room, drop.id, "u1", "c1", answers.append)
    assert store.coupons.answering(store.room)

    async def answered() -> bool:
        return len(answers) == 1

    await eventually(answered)
    assert not store.coupons.answering(store.room)


async def test_a_rooms_hub_holds_its_tick_while_its_grabs_are_pending(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    await viewer_factory(room)  # the room's hub exists while someone watches
    assert engine.node is not None
    hub = engine.node.hubs[room]
    answers: list[GrabAnswer | Exception] = []
    assert not hub.answering()
    engine.node.stock.grab_nowait(room, "s9", GrabRequest("u1", "r1", 1), answers.append)
    assert hub.answering()  # a grab of a sale that does not exist is answered all the same

    async def answered() -> bool:
        return len(answers) == 1

    await eventually(answered)
    assert not hub.answering()
