"""Giveaway routes: the host opens and closes giveaways; anyone can read them (the seed
only once drawn); a signed-in user enters (with the keyword when the rule asks for one).
The bodies are typed (engine/features/giveaways/model.py `GiveawayTerms`, `EntryBody`
below): a body they refuse is `invalid_field` naming the field, before the store runs."""

from __future__ import annotations

from typing import Any, cast

from msgspec import Struct
from starlette.routing import Route

from engine.features.giveaways.model import GiveawayTerms
from engine.features.giveaways.store import NAME, GiveawayStore, check_giveaway_id
from engine.server.api.base import HOSTS, SIGNED_IN, Call, route
from engine.store.meter import MarkerKind


class EntryBody(Struct, frozen=True):
    """The body that enters a giveaway: `{}`, or the keyword a `keyword` rule asks for."""

    keyword: str | None = None


def giveaways_of(call: Call) -> GiveawayStore:
    return cast(GiveawayStore, call.node.service(NAME))


def _giveaway_id(call: Call) -> str:
    return check_giveaway_id(call.request.path_params["giveaway"])


@route("/api/rooms/{room}/giveaways", ["GET"])
async def list_giveaways(call: Call) -> Any:
    await call.load_room()
    return {"giveaways": [g.to_wire() for g in await giveaways_of(call).list(call.room)]}


@route("/api/rooms/{room}/giveaways", ["POST"], roles=HOSTS, status=201)
async def open_giveaway(call: Call) -> Any:
    """Open a giveaway: title, winners, duration_s; rule (any | keyword | watch) with keyword
    or min_watch_s; limits one_win_per_show, exclude_recent_winners; prize_kind (label |
    product | coupon) with prize, sku or template (docs/giveaways.md)."""
    await call.node.rooms.get(call.room)
    giveaway = await giveaways_of(call).create(call.room, await call.decode(GiveawayTerms))
    call.node.meter.mark(call.room, MarkerKind.GIVEAWAY, f"Giveaway: {giveaway.title}")
    return giveaway.to_wire()


@route("/api/rooms/{room}/giveaways/{giveaway}", ["GET"])
async def get_giveaway(call: Call) -> Any:
    return (await giveaways_of(call).get(call.room, _giveaway_id(call))).to_wire()


@route("/api/rooms/{room}/giveaways/{giveaway}/enter", ["POST"], roles=SIGNED_IN)
async def enter_giveaway(call: Call) -> Any:
    assert call.claims is not None
    body = await call.decode(EntryBody)
    return await giveaways_of(call).enter(
        call.room, _giveaway_id(call), call.claims.user, body.keyword, name=call.claims.name,
    )  # fmt: skip


@route("/api/rooms/{room}/giveaways/{giveaway}/close", ["POST"], roles=HOSTS)
async def close_giveaway(call: Call) -> Any:
    return (await giveaways_of(call).close(call.room, _giveaway_id(call))).to_wire()


ROUTES: list[Route] = [list_giveaways, open_giveaway, get_giveaway, enter_giveaway, close_giveaway]
