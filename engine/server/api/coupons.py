"""Coupon routes: the host creates templates and drops batches into the room; viewers claim
(here or over the WebSocket) and list their own coupons."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.commerce.coupons import (
    ClaimBody,
    DropTerms,
    TemplateTerms,
    check_drop_id,
    check_template_id,
)
from engine.core.clock import now_ms
from engine.core.errors import NotFoundError
from engine.core.metrics import METRICS
from engine.ledger.customers import customers, write_tier_map
from engine.ledger.viewers import copy_room
from engine.server.api.base import HOSTS, MODERATORS, SIGNED_IN, Call, route
from engine.server.api.customers import ledger_errors, ledger_pool
from engine.store.meter import MarkerKind, Metric


@route("/api/rooms/{room}/coupons/templates", ["GET"], roles=MODERATORS)
async def list_templates(call: Call) -> Any:
    issued = await call.node.coupons.issued(call.room)
    return {
        "templates": [
            {**t.to_wire(), "issued": issued.get(t.id, 0)}
            for t in await call.node.coupons.templates(call.room)
        ]
    }


@route("/api/rooms/{room}/coupons/templates", ["POST"], roles=HOSTS, status=201)
async def create_template(call: Call) -> Any:
    """Amount off above a spend, percent off with a cap, or free shipping; scope, validity
    window, total, per-user limit, stacking."""
    await call.node.rooms.get(call.room)
    terms = await call.decode(TemplateTerms)
    return (await call.node.coupons.create_template(call.room, terms)).to_wire()


@route("/api/rooms/{room}/coupons/templates/{template}/drops", ["POST"], roles=HOSTS, status=201)
async def drop_coupons(call: Call) -> Any:
    """Drop `quantity` coupons now or after `countdown_s`, claimable for `claim_window_s`;
    with `tiers`, by those customers of the room's shop only."""
    template = check_template_id(call.request.path_params["template"])
    terms = await call.decode(DropTerms)
    if terms.tiers is not None:
        await call.node.coupons.template(call.room, template)  # 404 before the ledger's work
        await _publish_tiers(call)
    drop = await call.node.coupons.drop(call.room, template, terms)
    call.node.meter.count(call.room, Metric.COUPON_DROPS)
    title = (await call.node.coupons.template(call.room, template)).title
    call.node.meter.mark(call.room, MarkerKind.COUPON_DROP, f"{drop.quantity} coupons: {title}")
    return drop.to_wire()


async def _publish_tiers(call: Call) -> None:
    """Write the shop's tier map into the room before a tiered drop exists, so its first
    claim already reads it; each tiered drop refreshes it (docs/orders.md § Tiered drops)."""
    pool = ledger_pool(call)  # 409 ledger_disabled before anything is written
    shop = (await call.load_room()).host
    now = now_ms()
    async with ledger_errors():
        await copy_room(call.node.redis, pool, call.room, at_ms=now)
        found = await customers(pool, shop, as_of=now)
    await write_tier_map(call.node.redis, call.room, found.tier_map())


@route("/api/rooms/{room}/coupons/drops", ["GET"])
async def list_drops(call: Call) -> Any:
    await call.load_room()
    return {"drops": [d.to_wire() for d in await call.node.coupons.drops(call.room)]}


@route("/api/rooms/{room}/coupons/drops/{drop}", ["GET"])
async def get_drop(call: Call) -> Any:
    drop = check_drop_id(call.request.path_params["drop"])
    return (await call.node.coupons.get_drop(call.room, drop)).to_wire()


@route("/api/rooms/{room}/coupons/drops/{drop}/claim", ["POST"], roles=SIGNED_IN)
async def claim_coupon(call: Call) -> Any:
    """Claim one coupon; `id` makes it idempotent. The answer's `status` is claimed,
    sold_out, limit_reached, not_started or ended (as over the WebSocket)."""
    assert call.claims is not None
    drop = check_drop_id(call.request.path_params["drop"])
    request_id = (await call.decode(ClaimBody)).id
    answer = await call.node.coupons.claim(call.room, drop, call.claims.user, request_id)
    if answer.status == "drop_not_found":
        raise NotFoundError(f"no coupon drop {drop!r} in this room", code="drop_not_found")
    METRICS.coupon_claims.inc(1, answer.status)
    return {**answer.body, "replayed": answer.replayed}


@route("/api/rooms/{room}/coupons/mine", ["GET"], roles=SIGNED_IN)
async def my_coupons(call: Call) -> Any:
    assert call.claims is not None
    return {"coupons": await call.node.coupons.wallet(call.room, call.claims.user)}


ROUTES: list[Route] = [
    list_templates,
    create_template,
    drop_coupons,
    list_drops,
    get_drop,
    claim_coupon,
    my_coupons,
]
