"""Moderation: the banned-word filter (pure) and the host/moderator actions on Redis.

Actions that change what viewers see (delete, pin) go through the room log. Actions on
a user (mute, ban) change Redis state that the comment script checks atomically, then
tell every engine process on the room's bus so they can notify or disconnect the user.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.core.errors import NotFoundError, ProtocolError
from engine.core.identity import Role
from engine.store import keys
from engine.store.redis_client import text, texts
from engine.store.roomlog import publish_control
from engine.store.scripts import Scripts

MAX_BANNED_WORDS = 500
MAX_WORD_CHARS = 40
MAX_MUTE_MINUTES = 7 * 24 * 60
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def normalize(text: str) -> str:
    """Case- and width-insensitive form (NFKC + casefold), zero-width characters removed."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_ZERO_WIDTH)


def _compact(text: str) -> str:
    """Letters and digits only, so "b.a d" matches "bad"."""
    return "".join(ch for ch in text if ch.isalnum())


class BannedWordFilter:
    """Matches banned words as substrings of the normalized text, and of the text with
    spaces and punctuation removed (catching "b a d" and "b.a.d"). Substring matching
    can over-block (the Scunthorpe problem), so hosts keep lists short and specific."""

    __slots__ = ("_compacted", "words")

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words: tuple[str, ...] = tuple(sorted({normalize(w).strip() for w in words} - {""}))
        self._compacted = tuple((w, _compact(w)) for w in self.words)

    def match(self, text: str) -> str | None:
        """The first banned word found in `text`, else None."""
        if not self.words:
            return None
        normal = normalize(text)
        compact = _compact(normal)
        for word, compact_word in self._compacted:
            if word in normal or (compact_word and compact_word in compact):
                return word
        return None


def validate_words(body: Any) -> list[str]:
    words = body.get("words") if isinstance(body, dict) else None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ProtocolError("words: must be a list of strings", code="invalid_field")
    if len(words) > MAX_BANNED_WORDS:
        raise ProtocolError(f"words: at most {MAX_BANNED_WORDS}", code="invalid_field")
    cleaned = sorted({w.strip() for w in words} - {""})
    if any(len(w) > MAX_WORD_CHARS for w in cleaned):
        raise ProtocolError(
            f"words: each at most {MAX_WORD_CHARS} characters", code="invalid_field"
        )
    return cleaned


class Moderation:
    def __init__(self, redis: Redis, scripts: Scripts, stream_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.stream_maxlen = stream_maxlen

    async def _control(self, room: str, kind: str, data: dict[str, Any]) -> None:
        await publish_control(self.redis, self.scripts, room, kind, data)

    async def delete_comment(self, room: str, entry_id: str, by: str) -> str:
        result = await self.scripts.comment_delete(
            self.redis,
            [keys.room_meta(room), keys.room_stream(room)],
            [entry_id, orjson.dumps({"by": by}), self.stream_maxlen, keys.room_bus(room)],
        )
        if result[0] != b"ok":
            raise NotFoundError(
                f"no comment {entry_id!r} in the room log", code="comment_not_found"
            )
        return text(result[1])

    async def pin_comment(self, room: str, entry_id: str | None) -> str:
        result = await self.scripts.comment_pin(
            self.redis,
            [keys.room_meta(room), keys.room_stream(room)],
            [entry_id or "", self.stream_maxlen, keys.room_bus(room)],
        )
        if result[0] != b"ok":
            what = f"comment {entry_id!r}" if entry_id else "pinned comment"
            raise NotFoundError(f"no {what}", code="comment_not_found")
        return text(result[1])

    async def mute(self, room: str, user: str, minutes: int) -> int:
        """Mute `user` for `minutes`; returns when the mute ends (epoch ms)."""
        keys.check_user_id(user)
        if not 1 <= minutes <= MAX_MUTE_MINUTES:
            raise ProtocolError(
                f"minutes: must be between 1 and {MAX_MUTE_MINUTES}", code="invalid_field"
            )
        seconds, micros = await self.redis.time()
        until = seconds * 1000 + micros // 1000 + minutes * 60_000
        await self.redis.set(keys.muted(room, user), "1", px=minutes * 60_000)
        await self._control(room, "muted", {"user": user, "until": until})
        return int(until)

    async def unmute(self, room: str, user: str) -> None:
        keys.check_user_id(user)
        if await self.redis.delete(keys.muted(room, user)):
            await self._control(room, "unmuted", {"user": user})

    async def ban(self, room: str, user: str, by: Role = Role.HOST) -> None:
        """Ban `user`; the ban reaches only their tokens of a role ranked below `by`'s (a
        moderator's ban cannot lock out a moderator, no ban a host)."""
        keys.check_user_id(user)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.banned_users(room), user)
            pipe.hset(keys.ban_ranks(room), user, by.rank)
            await pipe.execute()
        await self._control(room, "banned", {"user": user, "rank": by.rank})

    async def unban(self, room: str, user: str) -> None:
        keys.check_user_id(user)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.banned_users(room), user)
            pipe.hdel(keys.ban_ranks(room), user)
            await pipe.execute()

    async def is_banned(self, room: str, user: str) -> bool:
        return bool(await self.redis.sismember(keys.banned_users(room), user))

    async def banned(self, room: str) -> list[str]:
        return texts(await self.redis.smembers(keys.banned_users(room)))

    async def set_banned_words(self, room: str, words: list[str]) -> None:
        key = keys.banned_words(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if words:
                pipe.sadd(key, *words)
            await pipe.execute()
        await self._control(room, "banned_words", {})

    async def banned_words(self, room: str) -> list[str]:
        return texts(await self.redis.smembers(keys.banned_words(room)))
