"""The JSON HTTP API for hosts and moderators (documented in docs/api.md).

Host and moderator routes authenticate with `Authorization: Bearer <token>` for the
room in the path (reading a room, the room list and, in rooms open to anonymous
viewers, the comments is public). Errors are
`{"error": {"code", "message", "retryable", "details"?}}` with the error's HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import auth
from engine.errors import (
    AuthError,
    ForbiddenError,
    LivecartError,
    ProtocolError,
    UnavailableError,
)
from engine.keys import check_room_id, check_user_id
from engine.metrics import METRICS
from engine.moderation import validate_words
from engine.node import Node
from engine.protocol import Role, is_stream_id
from engine.roomlog import Entry
from engine.rooms import RoomAction

MAX_BODY_BYTES = 64 * 1024
MODERATORS = frozenset({Role.HOST, Role.MODERATOR})
HOSTS = frozenset({Role.HOST})


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: LivecartError) -> Response:
    METRICS.errors.inc(1, error.code)
    return OrjsonResponse({"error": error.to_wire()}, status_code=error.http_status)


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"body larger than {MAX_BODY_BYTES} bytes", code="too_large")
    try:
        return orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise ProtocolError("body is not valid JSON", code="bad_request") from None


def node_of(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def require(request: Request, room: str, roles: frozenset[Role]) -> auth.Claims:
    token = auth.bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthError("send Authorization: Bearer <token>", code="auth_required")
    claims = auth.verify(node_of(request).secret, token, room=room)
    if claims.role not in roles:
        raise ForbiddenError(
            f"a {claims.role.value} token cannot do this",
            code="forbidden",
            details={"needs": sorted(r.value for r in roles)},
        )
    return claims


Handler = Callable[[Request], Awaitable[Any]]


def route(path: str, methods: list[str], status: int = 200) -> Callable[[Handler], Route]:
    """A JSON route: the handler returns the body; LivecartErrors become error bodies."""

    def wrap(handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                if "room" in request.path_params:
                    check_room_id(request.path_params["room"])
                result = await handler(request)
            except LivecartError as error:
                return error_response(error)
            except (RedisError, OSError):
                return error_response(UnavailableError("storage unavailable; retry"))
            if result is None:
                return Response(status_code=204)
            return OrjsonResponse(result, status_code=status)

        return Route(path, endpoint, methods=methods, name=handler.__name__)

    return wrap


# ---- rooms ----------------------------------------------------------------------------


@route("/api/rooms", ["GET"])
async def list_rooms(request: Request) -> Any:
    return {"rooms": await node_of(request).rooms.list_ids()}


@route("/api/rooms", ["POST"], status=201)
async def create_room(request: Request) -> Any:
    body = await read_json(request)
    room_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(room_id, str):
        raise ProtocolError("id: the new room's id is required", code="invalid_field")
    check_room_id(room_id)
    claims = require(request, room_id, HOSTS)
    room = await node_of(request).rooms.create(room_id, claims.user, body)
    return room.to_wire()


@route("/api/rooms/{room}", ["GET"])
async def get_room(request: Request) -> Any:
    node = node_of(request)
    room_id = request.path_params["room"]
    room = await node.rooms.get(room_id)
    stats = await node.presence.read(room_id)
    return {**room.to_wire(), "stats": stats.to_wire()}


@route("/api/rooms/{room}", ["PATCH"])
async def update_room(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, HOSTS)
    room = await node_of(request).rooms.update(room_id, await read_json(request))
    return room.to_wire()


@route("/api/rooms/{room}/go-live", ["POST"])
async def go_live(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, HOSTS)
    return (await node_of(request).rooms.transition(room_id, RoomAction.GO_LIVE)).to_wire()


@route("/api/rooms/{room}/end", ["POST"])
async def end_room(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, HOSTS)
    return (await node_of(request).rooms.transition(room_id, RoomAction.END)).to_wire()


@route("/api/rooms/{room}/tokens", ["POST"], status=201)
async def mint_token(request: Request) -> Any:
    """Hosts mint viewer and moderator tokens for their room (e.g. for their own staff)."""
    room_id = request.path_params["room"]
    require(request, room_id, HOSTS)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ProtocolError("body must be an object", code="bad_request")
    try:
        role = Role(body.get("role", "viewer"))
    except ValueError:
        raise ProtocolError("role: viewer or moderator", code="invalid_field") from None
    if role not in {Role.VIEWER, Role.MODERATOR}:
        raise ProtocolError("role: viewer or moderator", code="invalid_field")
    user = body.get("user")
    if not isinstance(user, str):
        raise ProtocolError("user: required", code="invalid_field")
    check_user_id(user)
    ttl = body.get("ttl", auth.DEFAULT_TTL_S)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 60 <= ttl <= 7 * 86400:
        raise ProtocolError("ttl: seconds between 60 and 604800", code="invalid_field")
    name = body.get("name")
    token = auth.mint(
        node_of(request).secret,
        room=room_id,
        role=role,
        user=user,
        name=name if isinstance(name, str) else None,
        ttl_s=ttl,
    )
    return {"token": token, "role": role.value, "user": user}


# ---- comments and moderation ------------------------------------------------------------


@route("/api/rooms/{room}/comments", ["GET"])
async def list_comments(request: Request) -> Any:
    node = node_of(request)
    room_id = request.path_params["room"]
    room = await node.rooms.get(room_id)
    if not room.settings.allow_anonymous:
        require(request, room_id, frozenset(Role) - {Role.ANONYMOUS})
    limit_text = request.query_params.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,3}", limit_text) or not 1 <= int(limit_text) <= 500:
        raise ProtocolError("limit: 1-500", code="invalid_field")
    since = request.query_params.get("since")
    upto = await node.room_log.last_id(room_id)
    entries: list[Entry] | None
    if since is not None:
        if not is_stream_id(since):
            raise ProtocolError("since: an offset such as '1732212345678-0'", code="invalid_field")
        entries = await node.room_log.between(room_id, since, upto, int(limit_text))
        if entries is None:
            raise ProtocolError(
                "since: too old or too far behind; fetch without since", code="invalid_field"
            )
    else:
        entries = [
            e for e in await node.room_log.recent(room_id, upto, int(limit_text)) if e.is_comment
        ]
    return {"offset": upto, "entries": [e.to_wire() for e in entries]}


@route("/api/rooms/{room}/comments/{entry_id}", ["DELETE"])
async def delete_comment(request: Request) -> Any:
    room_id = request.path_params["room"]
    claims = require(request, room_id, MODERATORS)
    entry_id = _entry_id(request.path_params["entry_id"])
    offset = await node_of(request).moderation.delete_comment(room_id, entry_id, claims.user)
    return {"deleted": entry_id, "offset": offset}


def _entry_id(value: Any) -> str:
    if not is_stream_id(value):
        raise ProtocolError(
            "comment id: an entry id such as '1732212345678-0'", code="invalid_field"
        )
    return value


@route("/api/rooms/{room}/pin", ["POST"])
async def pin_comment(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    body = await read_json(request)
    entry_id = _entry_id(body.get("comment_id") if isinstance(body, dict) else None)
    offset = await node_of(request).moderation.pin_comment(room_id, entry_id)
    return {"pinned": entry_id, "offset": offset}


@route("/api/rooms/{room}/pin", ["DELETE"])
async def unpin_comment(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    offset = await node_of(request).moderation.pin_comment(room_id, None)
    return {"pinned": None, "offset": offset}


def _user_and(body: Any, *fields: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        raise ProtocolError("user: required", code="invalid_field")
    return check_user_id(body["user"]), {f: body.get(f) for f in fields}


@route("/api/rooms/{room}/mutes", ["POST"])
async def mute_user(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    user, extra = _user_and(await read_json(request), "minutes")
    minutes = extra["minutes"]
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise ProtocolError("minutes: an integer is required", code="invalid_field")
    until = await node_of(request).moderation.mute(room_id, user, minutes)
    return {"user": user, "muted_until": until}


@route("/api/rooms/{room}/mutes/{user}", ["DELETE"])
async def unmute_user(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    await node_of(request).moderation.unmute(room_id, request.path_params["user"])


@route("/api/rooms/{room}/bans", ["GET"])
async def list_bans(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    return {"users": await node_of(request).moderation.banned(room_id)}


@route("/api/rooms/{room}/bans", ["POST"])
async def ban_user(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    user, _ = _user_and(await read_json(request))
    await node_of(request).moderation.ban(room_id, user)
    return {"user": user, "banned": True}


@route("/api/rooms/{room}/bans/{user}", ["DELETE"])
async def unban_user(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    await node_of(request).moderation.unban(room_id, request.path_params["user"])


@route("/api/rooms/{room}/banned-words", ["GET"])
async def get_banned_words(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    return {"words": await node_of(request).moderation.banned_words(room_id)}


@route("/api/rooms/{room}/banned-words", ["PUT"])
async def put_banned_words(request: Request) -> Any:
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    words = validate_words(await read_json(request))
    await node_of(request).moderation.set_banned_words(room_id, words)
    return {"words": words}


@route("/api/rooms/{room}/slow-mode", ["PUT"])
async def set_slow_mode(request: Request) -> Any:
    """Moderators may change slow mode (other settings are the host's, via PATCH)."""
    room_id = request.path_params["room"]
    require(request, room_id, MODERATORS)
    body = await read_json(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= 3600:
        raise ProtocolError("seconds: 0 (off) to 3600", code="invalid_field")
    room = await node_of(request).rooms.update(
        room_id, {"settings": {"slow_mode_ms": seconds * 1000}}
    )
    return {"slow_mode_ms": room.settings.slow_mode_ms}


ROUTES: list[Route] = [
    list_rooms, create_room, get_room, update_room, go_live, end_room, mint_token,
    list_comments, delete_comment, pin_comment, unpin_comment, mute_user, unmute_user,
    list_bans, ban_user, unban_user, get_banned_words, put_banned_words, set_slow_mode,
]  # fmt: skip
