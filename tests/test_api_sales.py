"""engine.server.api.sales over real HTTP (launch, read, stop, top up, extend), and end to end:
announcements and stock reaching viewers on ticks, grabs, top-ups and stops."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clients import HostClient, LivecartClientError, ShopperClient, ViewerClient
from engine.server.app import Engine
from tests.conftest import ADDRESS, EngineFactory, ViewerFactory, eventually, poll, token
from tests.test_api_catalog import (
    JACKET,
    failed,
    host_token,
    new_room_id,
    next_entry,
    next_stock,
    ok,
    route_id,
    send,
)

SALE_FIELDS = {
    "id", "sku", "product", "title", "price", "currency", "limit", "hold_ms", "allotment",
    "topups", "starts_at", "ends_at", "created_at", "available", "reserved", "sold", "units",
    "state", "waiting", "private",
}  # fmt: skip
HOST_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/sales", {"sku": "DJ-M", "allotment": 5}),
    ("POST", "/sales/s1/stop", None),
    ("POST", "/sales/s1/topup", {"units": 5}),
    ("POST", "/sales/s1/extend", {"seconds": 60}),
]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def seller(host: HostClient) -> HostClient:
    """The `room`'s host, with product p1 (SKUs DJ-S at 4900 and DJ-M at 5200) created."""
    await host.create_product(**JACKET)
    return host


async def launch(http: httpx.AsyncClient, room: str, **terms: Any) -> dict[str, Any]:
    body = {"sku": "DJ-M", "allotment": 5, **terms}
    sale: dict[str, Any] = ok(
        await send(http, "POST", f"/api/rooms/{room}/sales", host_token(room), body), 201
    )
    return sale


async def get_sale(http: httpx.AsyncClient, room: str, sale_id: str = "s1") -> dict[str, Any]:
    sale: dict[str, Any] = ok(await http.get(f"/api/rooms/{room}/sales/{sale_id}"))
    return sale


async def control(
    http: httpx.AsyncClient, room: str, sale_id: str, action: str, body: Any = None
) -> httpx.Response:
    path = f"/api/rooms/{room}/sales/{sale_id}/{action}"
    return await send(http, "POST", path, host_token(room), body)


# ---- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", HOST_ROUTES, ids=route_id)
async def test_host_routes_refuse_other_callers(
    http: httpx.AsyncClient, seller: HostClient, room: str, route: tuple[str, str, Any]
) -> None:
    method, path, body = route
    before = await launch(http, room)
    url = f"/api/rooms/{room}{path}"
    failed(await send(http, method, url, None, body), 401, "auth_required")
    failed(await send(http, method, url, "not-a-token", body), 401, "token_invalid")
    other = token(new_room_id(), "host", "host-1")
    failed(await send(http, method, url, other, body), 401, "token_wrong_room")
    for role in ("viewer", "moderator"):
        error = failed(await send(http, method, url, token(room, role), body), 403, "forbidden")
        assert error["details"] == {"needs": ["host"]}
    # Nothing changed.
    assert ok(await http.get(f"/api/rooms/{room}/sales")) == {"sales": [before]}


async def test_read_routes_are_public(
    http: httpx.AsyncClient, seller: HostClient, room: str
) -> None:
    sale = await launch(http, room, countdown_s=600)  # scheduled: nothing changes meanwhile
    for tok in (None, token(room, "viewer"), token(room, "moderator")):
        assert ok(await send(http, "GET", f"/api/rooms/{room}/sales", tok)) == {"sales": [sale]}
        assert ok(await send(http, "GET", f"/api/rooms/{room}/sales/s1", tok)) == sale


@pytest.mark.parametrize(
    "route", [*HOST_ROUTES, ("GET", "/sales", None), ("GET", "/sales/s1", None)], ids=route_id
)
async def test_bad_room_id_is_400(http: httpx.AsyncClient, route: tuple[str, str, Any]) -> None:
    method, path, body = route
    response = await send(http, method, f"/api/rooms/-bad-{path}", host_token("x"), body)
    assert failed(response, 400, "invalid_field")["details"] == {"field": "room"}


# ---- launch and read ----------------------------------------------------------------------


