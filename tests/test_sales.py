"""engine.commerce.sales: the derived sale state, the terms a host sets, and the sale's storage
(create, read, list, and the host's top-up, extend and stop) on real Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.commerce.catalog import Catalog, ProductChanges, ProductTerms
from engine.commerce.sales import (
    DEFAULT_DURATION_S,
    DEFAULT_HOLD_S,
    MAX_COUNTDOWN_S,
    MAX_DURATION_S,
    MAX_HOLD_S,
    MAX_PER_USER,
    MAX_UNITS,
    MIN_HOLD_S,
    Extension,
    Sale,
    SaleState,
    SaleStore,
    SaleTerms,
    TopUp,
    check_sale_id,
    sale_state,
)
from engine.commerce.stock import GrabRequest, Stock
from engine.core.errors import ConflictError, LivecartError, NotFoundError, ProtocolError
from engine.store import keys
from engine.store.redis_client import stream_rows
from engine.store.roomlog import Entry, RoomLog
from engine.store.scripts import Scripts
from tests.conftest import decoded

AT = 1_900_000_000_000  # a pinned clock, ms
WIRE_FIELDS = {
    "id", "sku", "product", "title", "price", "currency", "limit", "hold_ms", "allotment",
    "topups", "starts_at", "ends_at", "created_at", "available", "reserved", "sold", "units",
    "state", "waiting", "private",
}  # fmt: skip


# ---- sale_state ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "available", "state"),
    [
        (0, 5, SaleState.SCHEDULED),
        (999, 5, SaleState.SCHEDULED),
        (999, 0, SaleState.SCHEDULED),  # no stock yet is still "not started"
        (1000, 5, SaleState.LIVE),
        (1000, 1, SaleState.LIVE),
        (1000, 0, SaleState.SOLD_OUT),
        (1500, -1, SaleState.SOLD_OUT),
        (1999, 1, SaleState.LIVE),
        (1999, 0, SaleState.SOLD_OUT),
        (2000, 5, SaleState.ENDED),
        (2000, 0, SaleState.ENDED),  # ended wins over sold out
        (2001, 0, SaleState.ENDED),
        (10**13, 5, SaleState.ENDED),
    ],
)
def test_sale_state_table(now: int, available: int, state: SaleState) -> None:
    assert sale_state(now, 1000, 2000, available) is state


def test_sale_state_values() -> None:
    assert [s.value for s in SaleState] == ["scheduled", "live", "sold_out", "ended"]


def make_sale(**fields: Any) -> Sale:
    values: dict[str, Any] = {
        "id": "s1", "sku": "A", "product": "p1", "title": "T", "price": 100, "currency": "USD",
        "limit": 1, "hold_ms": 300_000, "allotment": 10, "topups": 5, "available": 12,
        "reserved": 2, "sold": 1, "created_at": 500, "starts_at": 1000, "ends_at": 2000,
    }  # fmt: skip
    values.update(fields)
    return Sale(**values)


def test_sale_state_stock_and_wire() -> None:
    sale = make_sale()
    assert sale.units == 15
    assert sale.state(999) is SaleState.SCHEDULED
    assert sale.state(1000) is SaleState.LIVE
    assert sale.state(2000) is SaleState.ENDED
    assert make_sale(available=0).state(1500) is SaleState.SOLD_OUT
    assert sale.stock(1500) == {
        "available": 12, "reserved": 2, "sold": 1, "units": 15, "state": "live",
        "waiting": 0,
    }  # fmt: skip
    wire = sale.to_wire(2500)
    assert set(wire) == WIRE_FIELDS
    assert wire["state"] == "ended"
    assert wire["units"] == 15


@pytest.mark.parametrize("value", ["s1", "s0", "s123456789"])
def test_check_sale_id_accepted(value: str) -> None:
    assert check_sale_id(value) == value


@pytest.mark.parametrize("value", ["S1", "s", "s1234567890", "p1", "1", "s-1", "", None, 1])
def test_check_sale_id_rejected(value: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        check_sale_id(value)
    assert (info.value.code, info.value.details) == ("invalid_field", {"field": "sale"})


# ---- SaleStore on real Redis ---------------------------------------------------------------


@pytest.fixture
async def scripts(redis: aioredis.Redis) -> Scripts:
    loaded = Scripts()
    await loaded.load(redis)
    return loaded


@pytest.fixture
def catalog(redis: aioredis.Redis, scripts: Scripts) -> Catalog:
    return Catalog(redis, scripts, 1000)


@pytest.fixture
def sales(redis: aioredis.Redis, scripts: Scripts, catalog: Catalog) -> SaleStore:
    return SaleStore(redis, scripts, catalog, 1000, 10000)


@pytest.fixture
async def room(redis: aioredis.Redis, catalog: Catalog) -> AsyncIterator[str]:
    """A fresh room with one product p1: SKU TEE-M (attrs) and SKU TEE-PLAIN (none)."""
    room = f"s-{secrets.token_hex(5)}"
    await catalog.create(
        room,
        ProductTerms(
            title="Tee",
            currency="EUR",
            skus=[
                {"sku": "TEE-M", "list_price": 2500, "attrs": {"size": "M", "colour": "Blue"}},
                {"sku": "TEE-PLAIN", "list_price": 900},
            ],
        ),
    )
    yield room
    found = [k async for k in redis.scan_iter(match=keys.room_keys_pattern(room))]
    if found:
        await redis.delete(*found)


async def log_entries(redis: aioredis.Redis, room: str, kind_prefix: str = "sale_") -> list[Entry]:
    entries, complete = await RoomLog(redis).after(room, "0-0", 1000)
    assert complete
    return [e for e in entries if e.kind.startswith(kind_prefix)]


async def outbox(redis: aioredis.Redis, room: str) -> list[dict[str, str]]:
    rows = stream_rows(await redis.xrange(keys.outbox(room)))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]


async def refused(call: Any) -> LivecartError:
    with pytest.raises(LivecartError) as info:
        await call
    return info.value


def terms(**fields: Any) -> dict[str, Any]:
    return {"sku": "TEE-M", "allotment": 10, **fields}


async def launch(sales: SaleStore, room: str, body: Any, *, at_ms: int | None = None) -> Sale:
    """Launch a sale from a JSON body, as POST .../sales does."""
    return await sales.create(room, await decoded(body, SaleTerms), at_ms=at_ms)


async def top_up(sales: SaleStore, room: str, body: Any) -> Sale:
    """Top up s1 from a JSON body, as POST .../sales/s1/topup does."""
    return await sales.top_up(room, "s1", (await decoded(body, TopUp)).units)


async def extend(sales: SaleStore, room: str, body: Any) -> Sale:
    """Extend s1 from a JSON body, as POST .../sales/s1/extend does."""
    seconds = (await decoded(body, Extension)).seconds
    return await sales.extend(room, "s1", seconds)


async def test_create_with_defaults(sales: SaleStore, room: str) -> None:
    sale = await launch(sales, room, terms(), at_ms=AT)
    assert sale == Sale(
        id="s1", sku="TEE-M", product="p1", title="Tee (M, Blue)", price=2500,
        currency="EUR", limit=1, hold_ms=DEFAULT_HOLD_S * 1000, allotment=10, topups=0,
        available=10, reserved=0, sold=0, created_at=AT, starts_at=AT,
        ends_at=AT + DEFAULT_DURATION_S * 1000, stopped_at=None,
    )  # fmt: skip
    assert sale.state(AT) is SaleState.LIVE
    assert await sales.get(room, "s1") == sale


async def test_create_with_every_term(sales: SaleStore, room: str) -> None:
    sale = await launch(
        sales,
        room,
        terms(sku="TEE-PLAIN", allotment=250, price=700, per_user_limit=3, countdown_s=30,
              duration_s=120, hold_s=60),
        at_ms=AT,
    )  # fmt: skip
    assert (sale.sku, sale.title, sale.price, sale.currency) == ("TEE-PLAIN", "Tee", 700, "EUR")
    assert (sale.allotment, sale.available, sale.limit, sale.hold_ms) == (250, 250, 3, 60_000)
    assert sale.created_at == AT
    assert sale.starts_at == AT + 30_000
    assert sale.ends_at == AT + 30_000 + 120_000
    assert sale.state(AT) is SaleState.SCHEDULED
    assert sale.state(AT + 30_000) is SaleState.LIVE
    assert sale.state(AT + 150_000) is SaleState.ENDED


async def test_create_uses_redis_time_without_a_pinned_clock(sales: SaleStore, room: str) -> None:
    before = int(time.time() * 1000)
    sale = await launch(sales, room, terms(countdown_s=5, duration_s=60))
    after = int(time.time() * 1000)
    assert before - 1000 <= sale.created_at <= after + 1000
    assert sale.starts_at == sale.created_at + 5000
    assert sale.ends_at == sale.starts_at + 60_000
    assert sale.state() is SaleState.SCHEDULED


async def test_create_assigns_sequential_ids(sales: SaleStore, room: str) -> None:
    made = [await launch(sales, room, terms(), at_ms=AT + i) for i in range(3)]
    assert [s.id for s in made] == ["s1", "s2", "s3"]


async def test_announcement_entry(sales: SaleStore, room: str, redis: aioredis.Redis) -> None:
    sale = await launch(sales, room, terms(allotment=40, price=1999, countdown_s=10), at_ms=AT)
    [entry] = await log_entries(redis, room)
    assert (entry.kind, entry.ref) == ("sale_announced", "s1")
    assert entry.data == {
        "sale": "s1",
        "sku": "TEE-M",
        "product": "p1",
        "title": "Tee (M, Blue)",
        "price": 1999,
        "currency": "EUR",
        "limit": 1,
        "hold_ms": 300_000,
        "starts_at": AT + 10_000,
        "ends_at": AT + 10_000 + DEFAULT_DURATION_S * 1000,
        "server_time": AT,
        "allotment": 40,
    }
    assert entry.data["starts_at"] == sale.starts_at
    assert entry.data["ends_at"] == sale.ends_at
    assert await outbox(redis, room) == [
        {"type": "sale_created", "sale": "s1", "units": "40", "at": str(AT)}
    ]


async def test_announcement_keeps_large_prices_exact(
    sales: SaleStore, catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    car = ProductTerms(title="Car", currency="JPY", skus=[{"sku": "CAR", "list_price": 10**12}])
    await catalog.create(room, car)
    sale = await launch(sales, room, {"sku": "CAR", "allotment": MAX_UNITS}, at_ms=AT)
    assert sale.price == 10**12
    [entry] = await log_entries(redis, room)
    assert entry.data["price"] == 10**12
    assert entry.data["allotment"] == MAX_UNITS
    assert type(entry.data["price"]) is int


@pytest.mark.parametrize("body", [None, [], "TEE-M", ["TEE-M", 10]])
async def test_create_body_must_be_an_object(sales: SaleStore, room: str, body: Any) -> None:
    assert (await refused(launch(sales, room, body))).code == "bad_request"


@pytest.mark.parametrize("sku", [None, 5, ["TEE-M"]])
async def test_create_sku_must_be_text(sales: SaleStore, room: str, sku: Any) -> None:
    body = terms(sku=sku)
    if sku is None:
        del body["sku"]
    error = await refused(launch(sales, room, body))
    assert (error.code, error.details) == ("invalid_field", {"field": "sku"})


@pytest.mark.parametrize("sku", ["NOPE", "tee-m", ""])
async def test_create_unknown_sku(sales: SaleStore, room: str, sku: str) -> None:
    error = await refused(launch(sales, room, terms(sku=sku)))
    assert (type(error), error.code) == (NotFoundError, "sku_not_found")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allotment", None),
        ("allotment", 0),
        ("allotment", -5),
        ("allotment", MAX_UNITS + 1),
        ("allotment", 2.0),
        ("allotment", True),
        ("allotment", "10"),
        ("price", -1),
        ("price", 2501),  # above the SKU's list price
        ("price", 99.5),
        ("price", True),
        ("price", "2500"),
        ("per_user_limit", 0),
        ("per_user_limit", MAX_PER_USER + 1),
        ("per_user_limit", False),
        ("countdown_s", -1),
        ("countdown_s", MAX_COUNTDOWN_S + 1),
        ("countdown_s", 1.5),
        ("duration_s", 0),
        ("duration_s", MAX_DURATION_S + 1),
        ("duration_s", "60"),
        ("hold_s", MIN_HOLD_S - 1),
        ("hold_s", MAX_HOLD_S + 1),
        ("hold_s", None),
    ],
)
async def test_create_validates_terms(
    sales: SaleStore, room: str, redis: aioredis.Redis, field: str, value: Any
) -> None:
    body = terms(**{field: value})
    if value is None and field == "allotment":
        del body["allotment"]
    error = await refused(launch(sales, room, body))
    assert (type(error), error.code, error.details) == (ProtocolError, "invalid_field",
                                                         {"field": field})  # fmt: skip
    # Refused before anything was stored or an id was taken.
    assert await sales.list(room) == []
    assert await log_entries(redis, room) == []
    assert (await launch(sales, room, terms(), at_ms=AT)).id == "s1"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("allotment", 1, ("allotment", 1)),
        ("allotment", MAX_UNITS, ("allotment", MAX_UNITS)),
        ("price", 0, ("price", 0)),
        ("price", 2500, ("price", 2500)),
        ("per_user_limit", 1, ("limit", 1)),
        ("per_user_limit", MAX_PER_USER, ("limit", MAX_PER_USER)),
        ("countdown_s", 0, ("starts_at", AT)),
        ("countdown_s", MAX_COUNTDOWN_S, ("starts_at", AT + MAX_COUNTDOWN_S * 1000)),
        ("duration_s", 1, ("ends_at", AT + 1000)),
        ("duration_s", MAX_DURATION_S, ("ends_at", AT + MAX_DURATION_S * 1000)),
        ("hold_s", MIN_HOLD_S, ("hold_ms", MIN_HOLD_S * 1000)),
        ("hold_s", MAX_HOLD_S, ("hold_ms", MAX_HOLD_S * 1000)),
    ],
)
async def test_create_bounds_accepted(
    sales: SaleStore, room: str, field: str, value: int, expected: tuple[str, int]
) -> None:
    """Each bound is accepted; (attribute, value) is what the sale then holds."""
    sale = await launch(sales, room, terms(**{field: value}), at_ms=AT)
    attr, stored = expected
    assert getattr(sale, attr) == stored


async def test_price_bound_is_the_skus_list_price(sales: SaleStore, room: str) -> None:
    assert (await launch(sales, room, terms(sku="TEE-PLAIN"), at_ms=AT)).price == 900
    error = await refused(launch(sales, room, terms(sku="TEE-PLAIN", price=901)))
    assert (error.code, error.details) == ("invalid_field", {"field": "price"})


async def test_title_follows_the_catalog(sales: SaleStore, catalog: Catalog, room: str) -> None:
    await catalog.update(room, await catalog.get(room, "p1"), ProductChanges(title="Organic tee"))
    assert (await launch(sales, room, terms(), at_ms=AT)).title == "Organic tee (M, Blue)"
    assert (await launch(sales, room, terms(sku="TEE-PLAIN"), at_ms=AT)).title == "Organic tee"


async def test_get_unknown_and_bad_ids(sales: SaleStore, room: str) -> None:
    error = await refused(sales.get(room, "s1"))
    assert (type(error), error.code) == (NotFoundError, "sale_not_found")
    error = await refused(sales.get(room, "sale-1"))
    assert (error.code, error.details) == ("invalid_field", {"field": "sale"})


async def test_list_in_creation_order(sales: SaleStore, room: str) -> None:
    assert await sales.list(room) == []
    made = [await launch(sales, room, terms(), at_ms=AT + i) for i in range(12)]
    assert await sales.list(room) == made
    assert await sales.ids(room) == [f"s{i}" for i in range(1, 13)]


async def test_list_in_creation_order_within_one_millisecond(sales: SaleStore, room: str) -> None:
    made = [await launch(sales, room, terms(), at_ms=AT) for _ in range(12)]
    assert [s.id for s in await sales.list(room)] == [s.id for s in made]


# ---- adjust: top-up, extend, stop ----------------------------------------------------------


async def test_topup_adds_units(sales: SaleStore, room: str, redis: aioredis.Redis) -> None:
    created = await launch(sales, room, terms(allotment=10), at_ms=AT)
    sale = await sales.adjust(room, "s1", "topup", 5, at_ms=AT + 1000)
    assert (sale.allotment, sale.topups, sale.available, sale.units) == (10, 5, 15, 15)
    assert sale.ends_at == created.ends_at
    sale = await sales.adjust(room, "s1", "topup", 1, at_ms=AT + 2000)
    assert (sale.topups, sale.available, sale.units) == (6, 16, 16)
    entries = await log_entries(redis, room)
    assert [(e.kind, e.ref, e.data) for e in entries[1:]] == [
        ("sale_updated", "s1", {"sale": "s1", "ends_at": created.ends_at, "units": 15}),
        ("sale_updated", "s1", {"sale": "s1", "ends_at": created.ends_at, "units": 16}),
    ]
    assert (await outbox(redis, room))[1:] == [
        {"type": "sale_topup", "sale": "s1", "amount": "5", "at": str(AT + 1000)},
        {"type": "sale_topup", "sale": "s1", "amount": "1", "at": str(AT + 2000)},
    ]


async def test_extend_moves_the_end(sales: SaleStore, room: str, redis: aioredis.Redis) -> None:
    created = await launch(sales, room, terms(duration_s=60), at_ms=AT)
    sale = await sales.adjust(room, "s1", "extend", 30_000, at_ms=AT + 59_999)
    assert sale.ends_at == AT + 90_000
    assert sale.starts_at == created.starts_at
    assert (sale.available, sale.topups) == (10, 0)
    assert sale.state(AT + 60_000) is SaleState.LIVE
    [_, entry] = await log_entries(redis, room)
    assert (entry.kind, entry.data) == ("sale_updated", {"sale": "s1", "ends_at": AT + 90_000,
                                                         "units": 10})  # fmt: skip


async def test_stop_ends_now(sales: SaleStore, room: str, redis: aioredis.Redis) -> None:
    await launch(sales, room, terms(allotment=7), at_ms=AT)
    await sales.adjust(room, "s1", "topup", 3, at_ms=AT + 10)
    sale = await sales.adjust(room, "s1", "stop", at_ms=AT + 5000)
    assert sale.ends_at == AT + 5000
    assert sale.stopped_at == AT + 5000
    assert sale.state(AT + 5000) is SaleState.ENDED
    assert sale.available == 10  # stopping takes no stock away
    entry = (await log_entries(redis, room))[-1]
    assert (entry.kind, entry.ref) == ("sale_ended", "s1")
    assert entry.data == {"sale": "s1", "ends_at": AT + 5000, "units": 10}
    assert (await outbox(redis, room))[-1] == {
        "type": "sale_stop", "sale": "s1", "amount": "0", "at": str(AT + 5000),
    }  # fmt: skip


async def test_adjust_a_scheduled_sale(sales: SaleStore, room: str) -> None:
    await launch(sales, room, terms(countdown_s=60, duration_s=60), at_ms=AT)
    assert (await sales.adjust(room, "s1", "topup", 2, at_ms=AT + 1)).available == 12
    assert (await sales.adjust(room, "s1", "extend", 1000, at_ms=AT + 2)).ends_at == AT + 121_000
    stopped = await sales.adjust(room, "s1", "stop", at_ms=AT + 3)
    assert stopped.ends_at == AT + 3
    assert stopped.state(AT + 3) is SaleState.ENDED  # ends before it ever started


@pytest.mark.parametrize(("action", "amount"), [("topup", 5), ("extend", 60_000), ("stop", 0)])
async def test_adjust_after_the_end(
    sales: SaleStore, room: str, redis: aioredis.Redis, action: str, amount: int
) -> None:
    created = await launch(sales, room, terms(duration_s=60), at_ms=AT)
    # One millisecond before the end is still in time.
    await sales.adjust(room, "s1", "topup", 1, at_ms=created.ends_at - 1)
    before = await sales.get(room, "s1")
    entries = await log_entries(redis, room)
    for at in (created.ends_at, created.ends_at + 3_600_000):
        error = await refused(sales.adjust(room, "s1", action, amount, at_ms=at))
        assert (type(error), error.code, error.http_status) == (ConflictError, "sale_ended", 409)
    assert await sales.get(room, "s1") == before
    assert await log_entries(redis, room) == entries


@pytest.mark.parametrize(("action", "amount"), [("topup", 5), ("extend", 60_000), ("stop", 0)])
async def test_adjust_after_a_stop(sales: SaleStore, room: str, action: str, amount: int) -> None:
    await launch(sales, room, terms(), at_ms=AT)
    await sales.adjust(room, "s1", "stop", at_ms=AT + 100)
    error = await refused(sales.adjust(room, "s1", action, amount, at_ms=AT + 100))
    assert (type(error), error.code) == (ConflictError, "sale_ended")


async def test_host_controls_on_redis_time(sales: SaleStore, room: str) -> None:
    created = await launch(sales, room, terms(allotment=4, duration_s=60))
    assert (await top_up(sales, room, {"units": 6})).available == 10
    assert (await extend(sales, room, {"seconds": 30})).ends_at == created.ends_at + 30_000
    before = int(time.time() * 1000)
    stopped = await sales.stop(room, "s1")
    assert before - 1000 <= stopped.ends_at <= int(time.time() * 1000) + 1000
    assert stopped.stopped_at == stopped.ends_at
    assert stopped.state() is SaleState.ENDED
    for call in (sales.stop(room, "s1"), top_up(sales, room, {"units": 1}),
                 extend(sales, room, {"seconds": 1})):  # fmt: skip
        assert (await refused(call)).code == "sale_ended"


@pytest.mark.parametrize("action", ["topup", "extend", "stop"])
async def test_adjust_unknown_sale(sales: SaleStore, room: str, action: str) -> None:
    error = await refused(sales.adjust(room, "s9", action, 1, at_ms=AT))
    assert (type(error), error.code) == (NotFoundError, "sale_not_found")
    error = await refused(sales.adjust(room, "9", action, 1, at_ms=AT))
    assert (error.code, error.details) == ("invalid_field", {"field": "sale"})


@pytest.mark.parametrize(
    "body",
    [{}, {"units": 0}, {"units": MAX_UNITS + 1}, {"units": 1.0}, {"units": True},
     {"units": "3"}],
)  # fmt: skip
async def test_top_up_validates_units(sales: SaleStore, room: str, body: Any) -> None:
    await launch(sales, room, terms())
    error = await refused(top_up(sales, room, body))
    assert (error.code, error.details) == ("invalid_field", {"field": "units"})
    assert (await sales.get(room, "s1")).topups == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"seconds": 0}, {"seconds": MAX_DURATION_S + 1}, {"seconds": 1.5},
     {"seconds": False}, {"seconds": "60"}],
)  # fmt: skip
async def test_extend_validates_seconds(sales: SaleStore, room: str, body: Any) -> None:
    created = await launch(sales, room, terms())
    error = await refused(extend(sales, room, body))
    assert (error.code, error.details) == ("invalid_field", {"field": "seconds"})
    assert (await sales.get(room, "s1")).ends_at == created.ends_at


@pytest.mark.parametrize("body", [None, [3]])
async def test_top_up_and_extend_refuse_a_body_that_is_not_an_object(
    sales: SaleStore, room: str, body: Any
) -> None:
    created = await launch(sales, room, terms())
    for change in (top_up, extend):
        error = await refused(change(sales, room, body))
        assert error.code == "bad_request"
    assert await sales.get(room, "s1") == created


async def test_top_up_and_extend_limits(sales: SaleStore, room: str) -> None:
    created = await launch(sales, room, terms(allotment=1))
    assert (await top_up(sales, room, {"units": MAX_UNITS})).units == MAX_UNITS + 1
    extended = await extend(sales, room, {"seconds": MAX_DURATION_S})
    assert extended.ends_at == created.ends_at + MAX_DURATION_S * 1000


# ---- state from stock ----------------------------------------------------------------------


async def test_sold_out_then_topped_up_then_stopped(
    redis: aioredis.Redis, scripts: Scripts, sales: SaleStore, room: str
) -> None:
    stock = Stock(redis, scripts, outbox_maxlen=10000)
    await launch(sales, room, terms(allotment=2, per_user_limit=2), at_ms=AT)
    [answer] = await stock.grab_batch(room, "s1", [GrabRequest("u1", "r1", 2)], at_ms=AT + 1)
    assert answer.status == "reserved"
    sold_out = await sales.get(room, "s1")
    assert (sold_out.available, sold_out.reserved) == (0, 2)
    assert sold_out.state(AT + 2) is SaleState.SOLD_OUT
    assert sold_out.stock(AT + 2) == {
        "available": 0, "reserved": 2, "sold": 0, "units": 2, "state": "sold_out", "waiting": 0,
    }  # fmt: skip
    topped = await sales.adjust(room, "s1", "topup", 1, at_ms=AT + 3)
    assert topped.state(AT + 3) is SaleState.LIVE
    assert topped.stock(AT + 3)["units"] == 3
    [answer] = await stock.grab_batch(room, "s1", [GrabRequest("u2", "r1", 1)], at_ms=AT + 4)
    assert answer.status == "reserved"
    stopped = await sales.adjust(room, "s1", "stop", at_ms=AT + 5)
    assert (stopped.available, stopped.reserved) == (0, 3)
    assert stopped.state(AT + 5) is SaleState.ENDED  # ended wins over sold out


async def test_sale_hash_is_stored_as_text(
    sales: SaleStore, room: str, redis: aioredis.Redis
) -> None:
    await launch(sales, room, terms(), at_ms=AT)
    raw = await redis.hgetall(keys.sale(room, "s1"))
    assert orjson.loads(raw[b"price"]) == 2500
    assert raw[b"starts_at"] == str(AT).encode()
    assert raw[b"ends_at"] == str(AT + DEFAULT_DURATION_S * 1000).encode()
