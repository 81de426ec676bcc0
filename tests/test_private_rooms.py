"""Private rooms (`allow_anonymous: false`) keep every room-scoped HTTP read to holders of
a token for the room, as their WebSocket does (issue 20); public rooms answer their reads
without one, as before.

The routes come from the engine's route table (`engine.server.api.ROUTES` and every default
feature's routes, engine/core/feature.py), so a route added later is covered here without a
change: a new read is refused to anonymous callers of a private room by
`engine/server/api/base.py` (`route`, `Call.admit_reader`), and a new *public* read must be
added to `PUBLIC_READS` (and to the docs) on purpose.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Response, expect
from starlette.routing import Route

from clients import HostClient, ShopperClient
from engine.core.feature import load_features
from engine.core.settings import DEFAULT_FEATURES
from engine.server import api
from engine.server.app import Engine
from tests.conftest import ADDRESS, RoomFactory, ViewerFactory, needs_chromium, token
from tests.test_api_catalog import JACKET

# (method, path) of every route on a room: its path has `{room}`. HEAD is answered by each
# GET route too (Starlette), so it is tried as well.
ALL_ROUTES = [*api.ROUTES, *(r for f in load_features(DEFAULT_FEATURES) for r in f.routes)]
ROOM_ROUTES: list[tuple[str, str]] = sorted(
    (method, route.path)
    for route in ALL_ROUTES
    if isinstance(route, Route) and "{room}" in route.path
    for method in route.methods or ()
)
ROOM_READS: list[str] = [path for method, path in ROOM_ROUTES if method == "GET"]
# The reads a public room answers without a token: today's, unchanged by issue 20.
PUBLIC_READS: frozenset[str] = frozenset({
    "/api/rooms/{room}",
    "/api/rooms/{room}/comments",
    "/api/rooms/{room}/products",
    "/api/rooms/{room}/products/{product}",
    "/api/rooms/{room}/sales",
    "/api/rooms/{room}/sales/{sale}",
    "/api/rooms/{room}/coupons/drops",
    "/api/rooms/{room}/coupons/drops/{drop}",
    "/api/rooms/{room}/giveaways",
    "/api/rooms/{room}/giveaways/{giveaway}",
    "/api/rooms/{room}/auctions",
    "/api/rooms/{room}/auctions/{auction}",
    "/api/rooms/{room}/group-buys",
    "/api/rooms/{room}/group-buys/{group_buy}",
    "/api/rooms/{room}/group-buys/{group_buy}/teams/{team}",
    "/api/rooms/{room}/referrals/leaderboard",
    "/api/rooms/{room}/polls",
    "/api/rooms/{room}/polls/{poll}",
})  # fmt: skip
# Reads of the books: these tests' engines keep none, so a caller let through is answered
# `409 ledger_disabled` (tests/test_customers.py and tests/test_reconcile.py read them with
# a ledger).
LEDGER_READS = frozenset({"/api/rooms/{room}/customers", "/api/rooms/{room}/customers/{user}",
                          "/api/rooms/{room}/reconciliation"})  # fmt: skip
# Path ids for routes that are refused before they look anything up.
ANY_IDS = {
    "product": "p1", "sale": "s1", "drop": "d1", "template": "t1", "giveaway": "g1",
    "auction": "a1", "group_buy": "gb1", "team": "t1", "order": "o1", "entry_id": "1-0",
    "user": "bob", "name": "summary.json", "poll": "q1", "id": "paid_without_order:r:p@2026-12-07",
}  # fmt: skip
PARAM = re.compile(r"{(\w+)(?::\w+)?}")
BUYER = "ana"


def fill(path: str, ids: dict[str, str]) -> str:
    return PARAM.sub(lambda m: ids[m.group(1)], path)


def bearer(tok: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {tok}"} if tok else {}


def error_code(response: httpx.Response) -> str | None:
    if response.request.method == "HEAD" or not response.content:
        return None
    code: str | None = response.json().get("error", {}).get("code")
    return code


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


@dataclass
class Show:
    """A live room with one of everything a read can return, and the ids to read it by."""

    room: str
    ids: dict[str, str]


async def stocked(
    engine: Engine, room_factory: RoomFactory, viewer_factory: ViewerFactory, *, private: bool
) -> Show:
    room = await room_factory(settings={"allow_anonymous": not private})
    async with (
        HostClient(engine.base_url, room, token(room, "host", "host-1")) as host,
        ShopperClient(engine.base_url, room, token(room, "viewer", BUYER)) as buyer,
        ShopperClient(engine.base_url, room, token(room, "viewer", "lead")) as lead,
    ):
        product = await host.create_product(**JACKET)
        sale = await host.launch_sale("DJ-M", 5, price=5_000)
        template = await host.create_coupon("amount_off", "5 off", 100, "USD", amount=500)
        drop = await host.drop_coupons(template["id"], 10)
        giveaway = await host.open_giveaway("Lucky bag", "a tote bag", duration_s=600)
        auction = await host.open_auction("DJ-S", 1_000, 600)
        deal = await host.open_group_buy("DJ-S", 3_900, 3, 600, units=6)
        team = await lead.start_team(deal["id"])
        poll = await host.open_poll("Which colour?", ["Red", "Blue"])
        viewer = await viewer_factory(room, user=BUYER)
        grabbed = await viewer.grab(sale["id"])
        assert grabbed["status"] == "reserved", grabbed
        order = await buyer.checkout([grabbed["reservation"]], address=ADDRESS,
                                     contact={"email": "ana@example.com"})  # fmt: skip
    ids = {
        **ANY_IDS, "room": room, "product": product["id"], "sale": sale["id"],
        "drop": drop["id"], "template": template["id"], "giveaway": giveaway["id"],
        "auction": auction["id"], "group_buy": deal["id"], "team": team["id"],
        "order": order["id"], "poll": poll["id"],
    }  # fmt: skip
    return Show(room, ids)


@pytest.mark.parametrize("path", ROOM_READS)
async def test_a_private_room_reads_only_to_its_token_holders(
    path: str,
    engine: Engine,
    http: httpx.AsyncClient,
    room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
) -> None:
    """Every GET route on a room, in a private room: no token is `401 auth_required`, a
    token for another room `401 token_wrong_room`; the room's viewer is let through (what
    their role may read answers 200, the rest `403 forbidden`), its host reads all."""
    show = await stocked(engine, room_factory, viewer_factory, private=True)
    url = fill(path, show.ids)
    anonymous = await http.get(url)
    assert (anonymous.status_code, error_code(anonymous)) == (401, "auth_required"), anonymous.text
    elsewhere = await http.get(url, headers=bearer(token("r-other", "viewer", BUYER)))
    assert (elsewhere.status_code, error_code(elsewhere)) == (401, "token_wrong_room")
    viewer = await http.get(url, headers=bearer(token(show.room, "viewer", BUYER)))
    if path in PUBLIC_READS:
        assert viewer.status_code == 200, viewer.text
    else:
        assert viewer.status_code in {200, 403}, viewer.text
        assert viewer.status_code == 200 or error_code(viewer) == "forbidden"
    host = await http.get(url, headers=bearer(token(show.room, "host", "host-1")))
    if path in LEDGER_READS:
        assert (host.status_code, error_code(host)) == (409, "ledger_disabled"), host.text
    else:
        assert host.status_code == 200, host.text


@pytest.mark.parametrize("path", ROOM_READS)
async def test_a_public_room_answers_its_reads_without_a_token(
    path: str,
    engine: Engine,
    http: httpx.AsyncClient,
    room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
) -> None:
    """As before issue 20: the public reads answer anyone (a token, even for another room,
    is not looked at), the other routes still want their role."""
    show = await stocked(engine, room_factory, viewer_factory, private=False)
    url = fill(path, show.ids)
    anonymous = await http.get(url)
    if path in PUBLIC_READS:
        assert anonymous.status_code == 200, anonymous.text
        stray = await http.get(url, headers=bearer(token("r-other", "viewer", BUYER)))
        assert stray.status_code == 200, stray.text
    else:
        assert (anonymous.status_code, error_code(anonymous)) == (401, "auth_required")


async def test_no_room_route_answers_an_anonymous_caller_of_a_private_room(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    """Every method of every route on a room (HEAD included), before it reads or changes
    anything: `401 auth_required`."""
    room = await room_factory(settings={"allow_anonymous": False})
    answered = {}
    for method, path in ROOM_ROUTES:
        response = await http.request(method, fill(path, {**ANY_IDS, "room": room}), json={})
        answered[f"{method} {path}"] = (response.status_code, error_code(response))
    expected = {
        route: (401, None if route.startswith("HEAD") else "auth_required") for route in answered
    }
    assert answered == expected


async def test_a_private_room_turns_away_banned_and_revoked_readers(
    engine: Engine, http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    """As at the WebSocket's `hello` (engine/rooms/access.py): a banned user's token is
    `403 banned`, a revoked one `401 token_revoked`; the room's other viewers still read."""
    room = await room_factory(settings={"allow_anonymous": False})
    url = f"/api/rooms/{room}/products"
    bob, carol = token(room, "viewer", "bob"), token(room, "viewer", "carol")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.ban("bob")
        await host.call("POST", f"/api/rooms/{room}/revocations", {"user": "carol"})
    banned = await http.get(url, headers=bearer(bob))
    assert (banned.status_code, error_code(banned)) == (403, "banned")
    revoked = await http.get(url, headers=bearer(carol))
    assert (revoked.status_code, error_code(revoked)) == (401, "token_revoked")
    assert (await http.get(url, headers=bearer(token(room, "viewer", "dan")))).status_code == 200