async def test_launch_sale_with_defaults(
    http: httpx.AsyncClient, seller: HostClient, room: str
) -> None:
    before = now_ms()
    sale = await launch(http, room, allotment=25)
    assert set(sale) == SALE_FIELDS
    assert before - 2000 <= sale["created_at"] <= now_ms() + 2000
    assert sale == {
        "id": "s1",
        "sku": "DJ-M",
        "product": "p1",
        "title": "Denim jacket (M)",
        "price": 5200,
        "currency": "USD",
        "limit": 1,
        "hold_ms": 300_000,
        "allotment": 25,
        "topups": 0,
        "starts_at": sale["created_at"],
        "ends_at": sale["created_at"] + 600_000,
        "created_at": sale["created_at"],
        "available": 25,
        "reserved": 0,
        "sold": 0,
        "units": 25,
        "state": "live",
        "waiting": 0,
        "private": None,
    }
    assert await get_sale(http, room) == sale


async def test_launch_sale_with_every_term(
    http: httpx.AsyncClient, seller: HostClient, room: str
) -> None:
    sale = await launch(http, room, sku="DJ-S", allotment=3, price=3900, per_user_limit=2,
                        countdown_s=90, duration_s=300, hold_s=45)  # fmt: skip
    assert (sale["id"], sale["sku"], sale["title"]) == ("s1", "DJ-S", "Denim jacket (S)")
    assert (sale["price"], sale["limit"], sale["hold_ms"]) == (3900, 2, 45_000)
    assert sale["starts_at"] == sale["created_at"] + 90_000
    assert sale["ends_at"] == sale["starts_at"] + 300_000
    assert sale["state"] == "scheduled"
    second = await launch(http, room)
    assert second["id"] == "s2"


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"allotment": 0}, "allotment"),
        ({"allotment": 1_000_001}, "allotment"),
        ({"allotment": 2.5}, "allotment"),
        ({"price": 5201}, "price"),
        ({"price": -1}, "price"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"countdown_s": 86_401}, "countdown_s"),
        ({"duration_s": 0}, "duration_s"),
        ({"hold_s": 5}, "hold_s"),
        ({"sku": 42}, "sku"),
    ],
)
async def test_launch_sale_invalid(
    http: httpx.AsyncClient, seller: HostClient, room: str, terms: dict[str, Any], field: str
) -> None:
    body = {"sku": "DJ-M", "allotment": 5, **terms}
    response = await send(http, "POST", f"/api/rooms/{room}/sales", host_token(room), body)
    assert failed(response, 400, "invalid_field")["details"] == {"field": field}
    assert ok(await http.get(f"/api/rooms/{room}/sales")) == {"sales": []}


