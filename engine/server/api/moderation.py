"""Comment and moderation routes: read comments, delete, pin, mute, ban, banned words,
slow mode. Hosts and moderators may use all of them except reading, which is public in
rooms open to anonymous viewers."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Route

from engine.core.errors import ForbiddenError
from engine.core.fields import invalid_field
from engine.core.stream_ids import is_stream_id
from engine.rooms.moderation import BannedWords, CommentPin, MuteTerms, SlowMode, Target
from engine.rooms.rooms import RoomChanges
from engine.server.api.base import MODERATORS, Call, entry_id, route
from engine.store.keys import check_user_id
from engine.store.roomlog import Entry

MAX_PAGE = 500


async def target_below(call: Call, user: str) -> str:
    """`user`, unless it is the room's host: no one can ban, mute or revoke the host (a
    moderator's ban reaching moderators is stopped where bans are checked, by rank)."""
    room = await call.node.rooms.get(call.room)
    if user == room.host:
        raise ForbiddenError("no one can ban, mute or revoke the room's host", code="forbidden")
    return user


@route("/api/rooms/{room}/comments", ["GET"])
async def list_comments(call: Call) -> Any:
    """Public in a room open to anonymous viewers, else any token for it (`route`)."""
    limit_text = call.request.query_params.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,3}", limit_text) or not 1 <= int(limit_text) <= MAX_PAGE:
        raise invalid_field("limit", f"1-{MAX_PAGE}")
    limit = int(limit_text)
    since = call.request.query_params.get("since")
    log = call.node.room_log
    upto = await log.last_id(call.room)
    entries: list[Entry] | None
    if since is not None:
        if not is_stream_id(since):
            raise invalid_field("since", "an offset such as '1732212345678-0'")
        entries = await log.between(call.room, since, upto, limit)
        if entries is None:
            raise invalid_field("since", "too old or too far behind; fetch without since")
    else:
        entries = [e for e in await log.recent(call.room, upto, limit) if e.is_comment]
    return {"offset": upto, "entries": [e.to_wire() for e in entries]}


@route("/api/rooms/{room}/comments/{entry_id}", ["DELETE"], roles=MODERATORS)
async def delete_comment(call: Call) -> Any:
    assert call.claims is not None
    target = entry_id(call.request.path_params["entry_id"], "comment id")
    offset = await call.node.moderation.delete_comment(call.room, target, call.claims.user)
    return {"deleted": target, "offset": offset}


@route("/api/rooms/{room}/pin", ["POST"], roles=MODERATORS)
async def pin_comment(call: Call) -> Any:
    target = (await call.decode(CommentPin)).comment_id
    offset = await call.node.moderation.pin_comment(call.room, target)
    return {"pinned": target, "offset": offset}


@route("/api/rooms/{room}/pin", ["DELETE"], roles=MODERATORS)
async def unpin_comment(call: Call) -> Any:
    offset = await call.node.moderation.pin_comment(call.room, None)
    return {"pinned": None, "offset": offset}


@route("/api/rooms/{room}/mutes", ["POST"], roles=MODERATORS)
async def mute_user(call: Call) -> Any:
    terms = await call.decode(MuteTerms)
    user = await target_below(call, terms.user)
    until = await call.node.moderation.mute(call.room, user, terms.minutes)
    return {"user": user, "muted_until": until}


@route("/api/rooms/{room}/mutes/{user}", ["DELETE"], roles=MODERATORS)
async def unmute_user(call: Call) -> Any:
    await call.node.moderation.unmute(call.room, check_user_id(call.request.path_params["user"]))


@route("/api/rooms/{room}/bans", ["GET"], roles=MODERATORS)
async def list_bans(call: Call) -> Any:
    return {"users": await call.node.moderation.banned(call.room)}


@route("/api/rooms/{room}/bans", ["POST"], roles=MODERATORS)
async def ban_user(call: Call) -> Any:
    user = await target_below(call, (await call.decode(Target)).user)
    assert call.claims is not None
    await call.node.moderation.ban(call.room, user, by=call.claims.role)
    return {"user": user, "banned": True}


@route("/api/rooms/{room}/bans/{user}", ["DELETE"], roles=MODERATORS)
async def unban_user(call: Call) -> Any:
    await call.node.moderation.unban(call.room, check_user_id(call.request.path_params["user"]))


@route("/api/rooms/{room}/banned-words", ["GET"], roles=MODERATORS)
async def get_banned_words(call: Call) -> Any:
    return {"words": await call.node.moderation.banned_words(call.room)}


@route("/api/rooms/{room}/banned-words", ["PUT"], roles=MODERATORS)
async def put_banned_words(call: Call) -> Any:
    words = (await call.decode(BannedWords)).cleaned()
    await call.node.moderation.set_banned_words(call.room, words)
    return {"words": words}


@route("/api/rooms/{room}/slow-mode", ["PUT"], roles=MODERATORS)
async def set_slow_mode(call: Call) -> Any:
    """Moderators may change slow mode (other settings are the host's, via PATCH)."""
    seconds = (await call.decode(SlowMode)).seconds
    changes = RoomChanges(settings={"slow_mode_ms": seconds * 1000})
    room = await call.node.rooms.update(await call.load_room(), changes)
    return {"slow_mode_ms": room.settings.slow_mode_ms}


ROUTES: list[Route] = [
    list_comments, delete_comment, pin_comment, unpin_comment, mute_user, unmute_user,
    list_bans, ban_user, unban_user, get_banned_words, put_banned_words, set_slow_mode,
]  # fmt: skip
