"""engine/ledger/reconcile.py and remedies.py: a day of the payment provider's settlement
against the ledger and Redis. The comparison on hand-made inputs (no I/O); then a show paid
through the simulated provider, with one mismatch of each class injected, reconciled by the
function and by `livecart reconcile --json`, each exception fixed once (a second fix does
nothing), and the day clean after."""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import orjson
import pytest

from clients import HostClient
from clients.errors import LivecartClientError
from engine.commerce.payments import SettlementLine
from engine.commerce.psp import SimulatedProvider
from engine.core.errors import ProtocolError
from engine.ledger.reconcile import (
    ACKNOWLEDGE,
    APPLY_PAYMENT,
    CLASSES,
    PAY_OUT_REFUND,
    RECORD_REFUND,
    REFUND_CHARGE,
    WAIT,
    BookOrder,
    BookRefund,
    Books,
    Discrepancy,
    Inputs,
    compare,
    day_bounds,
    parse_id,
)
from engine.ledger.reconcile_day import Report, reconcile
from engine.ledger.remedies import Remedies
from engine.server.app import Engine
from engine.server.node import Node
from engine.store import keys
from tests.conftest import SECRET, EngineFactory, RoomFactory, ViewerFactory, eventually, token
from tests.test_console import JACKET
from tests.test_console_orders import order_for


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


DAY = datetime.date(2026, 12, 7)
T = day_bounds(DAY)[0] + 3_600_000  # 01:00 UTC that day
HOUR = 3_600_000


# ---- the comparison, on hand-made inputs --------------------------------------------------


def charge(payment: str, order: str = "o1", amount: int = 5600, currency: str = "USD", *,
           room: str = "r1", at: int = T) -> SettlementLine:  # fmt: skip
    return SettlementLine(payment, "charge", payment, room, order, amount, currency, 192, at)


def refund_line(reference: str, payment: str, amount: int, order: str = "o1", *,
                room: str = "r1", at: int = T + HOUR) -> SettlementLine:  # fmt: skip
    return SettlementLine(reference, "refund", payment, room, order, amount, "USD", 0, at)


def order(order_id: str = "o1", payment: str | None = "pay_1", state: str = "paid", *,
          total: int = 5600, currency: str = "USD", refunded: int = 0, room: str = "r1",
          paid_at: int | None = T, times: tuple[int, ...] | None = None) -> BookOrder:  # fmt: skip
    if times is None:
        times = (T - HOUR, *(() if paid_at is None else (paid_at,)))
    return BookOrder(room, order_id, state, currency, total, refunded, payment, paid_at, times)


def host_refund(refund_id: str, payment: str = "pay_1", amount: int = 1000, *,
                order_id: str = "o1", at: int = T + HOUR) -> BookRefund:  # fmt: skip
    return BookRefund("r1", refund_id, order_id, payment, amount, "USD", at)


def books(*orders: BookOrder, refunds: tuple[BookRefund, ...] = ()) -> Books:
    return Books({(o.room, o.order): o for o in orders},
                 {(r.room, r.refund_id): r for r in refunds})  # fmt: skip


def found(lines: list[SettlementLine], redis: Books, ledger: Books | None = None,
          nearby: tuple[SettlementLine, ...] = ()) -> list[Discrepancy]:  # fmt: skip
    """The exceptions, the ledger caught up with Redis unless told otherwise."""
    return compare(Inputs(DAY, lines, nearby, redis, redis if ledger is None else ledger))


def summary(items: list[Discrepancy]) -> list[tuple[str, str, str]]:
    """(class, what it is about, remedy) of each exception, checking its id on the way."""
    for item in items:
        assert item.id == f"{item.cls}:{item.room}:{item.thing}@2026-12-07"
    return [(item.cls, item.thing, item.remedy) for item in items]


def unpaid(order_id: str = "o3", state: str = "pending_payment") -> BookOrder:
    return order(order_id, None, state, paid_at=None)