async def test_launch_sale_errors(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    url = f"/api/rooms/{room}/sales"
    tok = host_token(room)
    response = await send(http, "POST", url, tok, {"sku": "NOPE", "allotment": 5})
    failed(response, 404, "sku_not_found")
    failed(await send(http, "POST", url, tok, raw=b"{sku"), 400, "bad_request")
    failed(await send(http, "POST", url, tok, ["DJ-M", 5]), 400, "bad_request")
    other = new_room_id()
    response = await send(http, "POST", f"/api/rooms/{other}/sales", host_token(other),
                          {"sku": "DJ-M", "allotment": 5})  # fmt: skip
    failed(response, 404, "room_not_found")
    assert ok(await http.get(url)) == {"sales": []}


async def test_list_sales(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    assert ok(await http.get(f"/api/rooms/{room}/sales")) == {"sales": []}
    made = [await launch(http, room, countdown_s=600) for _ in range(3)]
    assert ok(await http.get(f"/api/rooms/{room}/sales")) == {"sales": made}


async def test_the_list_leaves_private_sales_out_for_every_caller(
    http: httpx.AsyncClient, seller: HostClient, room: str
) -> None:
    """docs/api.md: the list is the room's flash sales; an auction's lot and a giveaway's
    prizes are read by id, with `private` naming their owner."""
    flash = await launch(http, room)
    auction = await seller.open_auction("DJ-S", 1000, 60)
    giveaway = await seller.open_giveaway("Lucky bag", "Jacket", prize_kind="product", sku="DJ-M")
    for tok in (None, token(room, "viewer"), host_token(room)):
        listed = ok(await send(http, "GET", f"/api/rooms/{room}/sales", tok))
        assert [s["id"] for s in listed["sales"]] == [flash["id"]]
    lot = await get_sale(http, room, auction["sale"])
    assert (lot["private"], lot["units"]) == (f"auction:{auction['id']}", 1)
    assert await seller.sales() == [await get_sale(http, room, flash["id"])]  # the SDK too
    [prize_id] = {"s1", "s2", "s3"} - {flash["id"], auction["sale"]}
    prize = await get_sale(http, room, prize_id)
    assert prize["private"] == f"giveaway:{giveaway['id']}"


async def test_read_errors(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    failed(await http.get(f"/api/rooms/{new_room_id()}/sales"), 404, "room_not_found")
    failed(await http.get(f"/api/rooms/{room}/sales/s1"), 404, "sale_not_found")
    for bad in ("1", "S1", "p1", "s1x"):
        response = await http.get(f"/api/rooms/{room}/sales/{bad}")
        assert failed(response, 400, "invalid_field")["details"] == {"field": "sale"}


# ---- host controls ------------------------------------------------------------------------


async def test_top_up(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    created = await launch(http, room, allotment=5)
    sale = ok(await control(http, room, "s1", "topup", {"units": 7}))
    assert sale == {**created, "topups": 7, "available": 12, "units": 12}
    assert await get_sale(http, room) == sale


async def test_extend(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    created = await launch(http, room)
    sale = ok(await control(http, room, "s1", "extend", {"seconds": 90}))
    assert sale == {**created, "ends_at": created["ends_at"] + 90_000}
    assert await get_sale(http, room) == sale


async def test_stop(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    created = await launch(http, room)
    before = now_ms()
    sale = ok(await control(http, room, "s1", "stop"))
    assert before - 2000 <= sale["ends_at"] <= now_ms() + 2000
    assert sale == {**created, "ends_at": sale["ends_at"], "state": "ended"}
    assert await get_sale(http, room) == sale


@pytest.mark.parametrize(
    ("action", "body"), [("stop", None), ("topup", {"units": 1}), ("extend", {"seconds": 1})]
)
async def test_controls_after_a_stop_are_409(
    http: httpx.AsyncClient, seller: HostClient, room: str, action: str, body: Any
) -> None:
    await launch(http, room)
    stopped = ok(await control(http, room, "s1", "stop"))
    failed(await control(http, room, "s1", action, body), 409, "sale_ended")
    assert await get_sale(http, room) == stopped


async def test_controls_after_the_natural_end_are_409(
    http: httpx.AsyncClient, seller: HostClient, room: str
) -> None:
    created = await launch(http, room, duration_s=1)
    ended = await poll(lambda: get_sale(http, room), lambda s: s["state"] == "ended")
    assert ended == {**created, "state": "ended"}
    for action, body in (("stop", None), ("topup", {"units": 1}), ("extend", {"seconds": 60})):
        failed(await control(http, room, "s1", action, body), 409, "sale_ended")
    assert await get_sale(http, room) == ended


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"hold_s": None}, "hold_s"),
        ({"price": "100"}, "price"),
        ({"price": None}, "price"),
        ({"per_user_limit": True}, "per_user_limit"),
        ({"countdown_s": 1.0}, "countdown_s"),
        ({"allotment": None}, "allotment"),
    ],
)
async def test_launch_sale_refuses_wrong_types(
    http: httpx.AsyncClient, seller: HostClient, room: str, terms: dict[str, Any], field: str
) -> None:
    body = {"sku": "DJ-M", "allotment": 5, **terms}
    response = await send(http, "POST", f"/api/rooms/{room}/sales", host_token(room), body)
    assert failed(response, 400, "invalid_field")["details"] == {"field": field}
    assert ok(await http.get(f"/api/rooms/{room}/sales")) == {"sales": []}


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("topup", {"units": True}, "units"),
        ("topup", {"units": None}, "units"),
        ("extend", {"seconds": [60]}, "seconds"),
        ("topup", {}, "units"),
        ("topup", {"units": 0}, "units"),
        ("topup", {"units": 1_000_001}, "units"),
        ("topup", {"units": "5"}, "units"),
        ("extend", {}, "seconds"),
        ("extend", {"seconds": 0}, "seconds"),
        ("extend", {"seconds": 604_801}, "seconds"),
        ("extend", {"seconds": 1.5}, "seconds"),
    ],
)
@pytest.mark.usefixtures("seller")
async def test_controls_validate(
    http: httpx.AsyncClient, room: str, action: str, body: Any, field: str
) -> None:
    created = await launch(http, room, countdown_s=600)
    error = failed(await control(http, room, "s1", action, body), 400, "invalid_field")
    assert error["details"] == {"field": field}
    assert await get_sale(http, room) == created


@pytest.mark.parametrize(("action", "body"), [("topup", [7]), ("extend", "60")])
@pytest.mark.usefixtures("seller")
async def test_controls_refuse_a_body_that_is_not_an_object(
    http: httpx.AsyncClient, room: str, action: str, body: Any
) -> None:
    created = await launch(http, room, countdown_s=600)
    failed(await control(http, room, "s1", action, body), 400, "bad_request")
    assert await get_sale(http, room) == created


