"""engine.server.api.catalog over real HTTP (products, the run-of-show, the pinned product), and
end to end: the pinned product card reaching connected and joining viewers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from clients import HostClient, LivecartClientError, ViewerClient
from engine.server.app import Engine
from tests.conftest import ViewerFactory, poll, token

JACKET: dict[str, Any] = {
    "title": "Denim jacket",
    "description": "Raw selvedge.",
    "images": ["https://cdn.example/jacket.jpg"],
    "currency": "USD",
    "skus": [
        {"sku": "DJ-S", "list_price": 4900, "attrs": {"size": "S"}},
        {"sku": "DJ-M", "list_price": 5200, "attrs": {"size": "M"}},
    ],
}
BOOTS: dict[str, Any] = {
    "title": "Boots",
    "currency": "USD",
    "skus": [{"sku": "BOOT-42", "list_price": 12000}],
}

# Routes only a host token may call: (method, path after /api/rooms/{room}, body).
HOST_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/products", BOOTS),
    ("PATCH", "/products/p1", {"title": "Renamed"}),
    ("PUT", "/lineup", {"products": ["p1"]}),
    ("PUT", "/pinned-product", {"product_id": "p1"}),
    ("DELETE", "/pinned-product", None),
]


def route_id(route: tuple[str, str, Any]) -> str:
    return f"{route[0]} {route[1]}"


# ---- helpers (test_api_sales imports these) ------------------------------------------------


def wire(product_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The product a valid create body becomes, as the API returns it."""
    return {
        "id": product_id,
        "title": body["title"],
        "description": body.get("description", ""),
        "images": body.get("images", []),
        "currency": body["currency"],
        "skus": [{"attrs": {}, **sku} for sku in body["skus"]],
    }


