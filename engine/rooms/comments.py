"""Posting comments: validation in the engine, limits and the append in one Lua script."""

from __future__ import annotations

import unicodedata

import orjson
from redis.asyncio import Redis

from engine.core.errors import LivecartError, RejectedError, error_for_code
from engine.core.identity import Author, Role
from engine.rooms.moderation import BannedWordFilter
from engine.rooms.rooms import RoomSettings
from engine.store import keys
from engine.store.roomlog import Entry
from engine.store.script_batch import ScriptBatch
from engine.store.scripts import Scripts

_MESSAGES = {
    "room_not_found": "the room does not exist",
    "room_not_open": "the show has ended; comments are closed",
    "banned": "you are banned from this room",
    "muted": "you are muted in this room",
    "slow_mode": "slow mode is on; wait before commenting again",
    "rate_limited": "too many comments; wait a moment",
}


_EMOJI_FORMAT = {"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}  # ZWJ, tag characters


def clean_text(text: str) -> str:
    """One line of printable text: newlines and tabs become spaces; control, private-use,
    unassigned and format characters (bidi overrides among them) are dropped, except
    the joiner and tag characters that build emoji sequences."""
    out = []
    for ch in text:
        if ch in "\r\n\t":
            out.append(" ")
        elif ch in _EMOJI_FORMAT or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            out.append(ch)
    return " ".join("".join(out).split())


def check_comment(text: str, settings: RoomSettings, words: BannedWordFilter, role: Role) -> str:
    """Validate and clean a comment's text, or raise a RejectedError."""
    cleaned = clean_text(text)
    if not cleaned:
        raise RejectedError("a comment needs some text", code="comment_empty")
    if len(cleaned) > settings.max_comment_chars:
        raise RejectedError(
            f"comments are at most {settings.max_comment_chars} characters in this room",
            code="comment_too_long",
            details={"max": settings.max_comment_chars},
        )
    if not role.privileged and words.match(cleaned) is not None:
        raise RejectedError("the comment contains a blocked word", code="comment_blocked")
    return cleaned


class CommentService:
    def __init__(self, redis: Redis, scripts: Scripts, stream_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.stream_maxlen = stream_maxlen
        # A busy room's comments go to Redis in batches (engine/store/script_batch.py).
        self.posting = ScriptBatch(redis, scripts, "comment_post")

    async def post(
        self,
        room: str,
        author: Author,
        text: str,
        settings: RoomSettings,
        words: BannedWordFilter,
    ) -> Entry:
        cleaned = check_comment(text, settings, words, author.role)
        data = {
            "user": author.user,
            "name": author.name,
            "role": author.role.value,
            "text": cleaned,
        }
        encoded = orjson.dumps(data)
        result = await self.posting.call(
            room,
            [
                keys.room_meta(room),
                keys.room_stream(room),
                keys.banned_users(room),
                keys.muted(room, author.user),
                keys.slow_mode(room, author.user),
                keys.comment_rate(room, author.user),
            ],
            [
                author.user,
                "1" if author.role.privileged else "0",
                encoded,
                self.stream_maxlen,
                keys.room_bus(room),
            ],
        )
        if result[0] != b"ok":
            raise _rejection(result[1].decode(), int(result[2]))
        return Entry(id=result[1].decode(), kind="comment", ref="", data=data)


def _rejection(code: str, retry_after_ms: int) -> LivecartError:
    details = {"retry_after_ms": retry_after_ms} if retry_after_ms > 0 else None
    return error_for_code(code, _MESSAGES.get(code, code), details)
