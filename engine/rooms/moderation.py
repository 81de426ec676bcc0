"""Moderation: the banned-word filter (pure), the bodies hosts and moderators send, and their
actions on Redis.

Actions that change what viewers see (delete, pin) go through the room log. Actions on
a user (mute, ban) change Redis state that the comment script checks atomically, then
tell every engine process on the room's bus so they can notify or disconnect the user.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct
from redis.asyncio import Redis

from engine.core.errors import NotFoundError
from engine.core.fields import invalid_field
from engine.core.identity import Role
from engine.core.stream_ids import is_stream_id
from engine.rooms.auth import UserId
from engine.store import keys
from engine.store.redis_client import text, texts
from engine.store.roomlog import publish_control
from engine.store.scripts import Scripts

MAX_BANNED_WORDS = 500
MAX_WORD_CHARS = 40
MAX_MUTE_MINUTES = 7 * 24 * 60
MAX_SLOW_MODE_S = 3600
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


# ---- what a host or moderator sends -----------------------------------------------------


class Target(Struct, frozen=True):
    """A body naming the user to ban (or whose tokens to revoke)."""

    user: UserId


class MuteTerms(Target, frozen=True):
    """The body of POST .../mutes."""

    minutes: Annotated[int, Meta(ge=1, le=MAX_MUTE_MINUTES)]


class CommentPin(Struct, frozen=True):
    """The body of POST .../pin."""

    comment_id: str

    def __post_init__(self) -> None:
        if not is_stream_id(self.comment_id):
            raise invalid_field("comment_id", "an entry id such as '1732212345678-0'")


class BannedWords(Struct, frozen=True):
    """A room's new banned-word list: at most MAX_BANNED_WORDS as sent, each at most
    MAX_WORD_CHARS characters once trimmed."""

    words: Annotated[list[str], Meta(max_length=MAX_BANNED_WORDS)]

    def __post_init__(self) -> None:
        if any(len(word) > MAX_WORD_CHARS for word in self.cleaned()):
            raise invalid_field("words", f"each at most {MAX_WORD_CHARS} characters")

    def cleaned(self) -> list[str]:
        """The words trimmed, without empty ones and duplicates, sorted."""
        return sorted({word.strip() for word in self.words} - {""})


class SlowMode(Struct, frozen=True):
    """The body of PUT .../slow-mode."""

    seconds: Annotated[int, Meta(ge=0, le=MAX_SLOW_MODE_S)]


# ---- actions ----------------------------------------------------------------------------


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
        """Mute `user` for `minutes` (`MuteTerms`); returns when the mute ends (epoch ms)."""
        keys.check_user_id(user)
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