@pytest.mark.parametrize(
    ("action", "body"), [("stop", None), ("topup", {"units": 1}), ("extend", {"seconds": 1})]
)
async def test_controls_unknown_and_bad_sale(
    http: httpx.AsyncClient, seller: HostClient, room: str, action: str, body: Any
) -> None:
    failed(await control(http, room, "s4", action, body), 404, "sale_not_found")
    error = failed(await control(http, room, "sale4", action, body), 400, "invalid_field")
    assert error["details"] == {"field": "sale"}


async def test_controls_bad_body(http: httpx.AsyncClient, seller: HostClient, room: str) -> None:
    await launch(http, room)
    for action in ("topup", "extend"):
        path = f"/api/rooms/{room}/sales/s1/{action}"
        failed(await send(http, "POST", path, host_token(room), raw=b"{units"), 400, "bad_request")


async def test_host_client_sale_methods(seller: HostClient) -> None:
    sale = await seller.launch_sale("DJ-S", 4, price=4500, per_user_limit=2)
    assert (sale["id"], sale["price"], sale["limit"], sale["available"]) == ("s1", 4500, 2, 4)
    assert await seller.sale("s1") == sale
    assert [s["id"] for s in await seller.sales()] == ["s1"]
    assert (await seller.top_up("s1", 6))["available"] == 10
    assert (await seller.extend("s1", 60))["ends_at"] == sale["ends_at"] + 60_000
    assert (await seller.stop_sale("s1"))["state"] == "ended"
    with pytest.raises(LivecartClientError) as info:
        await seller.top_up("s1", 1)
    assert (info.value.code, info.value.status) == ("sale_ended", 409)
    with pytest.raises(LivecartClientError) as info:
        await seller.launch_sale("DJ-XL", 1)
    assert (info.value.code, info.value.status) == ("sku_not_found", 404)


# ---- end to end: sales reaching viewers ---------------------------------------------------

STOCK_KEYS = ("available", "reserved", "sold", "units", "state", "waiting")


def stock_seen(viewer: ViewerClient, sale_id: str) -> dict[str, Any]:
    """The sale's stock as the viewer knows it from its welcome and ticks."""
    sale = viewer.sales.get(sale_id, {})
    return {key: sale.get(key) for key in STOCK_KEYS}


async def announced(viewer: ViewerClient, sale: dict[str, Any]) -> dict[str, Any]:
    """Wait for the sale's first stock on `viewer`'s ticks; return that stock."""
    _, stock = await next_stock(viewer, sale["id"])
    return stock


async def test_launch_reaches_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    assert viewer.welcome["sales"] == []
    sale = await seller.launch_sale("DJ-M", 5, price=4000, per_user_limit=2)

    tick, entry = await next_entry(viewer, "sale_announced", "s1")
    assert entry["ts"] == int(entry["id"].split("-")[0])
    assert {k: v for k, v in entry.items() if k not in {"id", "ts"}} == {
        "kind": "sale_announced",
        "ref": "s1",
        "sale": "s1",
        "sku": "DJ-M",
        "product": "p1",
        "title": "Denim jacket (M)",
        "price": 4000,
        "currency": "USD",
        "limit": 2,
        "hold_ms": 300_000,
        "starts_at": sale["starts_at"],
        "ends_at": sale["ends_at"],
        "server_time": sale["created_at"],
        "allotment": 5,
    }
    stock_tick, stock = await next_stock(viewer, "s1")
    assert stock_tick["seq"] > tick["seq"]
    assert stock == {
        "available": 5,
        "reserved": 0,
        "sold": 0,
        "units": 5,
        "state": "live",
        "waiting": 0,
    }
    assert viewer.sales["s1"]["title"] == "Denim jacket (M)"
    assert viewer.sales["s1"]["price"] == 4000
    assert viewer.sales["s1"]["state"] == "live"


async def test_scheduled_sale_reaches_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    sale = await seller.launch_sale("DJ-M", 5, countdown_s=3600)
    assert await announced(viewer, sale) == {
        "available": 5, "reserved": 0, "sold": 0, "units": 5, "state": "scheduled",
        "waiting": 0,
    }  # fmt: skip
    answer = await viewer.grab("s1")
    assert answer == {"status": "not_started", "starts_at": sale["starts_at"], "replayed": False}
    assert (await seller.sale("s1"))["available"] == 5


