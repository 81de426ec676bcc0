"""engine.rooms.comments: text cleaning, validation, and posting through the Lua limits."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.core.errors import (
    ConflictError,
    ForbiddenError,
    LivecartError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
)
from engine.core.identity import Author, Role
from engine.rooms.comments import CommentService, check_comment, clean_text
from engine.rooms.moderation import BannedWordFilter, Moderation
from engine.rooms.rooms import RoomAction, RoomSettings, RoomStore, RoomTerms
from engine.store import keys
from engine.store.redis_client import stream_rows
from engine.store.scripts import Scripts

VIEWER = Author("v1", "Viewer One", Role.VIEWER)
HOST = Author("h1", "Host", Role.HOST)
MODERATOR = Author("m1", "Mod", Role.MODERATOR)
NO_WORDS = BannedWordFilter()


# ---- clean_text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("hello", "hello"),
        ("  hello   world  ", "hello world"),
        ("line1\nline2\r\nline3", "line1 line2 line3"),
        ("tab\there", "tab here"),
        ("\n\n\t", ""),
        ("a\x00b\x07c\x1bd\x7f", "abcd"),  # C0 controls and DEL dropped
        ("a\x85b", "ab"),  # C1 control
        ("abc\u202edcba", "abcdcba"),  # right-to-left override
        ("\u2066x\u2069\u200f", "x"),  # bidi isolates and marks
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("para\u2029graph\u2028line", "para graph line"),  # separators are whitespace
        ("private\ue000use", "privateuse"),
        ("unassigned\U000e0fffok", "unassignedok"),
        ("emoji 👍🏽 and ñ, 中文", "emoji 👍🏽 and ñ, 中文"),
        ("\ud800lone surrogate", "lone surrogate"),
    ],
)
def test_clean_text(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


# ---- check_comment ----------------------------------------------------------------------


def rejection(text: str, settings: RoomSettings, words: BannedWordFilter, role: Role) -> str:
    with pytest.raises(RejectedError) as info:
        check_comment(text, settings, words, role)
    assert info.value.http_status == 422
    return info.value.code


@pytest.mark.parametrize("text", ["", "   ", "\n\t\r", "\u202e\u200b", "\x00\x01"])
def test_check_empty(text: str) -> None:
    assert rejection(text, RoomSettings(), NO_WORDS, Role.VIEWER) == "comment_empty"
    assert rejection(text, RoomSettings(), NO_WORDS, Role.HOST) == "comment_empty"


def test_check_length_after_cleaning() -> None:
    settings = RoomSettings(max_comment_chars=5)
    assert check_comment("12345", settings, NO_WORDS, Role.VIEWER) == "12345"
    assert check_comment(" 1\u200b2\n\n34\t", settings, NO_WORDS, Role.VIEWER) == "12 34"
    with pytest.raises(RejectedError) as info:
        check_comment("123456", settings, NO_WORDS, Role.VIEWER)
    assert info.value.code == "comment_too_long"
    assert info.value.details == {"max": 5}
    # Hosts are bound by the length limit too.
    assert rejection("123456", settings, NO_WORDS, Role.HOST) == "comment_too_long"


def test_check_banned_words() -> None:
    words = BannedWordFilter(["scam"])
    settings = RoomSettings()
    assert rejection("total S C A M!", settings, words, Role.VIEWER) == "comment_blocked"
    assert check_comment("this is fine", settings, words, Role.VIEWER) == "this is fine"


@pytest.mark.parametrize("role", [Role.HOST, Role.MODERATOR])
def test_check_privileged_bypass_banned_words(role: Role) -> None:
    words = BannedWordFilter(["scam"])
    assert check_comment("not a scam", RoomSettings(), words, role) == "not a scam"


# ---- CommentService.post on real Redis --------------------------------------------------


@pytest.fixture
async def scripts(redis: aioredis.Redis) -> Scripts:
    loaded = Scripts()
    await loaded.load(redis)
    return loaded


@pytest.fixture
async def make_room(
    redis: aioredis.Redis, scripts: Scripts
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    made: list[str] = []

    async def make(**settings: Any) -> str:
        room = f"t-{secrets.token_hex(4)}"
        await RoomStore(redis, scripts, 100).create(
            "h1", RoomTerms(id=room, title="T", settings=settings)
        )
        made.append(room)
        return room

    yield make
    for room in made:
        found = [k async for k in redis.scan_iter(match=keys.room_keys_pattern(room))]
        if found:
            await redis.delete(*found)


@pytest.fixture
def service(redis: aioredis.Redis, scripts: Scripts) -> CommentService:
    return CommentService(redis, scripts, stream_maxlen=100)


async def refused(
    service: CommentService, room: str, author: Author = VIEWER, text: str = "hi"
) -> LivecartError:
    with pytest.raises(LivecartError) as info:
        await service.post(room, author, text, RoomSettings(), NO_WORDS)
    return info.value


async def test_post_appends_to_the_log(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    room = await make_room()
    entry = await service.post(room, VIEWER, "  hello\nworld ", RoomSettings(), NO_WORDS)
    data = {"user": "v1", "name": "Viewer One", "role": "viewer", "text": "hello world"}
    assert (entry.kind, entry.ref, entry.data) == ("comment", "", data)
    rows = stream_rows(await redis.xrange(keys.room_stream(room)))
    assert [(i.decode(), f[b"k"], f[b"r"], orjson.loads(f[b"d"])) for i, f in rows] == [
        (entry.id, b"comment", b"", data)
    ]


async def test_post_validates_before_redis(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    room = await make_room()
    error = await refused(service, room, text="\n")
    assert error.code == "comment_empty"
    with pytest.raises(RejectedError) as info:
        await service.post(room, VIEWER, "a scam", RoomSettings(), BannedWordFilter(["scam"]))
    assert info.value.code == "comment_blocked"
    assert await redis.xlen(keys.room_stream(room)) == 0


async def test_rate_limit(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    room = await make_room(comment_rate_max=3, comment_rate_window_ms=60_000)
    for n in range(3):
        await service.post(room, VIEWER, f"c{n}", RoomSettings(), NO_WORDS)
    error = await refused(service, room)
    assert isinstance(error, RateLimitedError)
    assert error.code == "rate_limited"
    assert error.retryable is True
    assert 0 < error.details["retry_after_ms"] <= 60_000
    assert await redis.xlen(keys.room_stream(room)) == 3
    # The limit is per user: another viewer still gets through.
    other = Author("v2", "Viewer Two", Role.VIEWER)
    assert (await service.post(room, other, "me too", RoomSettings(), NO_WORDS)).data[
        "user"
    ] == "v2"


async def test_rate_limit_window_resets(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    room = await make_room(comment_rate_max=1, comment_rate_window_ms=1_000)
    await service.post(room, VIEWER, "one", RoomSettings(), NO_WORDS)
    error = await refused(service, room)
    assert error.code == "rate_limited"
    retry_after_ms = error.details["retry_after_ms"]
    assert 0 < retry_after_ms <= 1_000
    # The point of the test: the window runs out by itself (Redis expires it), after the
    # time the refusal said to wait.
    await asyncio.sleep(retry_after_ms / 1000 + 0.02)
    assert (await service.post(room, VIEWER, "two", RoomSettings(), NO_WORDS)).data["text"] == "two"
    # A new window has started: the next comment in it is limited again.
    assert (await refused(service, room)).code == "rate_limited"
    assert await redis.xlen(keys.room_stream(room)) == 2


async def test_rate_limit_off(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    """The same burst of 12 that a limit of 3 cuts to 3 goes through whole with the limit
    off (`comment_rate_max=0`), and nothing is counted for it."""
    limited = await make_room(comment_rate_max=3, comment_rate_window_ms=60_000)
    unlimited = await make_room(comment_rate_max=0, comment_rate_window_ms=60_000)
    outcomes: dict[str, list[str]] = {}
    for room in (limited, unlimited):
        outcomes[room] = []
        for n in range(12):
            try:
                await service.post(room, VIEWER, f"c{n}", RoomSettings(), NO_WORDS)
                outcomes[room].append("ok")
            except RateLimitedError as error:
                outcomes[room].append(error.code)
    assert outcomes[limited] == ["ok"] * 3 + ["rate_limited"] * 9
    assert outcomes[unlimited] == ["ok"] * 12
    assert await redis.xlen(keys.room_stream(unlimited)) == 12
    assert await redis.exists(keys.comment_rate(unlimited, VIEWER.user)) == 0


async def test_slow_mode(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    room = await make_room(slow_mode_ms=60_000, comment_rate_max=0)
    await service.post(room, VIEWER, "first", RoomSettings(), NO_WORDS)
    error = await refused(service, room)
    assert isinstance(error, RateLimitedError)
    assert error.code == "slow_mode"
    assert 0 < error.details["retry_after_ms"] <= 60_000
    other = Author("v2", "Viewer Two", Role.VIEWER)
    await service.post(room, other, "mine", RoomSettings(), NO_WORDS)
    assert await redis.xlen(keys.room_stream(room)) == 2


async def test_slow_mode_rejection_does_not_spend_rate(
    service: CommentService, make_room: Callable[..., Awaitable[str]], redis: aioredis.Redis
) -> None:
    room = await make_room(slow_mode_ms=60_000, comment_rate_max=5)
    await service.post(room, VIEWER, "first", RoomSettings(), NO_WORDS)
    for _ in range(3):
        assert (await refused(service, room)).code == "slow_mode"
    assert await redis.get(keys.comment_rate(room, VIEWER.user)) == b"1"


async def test_muted(
    service: CommentService,
    make_room: Callable[..., Awaitable[str]],
    redis: aioredis.Redis,
    scripts: Scripts,
) -> None:
    room = await make_room()
    moderation = Moderation(redis, scripts, 100)
    await moderation.mute(room, VIEWER.user, minutes=5)
    error = await refused(service, room)
    assert isinstance(error, RejectedError)
    assert error.code == "muted"
    assert 0 < error.details["retry_after_ms"] <= 5 * 60_000
    await moderation.unmute(room, VIEWER.user)
    assert (await service.post(room, VIEWER, "back", RoomSettings(), NO_WORDS)).data[
        "text"
    ] == "back"


async def test_banned(
    service: CommentService,
    make_room: Callable[..., Awaitable[str]],
    redis: aioredis.Redis,
    scripts: Scripts,
) -> None:
    room = await make_room()
    await Moderation(redis, scripts, 100).ban(room, VIEWER.user)
    error = await refused(service, room)
    assert isinstance(error, ForbiddenError)
    assert error.code == "banned"
    assert error.details == {}
    assert await redis.xlen(keys.room_stream(room)) == 0


async def test_ended_room_is_not_open(
    service: CommentService,
    make_room: Callable[..., Awaitable[str]],
    redis: aioredis.Redis,
    scripts: Scripts,
) -> None:
    room = await make_room()
    await RoomStore(redis, scripts, 100).transition(room, RoomAction.END)
    for author in (VIEWER, HOST):
        error = await refused(service, room, author)
        assert isinstance(error, ConflictError)
        assert error.code == "room_not_open"


async def test_scheduled_and_live_rooms_accept_comments(
    service: CommentService,
    make_room: Callable[..., Awaitable[str]],
    redis: aioredis.Redis,
    scripts: Scripts,
) -> None:
    room = await make_room()
    await service.post(room, VIEWER, "waiting room", RoomSettings(), NO_WORDS)
    await RoomStore(redis, scripts, 100).transition(room, RoomAction.GO_LIVE)
    await service.post(room, VIEWER, "live now", RoomSettings(), NO_WORDS)
    assert await redis.xlen(keys.room_stream(room)) == 3  # two comments and a state change


async def test_missing_room(service: CommentService) -> None:
    error = await refused(service, f"t-{secrets.token_hex(4)}")
    assert isinstance(error, NotFoundError)
    assert error.code == "room_not_found"


@pytest.mark.parametrize("author", [HOST, MODERATOR])
async def test_privileged_authors_are_exempt(
    service: CommentService,
    make_room: Callable[..., Awaitable[str]],
    redis: aioredis.Redis,
    scripts: Scripts,
    author: Author,
) -> None:
    room = await make_room(comment_rate_max=1, slow_mode_ms=60_000)
    moderation = Moderation(redis, scripts, 100)
    await moderation.mute(room, author.user, minutes=5)
    await moderation.ban(room, author.user)
    for n in range(5):
        entry = await service.post(room, author, f"msg {n}", RoomSettings(), NO_WORDS)
        assert entry.data["role"] == author.role.value
    assert await redis.xlen(keys.room_stream(room)) == 5
    assert await redis.exists(keys.comment_rate(room, author.user)) == 0
    assert await redis.exists(keys.slow_mode(room, author.user)) == 0