async def send(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    tok: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> httpx.Response:
    """One request; `body` goes out as JSON, `raw` as it is."""
    headers = {"authorization": f"Bearer {tok}"} if tok else {}
    if raw is not None:
        return await http.request(method, path, headers=headers, content=raw)
    if body is None:
        return await http.request(method, path, headers=headers)
    return await http.request(method, path, headers=headers, json=body)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def failed(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error response of the documented shape; return its `error` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["retryable"] is False
    assert set(error) <= {"code", "message", "retryable", "details"}
    return error


def host_token(room: str) -> str:
    return token(room, "host", "host-1")


def new_room_id() -> str:
    return f"r-{secrets.token_hex(5)}"


def reader_state(viewer: ViewerClient) -> str:
    """Why a viewer may have stopped taking frames (its reader task's fate)."""
    task = viewer._task
    if task is None or not task.done():
        return "its reader is running"
    if task.cancelled():
        return "its reader was cancelled"
    return f"its reader stopped: {task.exception()!r}"


async def wait_tick(
    viewer: ViewerClient, predicate: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The next tick matching `predicate`; a short failure (no traceback) if none comes."""
    try:
        return await viewer.wait_for(lambda e: e.get("type") == "tick" and predicate(e))
    except TimeoutError:
        pytest.fail(
            f"no tick with {what} reached the viewer; {reader_state(viewer)}", pytrace=False
        )


async def next_entry(
    viewer: ViewerClient, kind: str, ref: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next tick carrying a `kind` entry (for `ref`), and that entry."""

    def match(entry: dict[str, Any]) -> bool:
        return entry["kind"] == kind and (ref is None or entry.get("ref") == ref)

    tick = await wait_tick(
        viewer,
        lambda e: any(match(x) for x in e.get("entries", [])),
        f"a {kind} entry" + (f" for {ref}" if ref else ""),
    )
    return tick, next(x for x in tick["entries"] if match(x))


async def next_stock(
    viewer: ViewerClient,
    sale_id: str,
    done: Callable[[dict[str, Any]], bool] = lambda stock: True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next tick carrying stock for `sale_id` that satisfies `done`, and that stock."""
    tick = await wait_tick(
        viewer,
        lambda e: sale_id in e.get("stock", {}) and done(e["stock"][sale_id]),
        f"the expected stock of {sale_id}",
    )
    stock: dict[str, Any] = tick["stock"][sale_id]
    return tick, stock


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


async def create(http: httpx.AsyncClient, room: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = ok(
        await send(http, "POST", f"/api/rooms/{room}/products", host_token(room), body), 201
    )
    return created


async def products(http: httpx.AsyncClient, room: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(await http.get(f"/api/rooms/{room}/products"))["products"]
    return found


async def pinned_product(http: httpx.AsyncClient, room: str) -> str | None:
    value: str | None = ok(await http.get(f"/api/rooms/{room}"))["pinned_product"]
    return value


# ---- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", HOST_ROUTES, ids=route_id)
async def test_host_routes_refuse_other_callers(
    http: httpx.AsyncClient, room: str, route: tuple[str, str, Any]
) -> None:
    method, path, body = route
    await create(http, room, JACKET)
    url = f"/api/rooms/{room}{path}"
    failed(await send(http, method, url, None, body), 401, "auth_required")
    failed(await send(http, method, url, "not-a-token", body), 401, "token_invalid")
    other = token(new_room_id(), "host", "host-1")
    failed(await send(http, method, url, other, body), 401, "token_wrong_room")
    for role in ("viewer", "moderator"):
        error = failed(await send(http, method, url, token(room, role), body), 403, "forbidden")
        assert error["details"] == {"needs": ["host"]}
    # Nothing changed.
    assert await products(http, room) == [{**wire("p1", JACKET), "impressions": 0}]
    assert await pinned_product(http, room) is None


async def test_read_routes_are_public(http: httpx.AsyncClient, room: str) -> None:
    await create(http, room, JACKET)
    for tok in (None, token(room, "viewer"), token(room, "moderator")):
        listed = ok(await send(http, "GET", f"/api/rooms/{room}/products", tok))
        assert listed == {"products": [{**wire("p1", JACKET), "impressions": 0}]}
        one = ok(await send(http, "GET", f"/api/rooms/{room}/products/p1", tok))
        assert one == wire("p1", JACKET)


@pytest.mark.parametrize("route", [*HOST_ROUTES, ("GET", "/products", None)], ids=route_id)
async def test_bad_room_id_is_400(http: httpx.AsyncClient, route: tuple[str, str, Any]) -> None:
    method, path, body = route
    response = await send(http, method, f"/api/rooms/Bad Room{path}", host_token("x"), body)
    assert failed(response, 400, "invalid_field")["details"] == {"field": "room"}


# ---- products -----------------------------------------------------------------------------


async def test_create_product(http: httpx.AsyncClient, room: str) -> None:
    assert await create(http, room, JACKET) == wire("p1", JACKET)
    assert await create(http, room, BOOTS) == wire("p2", BOOTS)
    assert ok(await http.get(f"/api/rooms/{room}/products/p2")) == wire("p2", BOOTS)


async def test_create_product_strips_the_title(http: httpx.AsyncClient, room: str) -> None:
    created = await create(http, room, {**BOOTS, "title": "  Boots  "})
    assert created["title"] == "Boots"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BOOTS, "title": ""}, "title"),
        ({**BOOTS, "currency": "usd"}, "currency"),
        ({**BOOTS, "skus": []}, "skus"),
        ({**BOOTS, "skus": [{"sku": "B", "list_price": 12.5}]}, "skus[0].list_price"),
        ({**BOOTS, "skus": [{"sku": "B", "list_price": True}]}, "skus[0].list_price"),
        ({**BOOTS, "skus": [{"sku": "has space", "list_price": 1}]}, "skus[0].sku"),
        ({**BOOTS, "images": ["javascript:alert(1)"]}, "images"),
        ({**BOOTS, "images": [7]}, "images"),
        ({**BOOTS, "price": 100}, "price"),
        ({**BOOTS, "skus": [{"sku": "B", "list_price": 1, "attrs": {"": "x"}}]}, "skus[0].attrs"),
        ({**BOOTS, "skus": [{"sku": "B", "list_price": 1}, "C"]}, "skus[1]"),
        ({**BOOTS, "skus": [{"sku": "B"}]}, "skus[0].list_price"),
        ({**BOOTS, "description": None}, "description"),
        ({**BOOTS, "title": ["Boots"]}, "title"),
    ],
)
async def test_create_product_invalid(
    http: httpx.AsyncClient, room: str, body: dict[str, Any], field: str
) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/products", host_token(room), body)
    assert failed(response, 400, "invalid_field")["details"] == {"field": field}
    assert await products(http, room) == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"title"', b"null"])
async def test_create_product_bad_body(http: httpx.AsyncClient, room: str, raw: bytes) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/products", host_token(room), raw=raw)
    failed(response, 400, "bad_request")


async def test_create_product_too_large(http: httpx.AsyncClient, room: str) -> None:
    raw = b'{"title": "' + b"x" * 65536 + b'"}'
    response = await send(http, "POST", f"/api/rooms/{room}/products", host_token(room), raw=raw)
    failed(response, 400, "too_large")


async def test_create_product_sku_taken(http: httpx.AsyncClient, room: str) -> None:
    await create(http, room, JACKET)
    body = {
        **BOOTS,
        "skus": [{"sku": "BOOT-41", "list_price": 1}, {"sku": "DJ-M", "list_price": 1}],
    }
    response = await send(http, "POST", f"/api/rooms/{room}/products", host_token(room), body)
    assert failed(response, 409, "sku_taken")["details"] == {"sku": "DJ-M"}
    assert [p["id"] for p in await products(http, room)] == ["p1"]


async def test_create_product_in_unknown_room(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    response = await send(http, "POST", f"/api/rooms/{room}/products", host_token(room), BOOTS)
    failed(response, 404, "room_not_found")


async def test_list_products(http: httpx.AsyncClient, room: str) -> None:
    assert ok(await http.get(f"/api/rooms/{room}/products")) == {"products": []}
    await create(http, room, JACKET)
    await create(http, room, BOOTS)
    assert await products(http, room) == [
        {**wire("p1", JACKET), "impressions": 0},
        {**wire("p2", BOOTS), "impressions": 0},
    ]


async def test_list_products_of_unknown_room(http: httpx.AsyncClient) -> None:
    failed(await http.get(f"/api/rooms/{new_room_id()}/products"), 404, "room_not_found")


async def test_get_product_errors(http: httpx.AsyncClient, room: str) -> None:
    failed(await http.get(f"/api/rooms/{room}/products/p1"), 404, "product_not_found")
    for bad in ("1", "P1", "p1x", "p12345678901"):
        response = await http.get(f"/api/rooms/{room}/products/{bad}")
        assert failed(response, 400, "invalid_field")["details"] == {"field": "product_id"}


async def test_update_product(http: httpx.AsyncClient, room: str) -> None:
    await create(http, room, JACKET)
    url = f"/api/rooms/{room}/products/p1"
    body = ok(await send(http, "PATCH", url, host_token(room), {"title": "Washed jacket"}))
    assert body == {**wire("p1", JACKET), "title": "Washed jacket"}
    new_skus = [{"sku": "DJ-L", "list_price": 5500, "attrs": {"size": "L"}}]
    body = ok(await send(http, "PATCH", url, host_token(room), {"skus": new_skus}))
    assert body == {**wire("p1", JACKET), "title": "Washed jacket", "skus": new_skus}
    assert ok(await http.get(url)) == body
    # The old SKUs are free for another product now.
    await create(http, room, {**BOOTS, "skus": [{"sku": "DJ-S", "list_price": 1}]})


async def test_update_product_errors(http: httpx.AsyncClient, room: str) -> None:
    await create(http, room, JACKET)
    await create(http, room, BOOTS)
    tok = host_token(room)
    base = f"/api/rooms/{room}/products"
    failed(await send(http, "PATCH", f"{base}/p9", tok, {"title": "X"}), 404, "product_not_found")
    error = failed(await send(http, "PATCH", f"{base}/nine", tok, {"title": "X"}), 400,
                   "invalid_field")  # fmt: skip
    assert error["details"] == {"field": "product_id"}
    error = failed(await send(http, "PATCH", f"{base}/p1", tok, {"currency": 1}), 400,
                   "invalid_field")  # fmt: skip
    assert error["details"] == {"field": "currency"}
    steal = {"skus": [{"sku": "BOOT-42", "list_price": 1}]}
    error = failed(await send(http, "PATCH", f"{base}/p1", tok, steal), 409, "sku_taken")
    assert error["details"] == {"sku": "BOOT-42"}
    failed(await send(http, "PATCH", f"{base}/p1", tok, raw=b"{oops"), 400, "bad_request")
    failed(await send(http, "PATCH", f"{base}/p1", tok, ["title"]), 400, "bad_request")
    assert await products(http, room) == [
        {**wire("p1", JACKET), "impressions": 0},
        {**wire("p2", BOOTS), "impressions": 0},
    ]


# ---- run-of-show --------------------------------------------------------------------------


async def test_reorder_lineup(http: httpx.AsyncClient, room: str) -> None:
    for body in (JACKET, BOOTS, {**BOOTS, "skus": [{"sku": "HAT", "list_price": 1}]}):
        await create(http, room, body)
    url = f"/api/rooms/{room}/lineup"
    body = ok(await send(http, "PUT", url, host_token(room), {"products": ["p3", "p1", "p2"]}))
    assert list(body) == ["products", "offset"]
    assert body["products"] == ["p3", "p1", "p2"]
    assert isinstance(body["offset"], str)
    assert "-" in body["offset"]
    assert [p["id"] for p in await products(http, room)] == ["p3", "p1", "p2"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"products": ["p1"]}, "products"),
        ({"products": ["p1", "p2", "p3"]}, "products"),
        ({"products": ["p1", "p1"]}, "products"),
        ({"products": ["p2", "p9"]}, "products"),
        ({"products": []}, "products"),
        ({}, "products"),
        ({"products": "p1,p2"}, "products"),
        ({"products": ["p1", "second"]}, "product_id"),
        ({"products": ["p1", 2]}, "products"),
        ({"products": None}, "products"),
    ],
)
async def test_reorder_lineup_invalid(
    http: httpx.AsyncClient, room: str, body: dict[str, Any], field: str
) -> None:
    await create(http, room, JACKET)
    await create(http, room, BOOTS)
    response = await send(http, "PUT", f"/api/rooms/{room}/lineup", host_token(room), body)
    assert failed(response, 400, "invalid_field")["details"] == {"field": field}
    assert [p["id"] for p in await products(http, room)] == ["p1", "p2"]


async def test_reorder_lineup_bad_body(http: httpx.AsyncClient, room: str) -> None:
    response = await send(http, "PUT", f"/api/rooms/{room}/lineup", host_token(room), ["p1"])
    failed(response, 400, "bad_request")


async def test_pin_and_unpin_product(http: httpx.AsyncClient, room: str) -> None:
    await create(http, room, JACKET)
    await create(http, room, BOOTS)
    url = f"/api/rooms/{room}/pinned-product"
    body = ok(await send(http, "PUT", url, host_token(room), {"product_id": "p2"}))
    assert list(body) == ["pinned_product", "offset"]
    assert body["pinned_product"] == "p2"
    assert await pinned_product(http, room) == "p2"
    unpinned = ok(await send(http, "DELETE", url, host_token(room)))
    assert unpinned["pinned_product"] is None
    assert unpinned["offset"] > body["offset"]
    assert await pinned_product(http, room) is None


async def test_pin_product_errors(http: httpx.AsyncClient, room: str) -> None:
    await create(http, room, JACKET)
    url = f"/api/rooms/{room}/pinned-product"
    tok = host_token(room)
    ok(await send(http, "PUT", url, tok, {"product_id": "p1"}))
    failed(await send(http, "PUT", url, tok, {"product_id": "p2"}), 404, "product_not_found")
    for body in ({}, {"product_id": None}, {"product_id": 1}, {"product_id": "jacket"}):
        error = failed(await send(http, "PUT", url, tok, body), 400, "invalid_field")
        assert error["details"] == {"field": "product_id"}
    failed(await send(http, "PUT", url, tok, ["p1"]), 400, "bad_request")
    assert await pinned_product(http, room) == "p1"


async def test_host_client_catalog_methods(host: HostClient) -> None:
    created = await host.create_product(JACKET["title"], "USD", JACKET["skus"],
                                        description="Raw selvedge.",
                                        images=JACKET["images"])  # fmt: skip
    assert created == wire("p1", JACKET)
    await host.create_product("Boots", "USD", BOOTS["skus"])
    assert (await host.update_product("p2", title="Tall boots"))["title"] == "Tall boots"
    await host.reorder(["p2", "p1"])
    assert [p["id"] for p in await host.products()] == ["p2", "p1"]
    await host.pin_product("p1")
    assert (await host.get_room())["pinned_product"] == "p1"
    await host.unpin_product()
    assert (await host.get_room())["pinned_product"] is None
    with pytest.raises(LivecartClientError) as info:
        await host.pin_product("p7")
    assert (info.value.code, info.value.status) == ("product_not_found", 404)
    with pytest.raises(LivecartClientError) as info:
        await host.create_product("Dup", "USD", [{"sku": "DJ-S", "list_price": 1}])
    assert (info.value.code, info.value.status, info.value.details) == (
        "sku_taken", 409, {"sku": "DJ-S"},
    )  # fmt: skip


# ---- end to end: the product card ---------------------------------------------------------


async def test_pin_changes_a_connected_viewers_card(
    host: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    jacket = await host.create_product(**JACKET)
    boots = await host.create_product(**BOOTS)
    viewer = await viewer_factory(room)
    assert viewer.welcome["product"] is None
    assert viewer.product is None
    seq = viewer.seq

    await host.pin_product("p2")
    tick, entry = await next_entry(viewer, "product_pinned", "p2")
    assert tick["seq"] > seq
    assert viewer.product == boots
    assert {k: v for k, v in entry.items() if k not in {"kind", "ref", "ts", "id"}} == {
        k: v for k, v in boots.items() if k != "id"
    }

    await host.pin_product("p1")
    await next_entry(viewer, "product_pinned", "p1")
    assert viewer.product == jacket

    await host.unpin_product()
    await next_entry(viewer, "product_unpinned")
    assert viewer.product is None


async def test_joiner_welcome_has_the_product_and_impressions_grow(
    http: httpx.AsyncClient, host: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await host.create_product(**BOOTS)
    jacket = await host.create_product(**JACKET)
    await host.pin_product("p2")  # before anyone watches: no feed for the room yet

    def counts(found: list[dict[str, Any]]) -> dict[str, int]:
        return {p["id"]: p["impressions"] for p in found}

    first = await viewer_factory(room)
    assert first.welcome["product"] == jacket
    assert first.welcome["room"]["pinned_product"] == "p2"
    assert first.product == jacket
    await poll(lambda: products(http, room), lambda found: counts(found) == {"p1": 0, "p2": 1})

    joiner = await viewer_factory(room)  # a joiner of the running feed sees the card too
    assert joiner.welcome["product"] == jacket
    assert joiner.product == jacket
    await poll(lambda: products(http, room), lambda found: counts(found) == {"p1": 0, "p2": 2})

    await host.unpin_product()
    await next_entry(first, "product_unpinned")
    assert first.product is None
    late = await viewer_factory(room)  # nothing pinned: no card, no impression
    assert late.welcome["product"] is None
    await viewer_factory(room)
    await poll(lambda: products(http, room), lambda found: counts(found) == {"p1": 0, "p2": 2})


async def test_a_pin_counts_the_viewers_it_reaches(
    http: httpx.AsyncClient, host: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await host.create_product(**JACKET)
    viewers = [await viewer_factory(room) for _ in range(3)]
    assert all(viewer.product is None for viewer in viewers)
    await host.pin_product("p1")  # counted when the tick carrying it goes out
    await poll(lambda: products(http, room), lambda found: found[0]["impressions"] == 3)


async def test_updating_the_pinned_product_reaches_viewers(
    host: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    jacket = await host.create_product(**JACKET)
    await host.pin_product("p1")
    viewer = await viewer_factory(room)
    assert viewer.product == jacket

    updated = await host.update_product("p1", title="Washed jacket")
    _, entry = await next_entry(viewer, "product_updated", "p1")
    assert entry["title"] == "Washed jacket"
    joiner = await viewer_factory(room)
    assert joiner.welcome["product"] == updated
    # The connected viewer's card follows the change too.
    assert viewer.product == updated