async def test_making_a_room_private_closes_its_reads_at_once(
    engine: Engine, http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    room = await room_factory()
    assert (await http.get(f"/api/rooms/{room}/sales")).status_code == 200
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.update_room(settings={"allow_anonymous": False})
    closed = await http.get(f"/api/rooms/{room}/sales")
    assert (closed.status_code, error_code(closed)) == (401, "auth_required")


async def test_the_room_list_leaves_a_private_room_out(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    """`GET /api/rooms` is public and gives the ids of public rooms, nothing else: a private
    room is reached by its share link (docs/api.md)."""
    room = await room_factory(settings={"allow_anonymous": False}, title="Secret drop")
    response = await http.get("/api/rooms")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["rooms"]
    assert room not in body["rooms"]
    assert all(isinstance(r, str) for r in body["rooms"])
    assert "Secret drop" not in response.text


@pytest.mark.browser
@needs_chromium
async def test_the_viewer_page_reads_a_private_room_with_its_token(
    browser: Browser, engine: Engine, room_factory: RoomFactory
) -> None:
    """The viewer page (clients/web) sends the viewer's token on its reads too: in a
    private room the run of show and the invite leaderboard load for a signed-in viewer."""
    room = await room_factory(settings={"allow_anonymous": False}, title="Staff sale")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        product = await host.create_product(**{**JACKET, "images": []})  # no CDN here
        await host.pin_product(product["id"])
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = await context.new_page()
        page.set_default_timeout(5000)
        errors: list[str] = []
        reads: list[tuple[str, int]] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

        def record(response: Response) -> None:
            if "/api/rooms/" in response.url and response.request.method == "GET":
                reads.append((response.url.split(f"/api/rooms/{room}", 1)[1], response.status))

        page.on("response", record)
        viewer = token(room, "viewer", "ana", name="Ana")
        await page.goto(f"{engine.base_url}/live/{room}#token={viewer}")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await page.locator("#open-products").click()
        await expect(page.locator("#sheet .list li")).to_have_count(1)
        await expect(page.locator("#sheet .list li")).to_contain_text("Denim jacket")
        await page.locator("#sheet-close").click()
        async with page.expect_response(lambda r: "/referrals/leaderboard" in r.url):
            await page.locator("#share").click()
        await expect(page.locator("#share-link")).to_contain_text(f"/live/{room}?ref=")
    finally:
        await context.close()
    assert ("/products", 200) in reads
    assert ("/referrals/leaderboard", 200) in reads
    assert all(status == 200 for _, status in reads), reads
    assert errors == []


def test_every_room_read_goes_through_the_private_room_check() -> None:
    """The route table knows which of its routes are room reads (no role): exactly the
    public reads above, each checked by `Call.admit_reader`."""
    from engine.server.api.base import ApiRoute

    room_routes = [r for r in ALL_ROUTES if isinstance(r, Route) and "{room}" in r.path]
    assert all(isinstance(r, ApiRoute) for r in room_routes)
    assert {r.path for r in room_routes if isinstance(r, ApiRoute) and r.reads_room} == set(
        PUBLIC_READS
    )


def test_docs_name_every_room_read_a_reader_route() -> None:
    """docs/api.md's route table: the room reads are *reader* (public only in a room that
    takes anonymous viewers); no route on a room is plain *public*."""
    docs = Path(__file__).parent.parent / "docs"
    rows = re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| ([^|]+) \|",
                      (docs / "api.md").read_text(), re.M)  # fmt: skip
    for feature in load_features(DEFAULT_FEATURES):  # a feature's page: | `POST /path` | who |
        page = docs / f"{feature.name}.md"
        if page.is_file():
            rows += re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) ([^`]+)` \| ([^|]+) \|",
                               page.read_text(), re.M)  # fmt: skip
    roles = {(m, PARAM.sub("{}", p)): role.strip() for m, p, role in rows}
    for method, path in ROOM_ROUTES:
        if method == "HEAD":
            continue
        role = roles[(method, PARAM.sub("{}", path))]
        if method == "GET" and path in PUBLIC_READS:
            assert role == "reader", (method, path)
        else:
            assert "public" not in role, (method, path, role)
            assert role != "reader", (method, path, role)


def test_every_read_route_is_tried() -> None:
    assert set(PUBLIC_READS) <= set(ROOM_READS)
    assert len(ROOM_READS) >= 30
