"""Tiered coupon drops (docs/orders.md § Tiered drops): a drop names the customer tiers that
may claim; the claim script refuses anyone else with `tier_not_eligible`, from the room's
tier map, which the drop route writes from the books (engine/ledger/customers.py). Over
the WebSocket, over HTTP and on the viewer's phone page."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.async_api import expect

from clients import HostClient, LivecartClientError, ShopperClient
from engine.commerce.coupons import DropTerms
from engine.core.clock import now_ms
from engine.core.errors import ProtocolError
from engine.insights.audit import audit_room
from engine.server.app import Engine
from engine.store import keys
from engine.store.redis_client import text
from tests.conftest import EngineFactory, Store, ViewerFactory, decoded, needs_chromium, token
from tests.pages import OpenViewer
from tests.test_coupons import AMOUNT_OFF, claim, drop, template
from tests.test_customers import EXPECTED, new_room, seed


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


# ---- the claim script, with a tier map written by hand -----------------------------------


async def test_a_tiered_drop_answers_only_its_tiers(store: Store) -> None:
    redis = store.shop.redis
    await redis.hset(keys.customer_tiers(store.room), mapping={"ana": "champions",
                                                               "eve": "at_risk"})  # fmt: skip
    made = await template(store, per_user_limit=1)
    tiered = await drop(store, made.id, 3, tiers=["champions", "prospect", "champions"])
    assert tiered.tiers == ("champions", "prospect")  # repeats dropped, order kept
    assert tiered.to_wire()["tiers"] == ["champions", "prospect"]
    assert (await claim(store, tiered.id, "ana"))["status"] == "claimed"
    refused = await claim(store, tiered.id, "eve", "e1")
    assert refused == {"status": "tier_not_eligible", "tiers": ["champions", "prospect"],
                       "replayed": False}  # fmt: skip
    assert (await claim(store, tiered.id, "eve", "e1"))["replayed"] is True
    # Nobody the map names is a prospect: a first-time viewer may claim.
    assert (await claim(store, tiered.id, "walk-in"))["status"] == "claimed"
    counted = await store.coupons.get_drop(store.room, tiered.id)
    assert (counted.remaining, counted.claimed) == (1, 2)
    # An untiered drop of the same room ignores the map.
    anyone = await drop(store, (await template(store)).id, 2)
    assert anyone.tiers is None
    assert (await claim(store, anyone.id, "eve"))["status"] == "claimed"
    await store.audit_ok()


async def test_the_window_is_checked_before_the_tier(store: Store) -> None:
    made = await template(store)
    later = await drop(store, made.id, 2, countdown_s=60, tiers=["loyal"])
    assert (await claim(store, later.id, "eve"))["status"] == "not_started"


@pytest.mark.parametrize(
    ("tiers", "field"),
    [([], "tiers"), ("champions", "tiers"), (["loyal"] * 9, "tiers"), (["gold"], "tiers[0]"),
     (["new", None], "tiers[1]")],
)  # fmt: skip
async def test_tiers_must_be_known_tier_names(tiers: Any, field: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        await decoded({"quantity": 5, "tiers": tiers}, DropTerms)
    assert (refused.value.code, refused.value.details) == ("invalid_field", {"field": field})


# ---- through the engine: the books decide ----------------------------------------------


@pytest.fixture
async def engine(ledger_url: str, engine_factory: EngineFactory, request: pytest.FixtureRequest
                 ) -> Engine:  # fmt: skip
    """The engine of these tests (viewers and pages included): with books, unless a test
    asks for one without (`@pytest.mark.parametrize("engine", [False], indirect=True)`)."""
    if getattr(request, "param", True):
        return await engine_factory(ledger=True, database_url=ledger_url)
    return await engine_factory()


async def tiered_drop(engine: Engine, ledger_url: str, tiers: list[str],
                      quantity: int = 5) -> tuple[str, str, dict[str, Any]]:  # fmt: skip
    """A live room of a new shop whose books hold tests/test_customers.py's hand-built
    customers (dated from now), and a drop of `quantity` coupons for `tiers`:
    (room, shop, the drop)."""
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    await seed(ledger_url, shop, now_ms(), prefix=f"{room}-")
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        made = await host.create_coupon(**AMOUNT_OFF)
        dropped = await host.drop_coupons(made["id"], quantity, tiers=tiers)
    return room, shop, dropped


async def test_a_champion_claims_and_an_outsider_is_refused_over_the_websocket(
    engine: Engine, viewer_factory: ViewerFactory, ledger_url: str
) -> None:
    assert engine.node is not None
    room, shop, dropped = await tiered_drop(engine, ledger_url, ["champions"])
    assert dropped["tiers"] == ["champions"]
    # The tier map the claim script reads: the shop's buyers, as the books rank them.
    raw = await engine.node.redis.hgetall(keys.customer_tiers(room))
    assert {text(k): text(v) for k, v in raw.items()} == {u: e[4] for u, e in EXPECTED.items()}
    ana = await viewer_factory(room, user="ana")
    eve = await viewer_factory(room, user="eve")
    zoe = await viewer_factory(room, user="zoe")
    # Viewers see which tiers a drop is for on its card.
    [card] = zoe.welcome["drops"]
    assert card["tiers"] == ["champions"]
    won = await ana.claim(dropped["id"])
    assert (won["status"], won["replayed"]) == ("claimed", False)
    for outsider in (eve, zoe):  # at risk; a prospect (watched, never bought)
        refused = await outsider.claim(dropped["id"], request_id="c1")
        assert refused == {"status": "tier_not_eligible", "tiers": ["champions"],
                           "replayed": False}  # fmt: skip
    again = await zoe.claim(dropped["id"], request_id="c1")
    assert (again["status"], again["replayed"]) == ("tier_not_eligible", True)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ben")) as ben:
        over_http = await ben.claim(dropped["id"])
    assert over_http["status"] == "tier_not_eligible"
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        [counted] = await host.drops()
    assert (counted["claimed"], counted["remaining"]) == (1, 4)
    report = await audit_room(engine.node.redis, room)
    assert report.ok, report.render()


async def test_a_drop_for_prospects_refuses_buyers(
    engine: Engine, viewer_factory: ViewerFactory, ledger_url: str
) -> None:
    room, _, dropped = await tiered_drop(engine, ledger_url, ["prospect", "new"])
    answers = {}
    for user in ("zoe", "newcomer", "cat", "ana"):
        viewer = await viewer_factory(room, user=user)
        answers[user] = (await viewer.claim(dropped["id"]))["status"]
    assert answers == {"zoe": "claimed", "newcomer": "claimed", "cat": "claimed",
                       "ana": "tier_not_eligible"}  # fmt: skip


@pytest.mark.parametrize("engine", [False], indirect=True)
async def test_a_tiered_drop_needs_the_books(engine: Engine) -> None:
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        made = await host.create_coupon(**AMOUNT_OFF)
        with pytest.raises(LivecartClientError) as missing:
            await host.drop_coupons("t99", 5, tiers=["loyal"])
        assert missing.value.code == "template_not_found"  # checked before the books
        with pytest.raises(LivecartClientError) as refused:
            await host.drop_coupons(made["id"], 5, tiers=["loyal"])
        assert (refused.value.status, refused.value.code) == (409, "ledger_disabled")
        assert await host.drops() == []  # nothing dropped
        anyone = await host.drop_coupons(made["id"], 5)
    assert anyone["tiers"] is None
    assert engine.node is not None
    assert not await engine.node.redis.exists(keys.customer_tiers(room))


@pytest.mark.browser
@needs_chromium
async def test_the_viewer_page_says_a_refused_claim_is_for_some_customers(
    open_viewer: OpenViewer, engine: Engine, ledger_url: str
) -> None:
    room, _, _ = await tiered_drop(engine, ledger_url, ["champions"])
    outsider = await open_viewer(room, "zoe")
    page = outsider.page
    await expect(page.locator("#drop")).to_be_visible()
    await page.locator("#claim").tap()
    await expect(page.locator("#drop-state")).to_have_text("for some of this shop's customers only")
    await expect(page.locator("#claim")).to_be_hidden()  # nothing to tap again
    await outsider.shot("tier-not-eligible")
    champion = (await open_viewer(room, "ana")).page
    await champion.locator("#claim").tap()
    await expect(champion.locator("#drop-state")).to_have_text("claimed ✓")
