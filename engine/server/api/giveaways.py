"""Giveaway routes: the host opens and closes giveaways; anyone can read them (the seed
only once drawn); a signed-in user enters (with the keyword when the rule asks for one).
Validation of the terms (rules, limits, prizes) is engine/interactive/giveaways/store.py's, as for
every store: the same errors whichever way a giveaway is opened."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.interactive.giveaways.store import check_giveaway_id
from engine.server.api.base import HOSTS, SIGNED_IN, Call, route
from engine.store.meter import MarkerKind


def _giveaway_id(call: Call) -> str:
    return check_giveaway_id(call.request.path_params["giveaway"])


@route("/api/rooms/{room}/giveaways", ["GET"])
async def list_giveaways(call: Call) -> Any:
    await call.load_room()
    return {"giveaways": [g.to_wire() for g in await call.node.giveaways.list(call.room)]}


@route("/api/rooms/{room}/giveaways", ["POST"], roles=HOSTS, status=201)
async def open_giveaway(call: Call) -> Any:
    """Open a giveaway: title, winners, duration_s; rule (any | keyword | watch) with keyword
    or min_watch_s; limits one_win_per_show, exclude_recent_winners; prize_kind (label |
    product | coupon) with prize, sku or template (docs/giveaways.md)."""
    await call.node.rooms.get(call.room)
    giveaway = await call.node.giveaways.create(call.room, await call.json())
    call.node.meter.mark(call.room, MarkerKind.GIVEAWAY, f"Giveaway: {giveaway.title}")
    return giveaway.to_wire()


@route("/api/rooms/{room}/giveaways/{giveaway}", ["GET"])
async def get_giveaway(call: Call) -> Any:
    return (await call.node.giveaways.get(call.room, _giveaway_id(call))).to_wire()


@route("/api/rooms/{room}/giveaways/{giveaway}/enter", ["POST"], roles=SIGNED_IN)
async def enter_giveaway(call: Call) -> Any:
    assert call.claims is not None
    body = await call.object()
    return await call.node.giveaways.enter(
        call.room, _giveaway_id(call), call.claims.user, body.get("keyword"),
        name=call.claims.name,
    )  # fmt: skip


@route("/api/rooms/{room}/giveaways/{giveaway}/close", ["POST"], roles=HOSTS)
async def close_giveaway(call: Call) -> Any:
    return (await call.node.giveaways.close(call.room, _giveaway_id(call))).to_wire()


ROUTES: list[Route] = [list_giveaways, open_giveaway, get_giveaway, enter_giveaway, close_giveaway]