async def test_grab_drops_stock_for_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    watcher = await viewer_factory(room)
    buyer = await viewer_factory(room, user="buyer-1")
    sale = await seller.launch_sale("DJ-M", 3)
    await announced(watcher, sale)

    answer = await buyer.grab("s1")
    assert answer["status"] == "reserved"
    assert answer["reservation"] == "s1.1"
    assert (answer["quantity"], answer["price"], answer["currency"]) == (1, 5200, "USD")
    assert answer["replayed"] is False
    _, stock = await next_stock(watcher, "s1", lambda s: s["available"] == 2)
    assert stock == {
        "available": 2,
        "reserved": 1,
        "sold": 0,
        "units": 3,
        "state": "live",
        "waiting": 0,
    }
    stored = await seller.sale("s1")
    assert (stored["available"], stored["reserved"], stored["sold"]) == (2, 1, 0)
    await buyer.wait_for(lambda e: e.get("stock", {}).get("s1", {}).get("reserved") == 1)
    assert buyer.sales["s1"]["available"] == 2


async def test_sold_out_reaches_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    watcher = await viewer_factory(room)
    first = await viewer_factory(room, user="buyer-1")
    second = await viewer_factory(room, user="buyer-2")
    sale = await seller.launch_sale("DJ-M", 1)
    await announced(watcher, sale)
    assert (await first.grab("s1"))["status"] == "reserved"
    _, stock = await next_stock(watcher, "s1", lambda s: s["state"] == "sold_out")
    assert stock == {
        "available": 0,
        "reserved": 1,
        "sold": 0,
        "units": 1,
        "state": "sold_out",
        "waiting": 0,
    }
    assert (await second.grab("s1")) == {"status": "sold_out", "available": 0, "replayed": False}
    assert (await seller.sale("s1"))["state"] == "sold_out"


async def test_top_up_raises_available_for_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    buyer = await viewer_factory(room, user="buyer-1")
    sale = await seller.launch_sale("DJ-M", 1)
    await announced(viewer, sale)
    await buyer.grab("s1")
    await next_stock(viewer, "s1", lambda s: s["state"] == "sold_out")

    topped = await seller.top_up("s1", 4)
    assert (topped["topups"], topped["available"], topped["units"]) == (4, 4, 5)
    _, entry = await next_entry(viewer, "sale_updated", "s1")
    assert entry["units"] == 5
    assert entry["ends_at"] == sale["ends_at"]
    # The stock can come in the entry's tick, before it or after it.
    expected = {"available": 4, "reserved": 1, "sold": 0, "units": 5, "state": "live", "waiting": 0}
    await eventually(lambda: stock_seen(viewer, "s1") == expected)


async def test_stop_ends_the_sale_for_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    sale = await seller.launch_sale("DJ-M", 5)
    await announced(viewer, sale)

    stopped = await seller.stop_sale("s1")
    assert stopped["state"] == "ended"
    assert (await seller.sale("s1"))["state"] == "ended"
    _, entry = await next_entry(viewer, "sale_ended", "s1")
    assert (entry["ends_at"], entry["units"]) == (stopped["ends_at"], 5)
    expected = {
        "available": 5,
        "reserved": 0,
        "sold": 0,
        "units": 5,
        "state": "ended",
        "waiting": 0,
    }
    await eventually(lambda: stock_seen(viewer, "s1") == expected)
    assert (await viewer.grab("s1")) == {"status": "ended", "replayed": False}


