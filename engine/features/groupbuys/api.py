"""Group-buy routes (store.py): the host opens deals; anyone reads them with their teams; a
signed-in viewer starts a team or joins an open one, then checks the reserved unit out with
`POST /api/rooms/{room}/orders` as usual."""

from __future__ import annotations

from typing import Any, cast

from starlette.routing import Route

from engine.features.groupbuys.store import (
    NAME,
    DealTerms,
    GroupBuys,
    Team,
    check_deal_id,
    check_team_id,
)
from engine.server.api.base import HOSTS, SIGNED_IN, Call, route


def group_buys_of(call: Call) -> GroupBuys:
    return cast(GroupBuys, call.node.service(NAME))


def _deal_id(call: Call) -> str:
    return check_deal_id(call.request.path_params["group_buy"])


def _member_wire(call: Call, team: Team, reservation: str) -> dict[str, Any]:
    return {**team.to_wire(call.room), "reservation": reservation}


@route("/api/rooms/{room}/group-buys", ["GET"])
async def list_group_buys(call: Call) -> Any:
    await call.load_room()
    group_buys = group_buys_of(call)
    deals = await group_buys.list(call.room)
    return {"group_buys": [await group_buys.deal_wire(call.room, deal) for deal in deals]}


@route("/api/rooms/{room}/group-buys", ["POST"], roles=HOSTS, status=201)
async def open_group_buy(call: Call) -> Any:
    """Open a deal: sku, group_price, team_size, window_s, units, per_user_limit."""
    await call.node.rooms.get(call.room)
    group_buys = group_buys_of(call)
    deal = await group_buys.create(call.room, await call.decode(DealTerms))
    return await group_buys.deal_wire(call.room, deal)


@route("/api/rooms/{room}/group-buys/{group_buy}", ["GET"])
async def get_group_buy(call: Call) -> Any:
    group_buys = group_buys_of(call)
    return await group_buys.deal_wire(call.room, await group_buys.get(call.room, _deal_id(call)))


@route("/api/rooms/{room}/group-buys/{group_buy}/teams", ["POST"], roles=SIGNED_IN, status=201)
async def start_team(call: Call) -> Any:
    """Start a team: the caller leads it and holds a unit at the group price."""
    team, reservation = await group_buys_of(call).start(call.room, _deal_id(call), call.author())
    return _member_wire(call, team, reservation)


@route("/api/rooms/{room}/group-buys/{group_buy}/teams/{team}", ["GET"])
async def get_team(call: Call) -> Any:
    team_id = check_team_id(call.request.path_params["team"])
    return (await group_buys_of(call).team(call.room, _deal_id(call), team_id)).to_wire(call.room)


@route("/api/rooms/{room}/group-buys/{group_buy}/teams/{team}/join", ["POST"], roles=SIGNED_IN)
async def join_team(call: Call) -> Any:
    """Join an open team: a unit at the group price, held until the team's deadline."""
    team_id = check_team_id(call.request.path_params["team"])
    team, reservation = await group_buys_of(call).join(
        call.room, _deal_id(call), team_id, call.author()
    )
    return _member_wire(call, team, reservation)


ROUTES: list[Route] = [
    list_group_buys, open_group_buy, get_group_buy, start_team, get_team, join_team,
]  # fmt: skip