def test_a_day_that_adds_up_is_clean() -> None:
    """Paid orders with their charges; a host's refund and an automatic refund (a second
    payment of an order, given back in full, under the provider's own id) on both sides."""
    paid = order("o1", "pay_1", "partially_refunded", refunded=1000)
    automatic = BookRefund("r1", "re_provider_9", "o2", "pay_2b", 5600, "USD", T + HOUR)
    lines = [charge("pay_1"), charge("pay_2", "o2"), charge("pay_2b", "o2"),
             refund_line("rf-1", "pay_1", 1000),
             refund_line("auto-pay_2b", "pay_2b", 5600, "o2")]  # fmt: skip
    redis = books(paid, order("o2", "pay_2"), unpaid(), refunds=(host_refund("rf-1"), automatic))
    assert found(lines, redis) == []


NOT_PAID_OUT = books(order(refunded=1000, state="partially_refunded"),
                     refunds=(host_refund("rf-1"),))  # fmt: skip
CASES = {
    "a lost callback: apply it": (
        [charge("pay_9", "o3")], books(unpaid()),
        [("paid_without_order", "pay_9", APPLY_PAYMENT)]),
    "no order at all: refund it": (
        [charge("pay_9", "o404")], books(),
        [("paid_without_order", "pay_9", REFUND_CHARGE)]),
    "a paid order the provider never charged": (
        [], books(order()),
        [("order_without_charge", "o1", ACKNOWLEDGE)]),
    "an unpaid order charged another amount: refund": (
        [charge("pay_9", "o3", 5000)], books(unpaid(state="expired")),
        [("amount_mismatch", "pay_9", REFUND_CHARGE)]),
    "the paid order's own charge at another amount: a person looks": (
        [charge("pay_1", amount=5000)], books(order()),
        [("amount_mismatch", "pay_1", ACKNOWLEDGE)]),
    "another currency: refund": (
        [charge("pay_9", "o3", currency="EUR")], books(unpaid()),
        [("currency_mismatch", "pay_9", REFUND_CHARGE)]),
    "a second charge of a paid order": (
        [charge("pay_1"), charge("pay_1b", at=T + 60_000)], books(order()),
        [("duplicate_charge", "pay_1b", APPLY_PAYMENT)]),
    "two lost callbacks of one order: the first pays it": (
        [charge("pay_8", "o3", at=T + 1), charge("pay_7", "o3", at=T)], books(unpaid()),
        [("paid_without_order", "pay_7", APPLY_PAYMENT),
         ("duplicate_charge", "pay_8", APPLY_PAYMENT)]),
    "a host's refund never paid out": (
        [charge("pay_1")], NOT_PAID_OUT,
        [("refund_missing_at_provider", "rf-1", PAY_OUT_REFUND)]),
    "a refund made at the provider only": (
        [charge("pay_1"), refund_line("re_x", "pay_1", 700)], books(order()),
        [("refund_missing_in_ledger", "re_x", RECORD_REFUND)]),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_class_is_found_with_its_remedy(case: str) -> None:
    lines, redis, expected = CASES[case]
    assert summary(found(lines, redis)) == expected


def test_the_days_either_side_are_matched_but_not_reported() -> None:
    """A charge at 23:59 confirmed after midnight, a refund paid out the next morning: no
    exception. The neighbours' own strays belong to their own days."""
    late = order("o1", "pay_1", paid_at=day_bounds(DAY)[1] - 1)
    recorded = host_refund("rf-1", at=day_bounds(DAY)[1] - 5)
    yesterday = charge("pay_1", at=day_bounds(DAY)[0] - 1)
    tomorrow = refund_line("rf-1", "pay_1", 1000, at=day_bounds(DAY)[1] + HOUR)
    stray = charge("pay_77", "o77", at=day_bounds(DAY)[1] + HOUR)
    assert found([], books(late, refunds=(recorded,)), nearby=(yesterday, tomorrow, stray)) == []


def test_a_second_charge_the_day_after_is_a_duplicate() -> None:
    """The order was paid (and charged) the day before: today's charge for it is a second one."""
    yesterday = T - 86_400_000
    paid = order(paid_at=yesterday, times=(yesterday,))
    items = found([charge("pay_1b")], books(paid), nearby=(charge("pay_1", at=yesterday),))
    assert summary(items) == [("duplicate_charge", "pay_1b", APPLY_PAYMENT)]


def test_a_charge_refunded_in_full_is_no_duplicate() -> None:
    lines = [charge("pay_1"), charge("pay_1b"), refund_line("recon-pay_1b", "pay_1b", 5600)]
    refunded = BookRefund("r1", "recon-pay_1b", "o1", "pay_1b", 5600, "USD", T + HOUR)
    assert found(lines, books(order(), refunds=(refunded,))) == []


def test_the_ledger_behind_redis_is_reported_and_waited_for() -> None:
    redis = books(order(), order("o2", "pay_2", "paid", room="r1"))
    ledger = books(unpaid("o1"))  # and o2 not written yet
    items = found([charge("pay_1"), charge("pay_2", "o2")], redis, ledger)
    assert summary(items) == [
        ("ledger_behind_redis", "o1", WAIT),
        ("ledger_behind_redis", "o2", WAIT),
    ]
    assert [(i.fixable, dict(i.detail)["ledger_state"]) for i in items] == [
        (False, "pending_payment"), (False, None),
    ]  # fmt: skip
    # An order Redis changed on another day is that day's business.
    days_ago = T - 2 * 86_400_000
    assert (
        found([], books(order("o3", "pay_3", paid_at=days_ago, times=(days_ago,))), books()) == []
    )


def test_an_exception_carries_the_amounts_of_both_sides() -> None:
    (item,) = found(
        [charge("pay_9", "o3", 5000)], books(order("o3", None, "expired", paid_at=None))
    )
    wire: dict[str, Any] = item.to_wire()
    assert {k: wire[k] for k in ("class", "reference", "room", "order", "payment",
                                 "provider_amount", "provider_currency", "books_amount",
                                 "books_currency", "remedy", "fixable")} == {
        "class": "amount_mismatch", "reference": "r1:pay_9", "room": "r1", "order": "o3",
        "payment": "pay_9", "provider_amount": 5000, "provider_currency": "USD",
        "books_amount": 5600, "books_currency": "USD", "remedy": REFUND_CHARGE, "fixable": True,
    }  # fmt: skip


def test_an_id_names_its_class_room_reference_and_day() -> None:
    assert parse_id("duplicate_charge:r-1:pay_1b@2026-12-07") == (
        "duplicate_charge", "r-1", "r-1:pay_1b", DAY,
    )  # fmt: skip
    malformed = [
        "duplicate_charge:r-1:pay_1b",
        "no_such_class:r-1:x@2026-12-07",
        "duplicate_charge:r-1:x@2026-13-40",
        "duplicate_charge:R1:x@2026-12-07",
    ]
    for bad in malformed:
        with pytest.raises(ProtocolError) as refused:
            parse_id(bad)
        assert refused.value.code == "invalid_field"


# ---- a show, one mismatch of each class, reconciled and fixed -----------------------------

# Nothing listens there: a payment made with it is charged, and its callback lost.
DEAD_CALLBACK = "http://127.0.0.1:9/api/payments/callback"
INJECTED = ("paid_without_order", "order_without_charge", "amount_mismatch",
            "currency_mismatch", "refund_missing_at_provider", "refund_missing_in_ledger",
            "duplicate_charge")  # fmt: skip


@dataclass
class Show:
    """A room whose day holds exactly one exception of each injected class."""

    engine: Engine
    room: str
    day: datetime.date
    expected: dict[str, str]  # class -> exception id
    orders: dict[str, str]  # buyer -> order id

    @property
    def node(self) -> Node:
        assert self.engine.node is not None
        return self.engine.node

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.node.ledger is not None
        assert self.node.ledger.pool is not None
        return self.node.ledger.pool

    @property
    def psp(self) -> SimulatedProvider:
        assert self.node.simulated is not None
        return self.node.simulated

    def remedies(self) -> Remedies:
        return Remedies(self.node.redis, self.pool, self.node.payments)

    async def report(self) -> Report:
        return await reconcile(self.node.redis, self.pool, self.psp, self.day, self.room)

    async def caught_up(self) -> Report:
        """The day's report once the ledger writer has copied what Redis holds."""
        reports: list[Report] = []

        async def settled() -> bool:
            reports.append(await self.report())
            return all(item.cls != "ledger_behind_redis" for item in reports[-1].items)

        await eventually(settled)
        return reports[-1]

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`livecart reconcile ARGS` in a process of its own, on this engine's Redis and ledger."""
        settings = self.engine.settings
        assert settings.redis_url is not None
        assert settings.database_url is not None
        where = ["--redis-url", settings.redis_url, "--database-url", settings.database_url]
        command = [sys.executable, "-m", "engine.cli", "reconcile", *args, *where]
        env = {**os.environ, "LIVECART_SECRET": SECRET}
        return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                       env=env, timeout=60, check=False)  # fmt: skip

    def identify(self, cls: str, thing: str) -> None:
        self.expected[cls] = f"{cls}:{self.room}:{thing}@{self.day.isoformat()}"


