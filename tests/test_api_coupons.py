"""engine.server.api.coupons over real HTTP and WebSockets: templates and drops (host only), drop
cards and counters reaching viewers, claims over the WebSocket and over HTTP, and a
viewer's own coupons."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from clients import HostClient, LivecartClientError, ShopperClient, ViewerClient
from engine.insights.audit import audit_room
from engine.server.app import Engine
from tests.conftest import EngineFactory, ViewerFactory, token
from tests.test_api_catalog import (
    failed,
    host_token,
    new_room_id,
    next_entry,
    ok,
    route_id,
    send,
    wait_tick,
)

TEMPLATE: dict[str, Any] = {
    "kind": "amount_off", "title": "5 off", "currency": "USD", "amount": 500, "total": 100,
}  # fmt: skip
TEMPLATE_FIELDS = {
    "id", "title", "kind", "currency", "amount", "percent", "cap", "min_spend", "skus",
    "valid_from", "valid_until", "total", "per_user_limit", "stackable",
}  # fmt: skip
DROP_FIELDS = {
    "id", "template", "quantity", "limit", "created_at", "opens_at", "closes_at", "private",
    "tiers", "remaining", "claimed", "state",
}  # fmt: skip
# Routes only a host token may call: (method, path after /api/rooms/{room}, body).
HOST_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/coupons/templates", TEMPLATE),
    ("POST", "/coupons/templates/t1/drops", {"quantity": 5}),
]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def ana(engine: Engine, room: str) -> AsyncIterator[ShopperClient]:
    client = ShopperClient(engine.base_url, room, token(room, "viewer", "ana"))
    async with client:
        yield client


async def create_template(http: httpx.AsyncClient, room: str, **terms: Any) -> dict[str, Any]:
    url = f"/api/rooms/{room}/coupons/templates"
    made: dict[str, Any] = ok(
        await send(http, "POST", url, host_token(room), {**TEMPLATE, **terms}), 201
    )
    return made


async def drop(http: httpx.AsyncClient, room: str, template: str, quantity: int,
               **terms: Any) -> dict[str, Any]:  # fmt: skip
    url = f"/api/rooms/{room}/coupons/templates/{template}/drops"
    body = {"quantity": quantity, **terms}
    dropped: dict[str, Any] = ok(await send(http, "POST", url, host_token(room), body), 201)
    return dropped


async def get_drop(http: httpx.AsyncClient, room: str, drop_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ok(await http.get(f"/api/rooms/{room}/coupons/drops/{drop_id}"))
    return found


async def templates(http: httpx.AsyncClient, room: str) -> list[dict[str, Any]]:
    url = f"/api/rooms/{room}/coupons/templates"
    found: list[dict[str, Any]] = ok(await send(http, "GET", url, host_token(room)))["templates"]
    return found


async def claim_http(http: httpx.AsyncClient, room: str, drop_id: str, tok: str | None,
                     body: Any) -> httpx.Response:  # fmt: skip
    return await send(http, "POST", f"/api/rooms/{room}/coupons/drops/{drop_id}/claim", tok, body)


def card_of(viewer: ViewerClient, drop_id: str) -> dict[str, Any]:
    """The drop's card in the viewer's welcome."""
    cards: list[dict[str, Any]] = [c for c in viewer.welcome["drops"] if c["drop"] == drop_id]
    [card] = cards
    return card


# ---- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", HOST_ROUTES, ids=route_id)
async def test_host_routes_refuse_other_callers(
    http: httpx.AsyncClient, room: str, route: tuple[str, str, Any]
) -> None:
    method, path, body = route
    made = await create_template(http, room)
    url = f"/api/rooms/{room}{path}"
    failed(await send(http, method, url, None, body), 401, "auth_required")
    failed(await send(http, method, url, "not-a-token", body), 401, "token_invalid")
    other = token(new_room_id(), "host", "host-1")
    failed(await send(http, method, url, other, body), 401, "token_wrong_room")
    for role in ("viewer", "moderator"):
        error = failed(await send(http, method, url, token(room, role), body), 403, "forbidden")
        assert error["details"] == {"needs": ["host"]}
    # Nothing changed.
    assert await templates(http, room) == [{**made, "issued": 0}]
    assert ok(await http.get(f"/api/rooms/{room}/coupons/drops")) == {"drops": []}


async def test_templates_are_listed_for_hosts_and_moderators_only(
    http: httpx.AsyncClient, room: str
) -> None:
    made = await create_template(http, room)
    url = f"/api/rooms/{room}/coupons/templates"
    failed(await send(http, "GET", url, None), 401, "auth_required")
    error = failed(await send(http, "GET", url, token(room, "viewer")), 403, "forbidden")
    assert error["details"] == {"needs": ["host", "moderator"]}
    listed = ok(await send(http, "GET", url, token(room, "moderator")))
    assert listed == {"templates": [{**made, "issued": 0}]}


async def test_claims_and_wallets_need_a_token(http: httpx.AsyncClient, room: str) -> None:
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 5)
    failed(await claim_http(http, room, dropped["id"], None, {"id": "tap"}), 401, "auth_required")
    failed(await http.get(f"/api/rooms/{room}/coupons/mine"), 401, "auth_required")
    assert (await get_drop(http, room, dropped["id"]))["remaining"] == 5


# ---- templates ------------------------------------------------------------------------------


async def test_host_creates_a_template(http: httpx.AsyncClient, room: str) -> None:
    before = now_ms()
    made = await create_template(http, room, min_spend=19900, amount=2000, title="20 off 199")
    assert set(made) == TEMPLATE_FIELDS
    assert before - 2000 <= made["valid_from"] <= now_ms() + 2000
    assert made == {
        "id": "t1", "title": "20 off 199", "kind": "amount_off", "currency": "USD",
        "amount": 2000, "percent": 0, "cap": None, "min_spend": 19900, "skus": None,
        "valid_from": made["valid_from"], "valid_until": made["valid_from"] + 7 * 86_400_000,
        "total": 100, "per_user_limit": 1, "stackable": False,
    }  # fmt: skip


async def test_host_creates_a_percent_template_with_every_term(
    http: httpx.AsyncClient, room: str
) -> None:
    terms = {"kind": "percent_off", "percent": 15, "cap": 3000, "skus": ["DJ-M"],
             "valid_from": 2_000_000_000_000, "valid_until": 2_000_086_400_000,
             "per_user_limit": 2, "stackable": True, "total": 40}  # fmt: skip
    made = await create_template(http, room, **terms)
    assert made == {**TEMPLATE, **terms, "id": "t1", "amount": 0, "min_spend": 0}


async def test_templates_are_listed_with_the_coupons_issued(
    http: httpx.AsyncClient, room: str
) -> None:
    first = await create_template(http, room, total=10)
    second = await create_template(http, room, kind="free_shipping", title="Ship free")
    await drop(http, room, first["id"], 3)
    await drop(http, room, first["id"], 4)
    assert await templates(http, room) == [{**first, "issued": 7}, {**second, "issued": 0}]


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"kind": "bogo"}, "kind"),
        ({"kind": 5}, "kind"),
        ({"title": ""}, "title"),
        ({"currency": "usd"}, "currency"),
        ({"amount": 0}, "amount"),
        ({"kind": "percent_off", "percent": 101}, "percent"),
        ({"skus": []}, "skus"),
        ({"total": 0}, "total"),
        ({"total": "100"}, "total"),
        ({"per_user_limit": 101}, "per_user_limit"),
        ({"valid_until": 1}, "valid_until"),
        ({"stackable": "no"}, "stackable"),
    ],
)
async def test_create_template_invalid(
    http: httpx.AsyncClient, room: str, terms: dict[str, Any], field: str
) -> None:
    url = f"/api/rooms/{room}/coupons/templates"
    response = await send(http, "POST", url, host_token(room), {**TEMPLATE, **terms})
    assert failed(response, 400, "invalid_field")["details"] == {"field": field}
    assert await templates(http, room) == []


async def test_create_template_errors(http: httpx.AsyncClient, room: str) -> None:
    url = f"/api/rooms/{room}/coupons/templates"
    failed(await send(http, "POST", url, host_token(room), raw=b"{kind"), 400, "bad_request")
    failed(await send(http, "POST", url, host_token(room), [TEMPLATE]), 400, "bad_request")
    other = new_room_id()
    response = await send(http, "POST", f"/api/rooms/{other}/coupons/templates",
                          host_token(other), TEMPLATE)  # fmt: skip
    failed(response, 404, "room_not_found")
    assert await templates(http, room) == []


# ---- drops ---------------------------------------------------------------------------------


async def test_host_drops_coupons(http: httpx.AsyncClient, room: str) -> None:
    made = await create_template(http, room, per_user_limit=2)
    dropped = await drop(http, room, made["id"], 10, countdown_s=30, claim_window_s=60)
    assert set(dropped) == DROP_FIELDS
    created = dropped["created_at"]
    assert dropped == {
        "id": "d2", "template": "t1", "quantity": 10, "limit": 2, "created_at": created,
        "opens_at": created + 30_000, "closes_at": created + 90_000, "private": None,
        "tiers": None, "remaining": 10, "claimed": 0, "state": "scheduled",
    }  # fmt: skip
    # Drops are public, like sales.
    assert await get_drop(http, room, "d2") == dropped
    assert ok(await http.get(f"/api/rooms/{room}/coupons/drops")) == {"drops": [dropped]}


async def test_drops_stop_at_the_template_total(http: httpx.AsyncClient, room: str) -> None:
    made = await create_template(http, room, total=10)
    await drop(http, room, made["id"], 8)
    url = f"/api/rooms/{room}/coupons/templates/{made['id']}/drops"
    error = failed(await send(http, "POST", url, host_token(room), {"quantity": 3}), 409,
                   "coupons_exhausted")  # fmt: skip
    assert error["details"] == {"total": 10, "issued": 8}
    assert (await templates(http, room))[0]["issued"] == 8


async def test_drop_errors(http: httpx.AsyncClient, room: str) -> None:
    await create_template(http, room)
    base = f"/api/rooms/{room}/coupons/templates"
    tok = host_token(room)
    failed(await send(http, "POST", f"{base}/t9/drops", tok, {"quantity": 1}), 404,
           "template_not_found")  # fmt: skip
    response = await send(http, "POST", f"{base}/nine/drops", tok, {"quantity": 1})
    assert failed(response, 400, "invalid_field")["details"] == {"field": "template"}
    for body in ({}, {"quantity": 0}, {"quantity": "5"}, {"quantity": True}, {"quantity": 2.5}):
        response = await send(http, "POST", f"{base}/t1/drops", tok, body)
        assert failed(response, 400, "invalid_field")["details"] == {"field": "quantity"}
    response = await send(
        http, "POST", f"{base}/t1/drops", tok, {"quantity": 1, "claim_window_s": 0}
    )
    assert failed(response, 400, "invalid_field")["details"] == {"field": "claim_window_s"}
    response = await send(
        http, "POST", f"{base}/t1/drops", tok, {"quantity": 1, "countdown_s": "9"}
    )
    assert failed(response, 400, "invalid_field")["details"] == {"field": "countdown_s"}
    failed(await send(http, "POST", f"{base}/t1/drops", tok, raw=b"{q"), 400, "bad_request")
    failed(await send(http, "POST", f"{base}/t1/drops", tok, [{"quantity": 1}]), 400, "bad_request")
    assert ok(await http.get(f"/api/rooms/{room}/coupons/drops")) == {"drops": []}


async def test_drop_read_errors(http: httpx.AsyncClient, room: str) -> None:
    failed(await http.get(f"/api/rooms/{room}/coupons/drops/d9"), 404, "drop_not_found")
    response = await http.get(f"/api/rooms/{room}/coupons/drops/s1")
    assert failed(response, 400, "invalid_field")["details"] == {"field": "drop"}
    failed(await http.get(f"/api/rooms/{new_room_id()}/coupons/drops"), 404, "room_not_found")


async def test_host_client_coupon_methods(host: HostClient) -> None:
    made = await host.create_coupon("percent_off", "10%", 20, "USD", percent=10, cap=500)
    assert (made["id"], made["percent"], made["cap"], made["total"]) == ("t1", 10, 500, 20)
    dropped = await host.drop_coupons("t1", 5, countdown_s=60)
    assert (dropped["quantity"], dropped["state"]) == (5, "scheduled")
    assert await host.drops() == [dropped]
    assert await host.coupon_templates() == [{**made, "issued": 5}]
    with pytest.raises(LivecartClientError) as refused:
        await host.drop_coupons("t1", 16)
    assert (refused.value.code, refused.value.status) == ("coupons_exhausted", 409)


# ---- drops reaching viewers ---------------------------------------------------------------


async def test_a_drop_reaches_viewers_as_a_log_entry(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    assert viewer.welcome["drops"] == []
    made = await create_template(http, room, min_spend=1000)
    dropped = await drop(http, room, made["id"], 10, countdown_s=5)
    _, entry = await next_entry(viewer, "coupon_dropped", "d2")
    assert entry["ts"] == int(entry["id"].split("-")[0])
    # The drop card: the template's terms (but `kind`, see the next test) and the drop's.
    terms = {k: v for k, v in made.items() if k not in {"id", "total", "kind"}}
    expected = {
        **terms, "ref": "d2", "drop": "d2", "template": "t1", "quantity": 10,
        "opens_at": dropped["opens_at"], "closes_at": dropped["closes_at"],
        "server_time": dropped["created_at"],
    }  # fmt: skip
    assert {k: entry.get(k) for k in expected} == expected


async def test_the_drop_entry_tells_viewers_what_kind_of_coupon_it_is(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    made = await create_template(http, room, kind="free_shipping", title="Ship free")
    await drop(http, room, made["id"], 10)
    _, entry = await next_entry(viewer, "coupon_dropped", "d2")
    assert entry["coupon_kind"] == "free_shipping", entry


async def test_a_joiner_finds_open_drops_in_the_welcome(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    made = await create_template(http, room, per_user_limit=2)
    dropped = await drop(http, room, made["id"], 10, countdown_s=600)
    viewer = await viewer_factory(room)
    card = card_of(viewer, dropped["id"])
    terms = {k: v for k, v in made.items() if k not in {"id", "total", "kind"}}
    assert {k: card[k] for k in terms} == terms
    assert card["coupon_kind"] == made["kind"]
    assert card["template"] == "t1"
    assert (card["quantity"], card["opens_at"], card["closes_at"]) == (
        10, dropped["opens_at"], dropped["closes_at"])  # fmt: skip
    assert (card["remaining"], card["claimed"], card["state"]) == (10, 0, "scheduled")


async def test_a_joiner_gets_the_same_drop_card_from_any_engine(
    engine_factory: EngineFactory, room: str, http: httpx.AsyncClient,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    watcher = await viewer_factory(room)  # this engine's hub sees the drop happen
    made = await create_template(http, room)
    await drop(http, room, made["id"], 10, countdown_s=600)
    await next_entry(watcher, "coupon_dropped", "d2")
    here = await viewer_factory(room)
    there = await viewer_factory(room, target=await engine_factory())  # loads from Redis
    assert card_of(here, "d2") == card_of(there, "d2")


async def test_claims_reach_viewers_as_drop_counters(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    watcher = await viewer_factory(room)
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 3)
    seen: list[int] = []

    def counters(tick: dict[str, Any]) -> bool:
        if dropped["id"] not in tick.get("drops", {}):
            return False
        seen.append(tick["drops"][dropped["id"]]["remaining"])
        return bool(tick["drops"][dropped["id"]]["state"] == "sold_out")

    for n in range(3):
        claimer = await viewer_factory(room, user=f"claimer-{n}")
        assert (await claimer.claim(dropped["id"]))["status"] == "claimed"
    tick = await wait_tick(watcher, counters, "the drop sold out")
    assert tick["drops"][dropped["id"]] == {"remaining": 0, "claimed": 3, "state": "sold_out"}
    assert seen == sorted(seen, reverse=True)  # remaining only goes down
    assert seen[-1] == 0


async def test_a_scheduled_drop_going_live_reaches_viewers(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    watcher = await viewer_factory(room)
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 3, countdown_s=1)
    tick = await wait_tick(
        watcher,
        lambda t: t.get("drops", {}).get(dropped["id"], {}).get("state") == "live",
        "the drop going live",
    )
    assert tick["drops"][dropped["id"]] == {"remaining": 3, "claimed": 0, "state": "live"}


# ---- claims ---------------------------------------------------------------------------------


async def test_claim_over_the_websocket(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 5)
    viewer = await viewer_factory(room, user="ana")
    first = await viewer.claim(dropped["id"], request_id="tap-1")
    assert first == {"status": "claimed", "coupon": "d2.1", "template": "t1", "replayed": False}
    assert await viewer.claim(dropped["id"], request_id="tap-1") == {**first, "replayed": True}
    again = await viewer.claim(dropped["id"])
    assert again == {"status": "limit_reached", "limit": 1, "replayed": False}
    assert (await get_drop(http, room, dropped["id"]))["remaining"] == 4


async def test_claim_over_http(http: httpx.AsyncClient, room: str, ana: ShopperClient) -> None:
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 5)
    first = await ana.claim(dropped["id"], request_id="tap-1")
    assert first == {"status": "claimed", "coupon": "d2.1", "template": "t1", "replayed": False}
    assert await ana.claim(dropped["id"], request_id="tap-1") == {**first, "replayed": True}
    assert (await ana.claim(dropped["id"]))["status"] == "limit_reached"
    assert (await get_drop(http, room, dropped["id"]))["remaining"] == 4


async def test_a_claim_over_http_replays_one_made_over_the_websocket(
    http: httpx.AsyncClient, room: str, ana: ShopperClient, viewer_factory: ViewerFactory
) -> None:
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 5)
    viewer = await viewer_factory(room, user="ana")
    first = await viewer.claim(dropped["id"], request_id="tap-1")
    assert await ana.claim(dropped["id"], request_id="tap-1") == {**first, "replayed": True}


async def test_claims_answer_not_started_and_sold_out(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    made = await create_template(http, room)
    later = await drop(http, room, made["id"], 5, countdown_s=600)
    now = await drop(http, room, made["id"], 1)
    ana = await viewer_factory(room, user="ana")
    bob = await viewer_factory(room, user="bob")
    assert await ana.claim(later["id"]) == {
        "status": "not_started",
        "opens_at": later["opens_at"],
        "replayed": False,
    }
    assert (await ana.claim(now["id"]))["status"] == "claimed"
    assert await bob.claim(now["id"]) == {"status": "sold_out", "replayed": False}


async def test_a_claim_of_an_unknown_drop_is_refused(
    http: httpx.AsyncClient, room: str, ana: ShopperClient, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room, user="ana")
    with pytest.raises(LivecartClientError) as over_ws:
        await viewer.claim("d77")
    assert over_ws.value.code == "drop_not_found"
    with pytest.raises(LivecartClientError) as over_http:
        await ana.claim("d77")
    assert (over_http.value.code, over_http.value.status) == ("drop_not_found", 404)
    assert await ana.coupons() == []


async def test_claim_requests_are_validated(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 5)
    viewer = await viewer_factory(room)
    for frame, field in [
        ({"type": "claim", "drop": dropped["id"]}, "id"),  # no request id
        ({"type": "claim", "id": "a"}, "drop"),
        ({"type": "claim", "drop": "s1", "id": "b"}, "drop"),
    ]:
        await viewer.send_raw(orjson.dumps(frame).decode())
        error = await viewer.wait_for(lambda e: e.get("type") == "error")
        assert (error["code"], error["details"]) == ("invalid_field", {"field": field}), frame
    tok = token(room, "viewer")
    for drop_id, body, field in [
        (dropped["id"], {}, "id"),
        (dropped["id"], {"id": ""}, "id"),
        (dropped["id"], {"id": "x" * 65}, "id"),
        (dropped["id"], {"id": 7}, "id"),
        ("s1", {"id": "tap"}, "drop"),
    ]:
        error = failed(await claim_http(http, room, drop_id, tok, body), 400, "invalid_field")
        assert error["details"] == {"field": field}
    assert (await get_drop(http, room, dropped["id"]))["remaining"] == 5


async def test_anonymous_viewers_cannot_claim(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 5)
    anonymous = await viewer_factory(room, role=None)
    assert anonymous.welcome["role"] == "anonymous"
    with pytest.raises(LivecartClientError) as refused:
        await anonymous.claim(dropped["id"])
    assert refused.value.code == "forbidden"
    assert (await get_drop(http, room, dropped["id"]))["remaining"] == 5


async def test_claims_from_two_engines_never_over_issue(
    engine: Engine, engine_factory: EngineFactory, room: str, http: httpx.AsyncClient,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    other = await engine_factory()
    made = await create_template(http, room)
    dropped = await drop(http, room, made["id"], 20)
    viewers = [
        await viewer_factory(room, user=f"v{n}", target=other if n % 2 else engine,
                             codec="msgpack" if n % 3 else "json")
        for n in range(60)
    ]  # fmt: skip
    answers = await asyncio.gather(*(v.claim(dropped["id"]) for v in viewers for _ in range(2)))
    claimed = [a["coupon"] for a in answers if a["status"] == "claimed"]
    assert len(claimed) == len(set(claimed)) == 20
    assert {a["status"] for a in answers} == {"claimed", "sold_out", "limit_reached"}
    after = await get_drop(http, room, dropped["id"])
    assert (after["remaining"], after["claimed"], after["state"]) == (0, 20, "sold_out")
    assert engine.node is not None
    report = await audit_room(engine.node.redis, room)
    assert report.ok, report.render()


# ---- a viewer's coupons ---------------------------------------------------------------------


async def test_my_coupons_lists_the_callers_coupons_with_their_state(
    http: httpx.AsyncClient, room: str, ana: ShopperClient, viewer_factory: ViewerFactory
) -> None:
    fiver = await create_template(http, room)
    shipping = await create_template(http, room, kind="free_shipping", title="Ship free")
    first = await drop(http, room, fiver["id"], 5)
    second = await drop(http, room, shipping["id"], 5)
    assert await ana.coupons() == []
    claimed = [(await ana.claim(d["id"]))["coupon"] for d in (second, first)]
    bob = await viewer_factory(room, user="bob")
    await bob.claim(first["id"])

    mine = await ana.coupons()
    assert [(c["id"], c["state"], c["order"], c["drop"]) for c in mine] == [
        (claimed[0], "claimed", None, second["id"]),
        (claimed[1], "claimed", None, first["id"]),
    ]
    assert [c["template"] for c in mine] == [shipping, fiver]
    assert all(isinstance(c["claimed_at"], int) for c in mine)
    response = await send(http, "GET", f"/api/rooms/{room}/coupons/mine",
                          token(room, "viewer", "bob"))  # fmt: skip
    assert [c["id"] for c in ok(response)["coupons"]] == [f"{first['id']}.2"]
