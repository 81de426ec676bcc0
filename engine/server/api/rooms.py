"""Room routes: create, read, update, go live, end, and minting tokens for the room."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Route

from engine.core.errors import ProtocolError
from engine.core.identity import Role
from engine.rooms import auth
from engine.rooms.moderation import Target
from engine.rooms.rooms import RoomAction, RoomChanges, RoomTerms
from engine.server.api.base import HOSTS, Call, route
from engine.server.api.moderation import target_below
from engine.store.keys import check_room_id


@route("/api/rooms", ["GET"])
async def list_rooms(call: Call) -> Any:
    return {"rooms": await call.node.rooms.listed_ids()}


@route("/api/rooms", ["POST"], status=201)
async def create_room(call: Call) -> Any:
    """The id is read first: the token must be for it. The rest of the body is checked once
    the token is (docs/api.md)."""
    body = await call.json()
    room_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(room_id, str):
        raise ProtocolError("id: the new room's id is required", code="invalid_field")
    check_room_id(room_id)
    claims = await call.authorize(HOSTS, room=room_id)
    terms = await call.decode(RoomTerms)
    return (await call.node.rooms.create(claims.user, terms, host_name=claims.name)).to_wire()


@route("/api/rooms/{room}", ["GET"])
async def get_room(call: Call) -> Any:
    room = await call.load_room()
    stats = await call.node.presence.read(call.room)
    return {**room.to_wire(), "stats": stats.to_wire()}


@route("/api/rooms/{room}", ["PATCH"], roles=HOSTS)
async def update_room(call: Call) -> Any:
    """A body that is not JSON is refused first, then a room that does not exist, then the
    body's fields (docs/api.md)."""
    await call.json()
    room = await call.load_room()
    changes = await call.decode(RoomChanges)
    return (await call.node.rooms.update(room, changes)).to_wire()


@route("/api/rooms/{room}/go-live", ["POST"], roles=HOSTS)
async def go_live(call: Call) -> Any:
    return (await call.node.rooms.transition(call.room, RoomAction.GO_LIVE)).to_wire()


@route("/api/rooms/{room}/end", ["POST"], roles=HOSTS)
async def end_room(call: Call) -> Any:
    return (await call.node.rooms.transition(call.room, RoomAction.END)).to_wire()


@route("/api/rooms/{room}/tokens", ["POST"], roles=HOSTS, status=201)
async def mint_token(call: Call) -> Any:
    """Hosts mint viewer and moderator tokens for their room (e.g. for their own staff)."""
    request = await call.decode(auth.TokenRequest)
    token = auth.mint(
        call.node.secret,
        room=call.room,
        role=Role(request.role),
        user=request.user,
        name=request.display_name(),
        ttl_s=request.ttl,
    )
    return {"token": token, "role": request.role, "user": request.user}


@route("/api/rooms/{room}/revocations", ["POST"], roles=HOSTS)
async def revoke_tokens(call: Call) -> Any:
    """Every token of `user` for this room issued up to now is refused from now on, and
    their open sockets close (engine/rooms/access.py). They sign in again with a newer token."""
    user = await target_below(call, (await call.decode(Target)).user)
    before = await call.node.access.revoke(call.room, user, int(time.time()))
    return {"user": user, "revoked_before": before}


@route("/api/rooms/{room}/revocations", ["GET"], roles=HOSTS)
async def list_revocations(call: Call) -> Any:
    revocations = await call.node.access.revocations(call.room)
    return {"revocations": [{"user": u, "revoked_before": b} for u, b in revocations.items()]}


ROUTES: list[Route] = [
    list_rooms,
    create_room,
    get_room,
    update_room,
    go_live,
    end_room,
    mint_token,
    revoke_tokens,
    list_revocations,
]