async def lost_callback(show: Show, order_id: str, amount: int = 5600,
                        currency: str = "USD") -> str:  # fmt: skip
    """A payment the buyer completes at the provider whose callback never reaches the engine."""
    payment = await show.psp.create_payment(show.room, order_id, amount, currency, DEAD_CALLBACK)
    assert (await show.psp.complete(payment.id, "succeeded"))["delivered"] is False
    return payment.id


async def mismatched_show(engine: Engine, room: str, viewer_factory: ViewerFactory) -> Show:
    """Nine buyers of one jacket (56.00 with shipping): two clean, seven with one mismatch
    each, as a provider and an engine can really disagree."""
    show = Show(engine, room, datetime.datetime.now(datetime.UTC).date(), {}, {})
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_product(**JACKET)
        sale = (await host.launch_sale("DJ-M", 20, price=5000))["id"]
        paid = ("ana", "ben", "dan", "gus", "hal", "ivy")
        for buyer in ("ana", "ben", "cid", "dan", "eve", "fay", "gus", "hal", "ivy"):
            order = await order_for(engine, viewer_factory, room, sale, buyer, paid=buyer in paid)
            show.orders[buyer] = order["id"]
        await host.refund(show.orders["ben"], "rf-ben", 1000)  # paid out: in both
        # cid paid at the provider; the engine never heard of it.
        show.identify("paid_without_order", await lost_callback(show, show.orders["cid"]))
        # dan's charge is missing from the provider's report.
        day_key = keys.psp_settlement(show.day.isoformat())
        for raw in await show.node.redis.lrange(day_key, 0, -1):
            if msgspec.json.decode(raw, type=SettlementLine).order == show.orders["dan"]:
                await show.node.redis.lrem(day_key, 1, raw)
        show.identify("order_without_charge", show.orders["dan"])
        # eve and fay were charged another amount, another currency.
        show.identify("amount_mismatch", await lost_callback(show, show.orders["eve"], 5000))
        show.identify("currency_mismatch",
                      await lost_callback(show, show.orders["fay"], currency="EUR"))  # fmt: skip
        # gus paid twice: the second callback lost.
        show.identify("duplicate_charge", await lost_callback(show, show.orders["gus"]))
        # hal's refund is recorded, and refused by the provider (down at that moment).
        hal_payment = (await show.node.orders.get(room, show.orders["hal"])).fields["payment"]
        await show.node.redis.hset(keys.psp_payment(hal_payment), "state", "created")
        with pytest.raises(LivecartClientError) as refused:
            await host.refund(show.orders["hal"], "rf-hal", 1500)
        assert refused.value.code == "psp_refused"
        await show.node.redis.hset(keys.psp_payment(hal_payment), "state", "succeeded")
        show.identify("refund_missing_at_provider", "rf-hal")
    # ivy was refunded 7.00 at the provider directly (its dashboard): the books never knew.
    ivy = await show.node.orders.get(room, show.orders["ivy"])
    await show.psp.record_line(SettlementLine(
        "re_dashboard_1", "refund", ivy.fields["payment"], room, ivy.id, 700, "USD", 0,
        int(time.time() * 1000),
    ))  # fmt: skip
    show.identify("refund_missing_in_ledger", "re_dashboard_1")
    return show