async def test_the_clock_starts_and_ends_a_sale_for_viewers(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    buyer = await viewer_factory(room, user="buyer-1")
    sale = await seller.launch_sale("DJ-M", 5, countdown_s=1, duration_s=2)
    assert sale["state"] == "scheduled"
    assert (await announced(viewer, sale))["state"] == "scheduled"
    live = {"available": 5, "reserved": 0, "sold": 0, "units": 5, "state": "live", "waiting": 0}
    await eventually(lambda: stock_seen(viewer, "s1") == live)
    assert (await buyer.grab("s1"))["status"] == "reserved"
    ended = {"available": 4, "reserved": 1, "sold": 0, "units": 5, "state": "ended", "waiting": 0}
    await eventually(lambda: stock_seen(viewer, "s1") == ended)
    assert (await seller.sale("s1"))["state"] == "ended"


async def test_joiner_welcome_has_running_sales(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await seller.launch_sale("DJ-S", 2)
    await seller.stop_sale("s1")
    await seller.launch_sale("DJ-M", 5, countdown_s=600)
    first = await viewer_factory(room)  # a new feed loads the running sales
    assert first.welcome["sales"] == [await seller.sale("s2")]
    assert set(first.sales) == {"s2"}

    await seller.launch_sale("DJ-M", 7)
    await announced(first, {"id": "s3"})
    joiner = await viewer_factory(room)
    assert [s["id"] for s in joiner.welcome["sales"]] == ["s2", "s3"]
    assert joiner.welcome["sales"] == [await seller.sale("s2"), await seller.sale("s3")]


@pytest.mark.parametrize("change", ["launch", "extend", "top_up"])
async def test_joiner_welcome_right_after_a_sale_change(
    engine_factory: EngineFactory,
    seller: HostClient,
    room: str,
    viewer_factory: ViewerFactory,
    change: str,
) -> None:
    """A viewer who joins after a sale's announcement or update has been delivered, but
    before the feed's next stock read, still gets that running sale in its welcome. (A
    slow stock read makes the window wide enough to hit every time.)"""
    slow = await engine_factory(sync_ms=5000)
    if change != "launch":
        await seller.launch_sale("DJ-M", 5)
    first = await viewer_factory(room, target=slow)
    if change == "launch":
        await seller.launch_sale("DJ-M", 5)
        await next_entry(first, "sale_announced", "s1")
    elif change == "extend":
        await seller.extend("s1", 60)
        await next_entry(first, "sale_updated", "s1")
    else:
        await seller.top_up("s1", 3)
        await next_entry(first, "sale_updated", "s1")
    joiner = await viewer_factory(room, target=slow)
    assert [s["id"] for s in joiner.welcome["sales"]] == ["s1"]
    assert joiner.welcome["sales"] == [await seller.sale("s1")]


async def test_the_waitlist_length_is_in_the_sale_and_its_stock(
    seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    watcher = await viewer_factory(room)
    buyer = await viewer_factory(room, user="buyer-1")
    late = await viewer_factory(room, user="late-1")
    sale = await seller.launch_sale("DJ-M", 1)
    await announced(watcher, sale)
    assert (await buyer.grab("s1"))["status"] == "reserved"
    assert (await late.grab("s1"))["status"] == "sold_out"
    assert await late.join_waitlist("s1") == 1
    assert (await seller.sale("s1"))["waiting"] == 1
    assert [s["waiting"] for s in await seller.sales()] == [1]
    # The console's stock bar learns it from the ticks, like the other counters.
    await eventually(lambda: stock_seen(watcher, "s1")["waiting"] == 1)


async def test_my_reservations_lists_what_i_still_hold(
    http: httpx.AsyncClient, seller: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    """GET /reservations/mine: the token user's held units, in every sale of the room, until
    they are released, ordered or expired; someone else's are not listed."""
    first = await launch(http, room, per_user_limit=3)
    second = await launch(http, room, sku="DJ-S", per_user_limit=3)
    ana = await viewer_factory(room, user="ana")
    bo = await viewer_factory(room, user="bo")
    kept = await ana.grab(first["id"], 2)
    dropped = await ana.grab(second["id"])
    await bo.grab(first["id"])
    mine = f"/api/rooms/{room}/reservations/mine"
    ana_auth = {"Authorization": f"Bearer {token(room, 'viewer', 'ana')}"}
    held = ok(await http.get(mine, headers=ana_auth))["reservations"]
    assert [(r["id"], r["sale"], r["quantity"]) for r in held] == [
        (kept["reservation"], first["id"], 2),
        (dropped["reservation"], second["id"], 1),
    ]
    assert held[0]["expires_at"] == kept["expires_at"]
    await ana.release(dropped["reservation"])
    held = ok(await http.get(mine, headers=ana_auth))["reservations"]
    assert [r["id"] for r in held] == [kept["reservation"]]
    # Ordered: no longer held.
    async with ShopperClient(str(http.base_url), room, token(room, "viewer", "ana")) as shopper:
        await shopper.checkout([kept["reservation"]], address=ADDRESS,
                               contact={"email": "ana@example.com"})  # fmt: skip
    assert ok(await http.get(mine, headers=ana_auth)) == {"reservations": []}
    # bo sees only his; a reader without a token is refused.
    held = ok(
        await http.get(mine, headers={"Authorization": f"Bearer {token(room, 'viewer', 'bo')}"})
    )
    assert [r["sale"] for r in held["reservations"]] == [first["id"]]
    assert (await http.get(mine)).status_code == 401
