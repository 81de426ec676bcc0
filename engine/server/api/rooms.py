"""Room routes: create, read, update, go live, end, and minting tokens for the room."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Route

from engine.core.errors import ProtocolError
from engine.core.fields import int_field, invalid_field
from engine.core.identity import Role
from engine.rooms import auth
from engine.rooms.rooms import RoomAction
from engine.server.api.base import HOSTS, Call, route, user_field
from engine.server.api.moderation import target_below
from engine.store.keys import check_room_id

MAX_TOKEN_TTL_S = 7 * 86400


@route("/api/rooms", ["GET"])
async def list_rooms(call: Call) -> Any:
    return {"rooms": await call.node.rooms.list_ids()}


@route("/api/rooms", ["POST"], status=201)
async def create_room(call: Call) -> Any:
    body = await call.json()
    room_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(room_id, str):
        raise ProtocolError("id: the new room's id is required", code="invalid_field")
    check_room_id(room_id)
    claims = await call.authorize(HOSTS, room=room_id)
    return (await call.node.rooms.create(room_id, claims.user, body)).to_wire()


@route("/api/rooms/{room}", ["GET"])
async def get_room(call: Call) -> Any:
    room = await call.load_room()
    stats = await call.node.presence.read(call.room)
    return {**room.to_wire(), "stats": stats.to_wire()}


@route("/api/rooms/{room}", ["PATCH"], roles=HOSTS)
async def update_room(call: Call) -> Any:
    return (await call.node.rooms.update(call.room, await call.json())).to_wire()


@route("/api/rooms/{room}/go-live", ["POST"], roles=HOSTS)
async def go_live(call: Call) -> Any:
    return (await call.node.rooms.transition(call.room, RoomAction.GO_LIVE)).to_wire()


@route("/api/rooms/{room}/end", ["POST"], roles=HOSTS)
async def end_room(call: Call) -> Any:
    return (await call.node.rooms.transition(call.room, RoomAction.END)).to_wire()


@route("/api/rooms/{room}/tokens", ["POST"], roles=HOSTS, status=201)
async def mint_token(call: Call) -> Any:
    """Hosts mint viewer and moderator tokens for their room (e.g. for their own staff)."""
    body = await call.object()
    try:
        role = Role(body.get("role", "viewer"))
    except ValueError:
        raise invalid_field("role", "viewer or moderator") from None
    if role not in {Role.VIEWER, Role.MODERATOR}:
        raise invalid_field("role", "viewer or moderator")
    user = user_field(body)
    ttl = int_field(body, "ttl", 60, MAX_TOKEN_TTL_S, default=auth.DEFAULT_TTL_S)
    name = body.get("name")
    token = auth.mint(
        call.node.secret,
        room=call.room,
        role=role,
        user=user,
        name=name if isinstance(name, str) else None,
        ttl_s=ttl,
    )
    return {"token": token, "role": role.value, "user": user}


@route("/api/rooms/{room}/revocations", ["POST"], roles=HOSTS)
async def revoke_tokens(call: Call) -> Any:
    """Every token of `user` for this room issued up to now is refused from now on, and
    their open sockets close (engine/rooms/access.py). They sign in again with a newer token."""
    user = await target_below(call, user_field(await call.object()))
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