async def adjustments(show: Show) -> dict[str, dict[str, Any]]:
    async with show.pool.acquire() as connection:
        rows = await connection.fetch("SELECT * FROM adjustments WHERE room = $1", show.room)
    return {f"{r['class']}:{r['reference']}@{r['day'].isoformat()}": dict(r) for r in rows}


async def test_one_mismatch_of_each_class_is_reported_and_fixed_once(
    ledger_url: str, engine_factory: EngineFactory, room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    # ledger_url first: the engine stops before its database is dropped.
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    show = await mismatched_show(engine, await room_factory(), viewer_factory)
    report = await show.caught_up()
    assert {item.cls: item.id for item in report.open} == show.expected
    assert sorted(show.expected) == sorted(INJECTED)

    # The command says the same, and exits 1 while anything is open.
    listed = await show.cli("--date", show.day.isoformat(), "--room", show.room, "--json")
    assert listed.returncode == 1, listed.stderr
    wire = orjson.loads(listed.stdout)
    assert (wire["date"], wire["room"], wire["clean"]) == (show.day.isoformat(), show.room, False)
    assert {e["class"]: e["id"] for e in wire["exceptions"]} == show.expected
    assert {e["status"] for e in wire["exceptions"]} == {"open"}
    assert wire["counts"] == {**dict.fromkeys(CLASSES, 0), **dict.fromkeys(INJECTED, 1)}

    # Each fixed once: by the command, over HTTP, by the function.
    acknowledged = show.expected["order_without_charge"]
    fixed = await show.cli("fix", acknowledged, "--who", "ops-lin", "--why", "the PSP voided it")
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.startswith(f"fixed {acknowledged}: acknowledge"), fixed.stdout
    async with HostClient(engine.base_url, show.room, token(show.room, "host", "host-1")) as host:
        path = f"{host._room}/reconciliation/{show.expected['refund_missing_in_ledger']}/fix"
        answer = await host.call("POST", path, {"why": "refunded from the dashboard"})
        assert (answer["fixed"], answer["adjustment"]["who"]) == (True, "host-1")
    for cls in INJECTED:
        if cls not in ("order_without_charge", "refund_missing_in_ledger"):
            done = await show.remedies().fix(show.expected[cls], who="auditor", why=f"fix {cls}")
            assert done["fixed"] is True, cls

    # A second fix of each does nothing, and says so.
    lines_before = len(await show.psp.settlement(show.day))
    again = await show.cli("fix", acknowledged, "--why", "again")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already fixed: {acknowledged} by ops-lin"), again.stdout
    for cls in INJECTED:
        second = await show.remedies().fix(show.expected[cls], who="someone", why="again")
        assert (second["fixed"], second["adjustment"]["why"] != "again") == (False, True)
    assert len(await show.psp.settlement(show.day)) == lines_before

    # The day is clean: what was fixed is gone, what was acknowledged is resolved.
    clean = await show.caught_up()
    assert clean.open == []
    assert [item.id for item in clean.items] == [acknowledged]
    recorded = await adjustments(show)
    assert set(recorded) == set(show.expected.values())
    assert {(r["class"], r["remedy"], r["who"]) for r in recorded.values()} == {
        ("paid_without_order", APPLY_PAYMENT, "auditor"),
        ("order_without_charge", ACKNOWLEDGE, "ops-lin"),
        ("amount_mismatch", REFUND_CHARGE, "auditor"),
        ("currency_mismatch", REFUND_CHARGE, "auditor"),
        ("refund_missing_at_provider", PAY_OUT_REFUND, "auditor"),
        ("refund_missing_in_ledger", RECORD_REFUND, "host-1"),
        ("duplicate_charge", APPLY_PAYMENT, "auditor"),
    }
    assert recorded[acknowledged]["why"] == "the PSP voided it"
    outcome = {cls: orjson.loads(recorded[show.expected[cls]]["detail"])["outcome"]
               for cls in INJECTED}  # fmt: skip
    assert outcome["paid_without_order"] == {"outcome": "paid", "detail": "0"}
    assert outcome["duplicate_charge"] == {"outcome": "refund", "detail": "already_paid"}
    assert outcome["refund_missing_in_ledger"] == {
        "recorded": "order",
        "state": "partially_refunded",
    }
    # Through the engine's own paths: cid's order paid, ivy's refunded 7.00 of it.
    cid = await show.node.orders.get(show.room, show.orders["cid"])
    ivy = await show.node.orders.get(show.room, show.orders["ivy"])
    assert (cid.state.value, ivy.refunded) == ("paid", 700)
    assert clean.to_wire()["clean"] is True


async def test_the_routes_refuse_what_they_cannot_do(
    ledger_url: str, engine_factory: EngineFactory, engine: Engine, room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    room = await room_factory()
    today = datetime.datetime.now(datetime.UTC).date().isoformat()

    async def refusal(target: Engine, method: str, path: str, body: Any = None,
                      role: str = "host") -> tuple[int, str]:  # fmt: skip
        async with HostClient(target.base_url, room, token(room, role, f"{role}-1")) as client:
            with pytest.raises(LivecartClientError) as refused:
                await client.call(method, f"{client._room}/reconciliation{path}", body)
        return refused.value.status, refused.value.code

    assert await refusal(engine, "GET", f"?date={today}") == (409, "ledger_disabled")
    books = await engine_factory(ledger=True, database_url=ledger_url)
    assert await refusal(books, "GET", "?date=2026-13-01") == (400, "invalid_field")
    assert await refusal(books, "GET", f"?date={today}", role="moderator") == (403, "forbidden")
    unknown = f"paid_without_order:{room}:pay_nothing_here1@{today}"
    assert await refusal(books, "POST", f"/{unknown}/fix", {"why": "?"}) == (
        404, "exception_not_found",
    )  # fmt: skip
    elsewhere = f"paid_without_order:another-room:pay_nothing_here1@{today}"
    assert await refusal(books, "POST", f"/{elsewhere}/fix", {"why": "?"}) == (
        404, "exception_not_found",
    )  # fmt: skip
    assert await refusal(books, "POST", "/not-an-id/fix", {"why": "?"}) == (400, "invalid_field")
    for blank in ("", "   "):
        assert await refusal(books, "POST", f"/{unknown}/fix", {"why": blank}) == (
            400, "invalid_field",
        )  # fmt: skip

    # With the writer stopped, Redis runs ahead of the ledger: reported, and only waited for.
    assert books.node is not None
    assert books.node.ledger is not None
    assert books.node.ledger.writer is not None
    await books.node.ledger.writer.stop()
    async with HostClient(books.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_product(**JACKET)
        sale = (await host.launch_sale("DJ-M", 5, price=5000))["id"]
        order = await order_for(books, viewer_factory, room, sale, "ana")
        report = await host.call("GET", f"{host._room}/reconciliation?date={today}")
    behind = f"ledger_behind_redis:{room}:{order['id']}@{today}"
    assert [(e["id"], e["remedy"], e["fixable"]) for e in report["exceptions"]] == [
        (behind, WAIT, False)
    ]
    assert (report["clean"], report["counts"]["ledger_behind_redis"]) == (False, 1)
    assert await refusal(books, "POST", f"/{behind}/fix", {"why": "?"}) == (
        409, "exception_not_fixable",
    )  # fmt: skip
