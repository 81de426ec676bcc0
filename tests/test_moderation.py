"""engine.rooms.moderation: the banned-word filter and moderator actions on real Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.core.errors import NotFoundError, ProtocolError
from engine.core.identity import Author, Role
from engine.rooms.comments import CommentService
from engine.rooms.moderation import (
    MAX_BANNED_WORDS,
    MAX_MUTE_MINUTES,
    MAX_WORD_CHARS,
    BannedWordFilter,
    BannedWords,
    Moderation,
    MuteTerms,
    normalize,
)
from engine.rooms.rooms import RoomSettings, RoomStore, RoomTerms
from engine.store import keys
from engine.store.roomlog import BusMessage, Entry, RoomLog
from engine.store.scripts import Scripts
from tests.conftest import decoded

# ---- normalize / BannedWordFilter -------------------------------------------------------


def fullwidth(text: str) -> str:
    """The fullwidth forms (U+FF01..U+FF5E) of printable ASCII."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def test_normalize() -> None:
    assert normalize("BaD") == "bad"
    assert normalize(fullwidth("BAD")) == "bad"
    assert normalize("b\u200ba\u200cd\u200d\u2060\ufeff") == "bad"
    assert normalize("STRAẞE") == "strasse"
    assert normalize("ﬁne") == "fine"  # ligature


@pytest.mark.parametrize(
    "text",
    [
        "bad",
        "this is BAD",
        fullwidth("BAD") + " news",
        fullwidth("Bad"),
        fullwidth("b.a.d"),
        "b\u200bad",
        "b a d",
        "b.a.d",
        "b-a_d!",
        "B . A . D",
        "so...bad",
        "b\u0332a\u0332d\u0332",  # combining low lines
        "b\u00ada\u00add",  # soft hyphens
        "badge",  # substring matching over-blocks (documented)
    ],
)
def test_filter_matches(text: str) -> None:
    assert BannedWordFilter(["Bad"]).match(text) == "bad"


@pytest.mark.parametrize("text", ["", "good", "b4d", "ba", "d a b", "bread"])
def test_filter_does_not_match(text: str) -> None:
    assert BannedWordFilter(["bad"]).match(text) is None


def test_filter_words_are_normalized_and_deduplicated() -> None:
    words = BannedWordFilter(["Scam", "SCAM ", fullwidth("scam"), "", "   ", "free money"])
    assert words.words == ("free money", "scam")
    assert words.match("get FREE-MONEY now") == "free money"
    assert words.match("freemoney") == "free money"


def test_filter_composes_accents() -> None:
    words = BannedWordFilter(["caf\u00e9"])  # precomposed é
    assert words.match("CAFE\u0301 time") == "caf\u00e9"  # decomposed E + acute
    assert words.match("cafe time") is None


def test_filter_punctuation_only_word_matches_as_substring() -> None:
    words = BannedWordFilter(["$$$"])
    assert words.match("win $$$ now") == "$$$"
    assert words.match("win $ $ $ now") is None
    assert words.match("plain text") is None


def test_empty_filter() -> None:
    assert BannedWordFilter().match("anything at all") is None
    assert BannedWordFilter([""]).words == ()


# ---- BannedWords --------------------------------------------------------------------------


async def banned_words(body: Any) -> list[str]:
    """The list a PUT .../banned-words body sets."""
    return (await decoded(body, BannedWords)).cleaned()


async def test_banned_words_body() -> None:
    assert await banned_words({"words": [" b ", "a", "b", "", "  "]}) == ["a", "b"]
    assert await banned_words({"words": []}) == []
    assert await banned_words({"words": ["x" * MAX_WORD_CHARS]}) == ["x" * MAX_WORD_CHARS]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"words": "a"},
        {"words": ["a", 1]},
        {"words": [None]},
        {"words": ["x" * (MAX_WORD_CHARS + 1)]},
        {"words": [f"w{n}" for n in range(MAX_BANNED_WORDS + 1)]},
    ],
)
async def test_banned_words_body_refused(body: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        await banned_words(body)
    assert info.value.code == "invalid_field"


@pytest.mark.parametrize("body", [None, ["a"]])
async def test_banned_words_body_that_is_not_an_object_is_refused(body: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        await banned_words(body)
    assert info.value.code == "bad_request"


# ---- Moderation on real Redis -----------------------------------------------------------


@dataclass
class World:
    redis: aioredis.Redis
    room: str
    moderation: Moderation
    comments: CommentService
    rooms: RoomStore
    log: RoomLog

    async def post(self, text: str, user: str = "v1") -> Entry:
        author = Author(user, user, Role.VIEWER)
        return await self.comments.post(self.room, author, text, RoomSettings(), BannedWordFilter())

    async def kinds(self) -> list[tuple[str, str]]:
        entries = await self.log.recent(self.room, "+", 100)
        return [(e.kind, e.ref) for e in entries]


@pytest.fixture
async def world(redis: aioredis.Redis) -> AsyncIterator[World]:
    scripts = Scripts()
    await scripts.load(redis)
    room = f"t-{secrets.token_hex(4)}"
    rooms = RoomStore(redis, scripts, 100)
    await rooms.create("h1", RoomTerms(id=room, title="T", settings={"comment_rate_max": 0}))
    yield World(
        redis,
        room,
        Moderation(redis, scripts, 100),
        CommentService(redis, scripts, 100),
        rooms,
        RoomLog(redis),
    )
    found = [k async for k in redis.scan_iter(match=keys.room_keys_pattern(room))]
    if found:
        await redis.delete(*found)


@pytest.fixture
async def bus(world: World) -> AsyncIterator[aioredis.client.PubSub]:
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(keys.room_bus(world.room))
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    yield pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def next_bus_message(pubsub: aioredis.client.PubSub) -> BusMessage:
    for _ in range(100):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            return BusMessage.parse(message["data"])
    raise AssertionError("no bus message")


async def test_delete_comment(world: World, bus: aioredis.client.PubSub) -> None:
    kept = await world.post("keep me")
    doomed = await world.post("delete me")
    await next_bus_message(bus)
    await next_bus_message(bus)
    offset = await world.moderation.delete_comment(world.room, doomed.id, by="m1")
    assert await world.log.get_comment(world.room, doomed.id) is None
    assert await world.log.get_comment(world.room, kept.id) == kept
    assert await world.kinds() == [("comment", ""), ("comment_deleted", doomed.id)]
    assert await world.log.last_id(world.room) == offset
    published = await next_bus_message(bus)
    assert published.entry() == Entry(offset, "comment_deleted", doomed.id, {"by": "m1"})


async def test_delete_missing_or_non_comment(world: World) -> None:
    comment = await world.post("once")
    await world.moderation.delete_comment(world.room, comment.id, by="m1")
    deletion_id = await world.log.last_id(world.room)
    for entry_id in (comment.id, deletion_id, "1-1"):
        with pytest.raises(NotFoundError) as info:
            await world.moderation.delete_comment(world.room, entry_id, by="m1")
        assert info.value.code == "comment_not_found"
    assert len(await world.kinds()) == 1  # nothing more was logged


async def test_pin_and_unpin(world: World, bus: aioredis.client.PubSub) -> None:
    first = await world.post("first")
    second = await world.post("second", user="v2")
    await next_bus_message(bus)
    await next_bus_message(bus)
    await world.moderation.pin_comment(world.room, first.id)
    offset = await world.moderation.pin_comment(world.room, second.id)  # replaces the pin
    room = await world.rooms.get(world.room)
    assert room.pinned == {"id": second.id, **second.data}
    await next_bus_message(bus)
    published = await next_bus_message(bus)
    assert published.entry() == Entry(offset, "comment_pinned", second.id, second.data)

    unpinned = await world.moderation.pin_comment(world.room, None)
    assert (await world.rooms.get(world.room)).pinned is None
    assert await world.kinds() == [
        ("comment", ""),
        ("comment", ""),
        ("comment_pinned", first.id),
        ("comment_pinned", second.id),
        ("comment_unpinned", ""),
    ]
    assert (await next_bus_message(bus)).entry() == Entry(unpinned, "comment_unpinned", "", {})


async def test_unpin_with_nothing_pinned(world: World) -> None:
    with pytest.raises(NotFoundError) as info:
        await world.moderation.pin_comment(world.room, None)
    assert info.value.code == "comment_not_found"
    assert await world.kinds() == []


async def test_pin_missing_or_non_comment(world: World) -> None:
    comment = await world.post("hi")
    await world.moderation.pin_comment(world.room, comment.id)
    pin_entry = await world.log.last_id(world.room)
    for entry_id in ("1-1", pin_entry):
        with pytest.raises(NotFoundError) as info:
            await world.moderation.pin_comment(world.room, entry_id)
        assert info.value.code == "comment_not_found"
    assert (await world.rooms.get(world.room)).pinned == {"id": comment.id, **comment.data}


async def test_deleting_the_pinned_comment_unpins_it(world: World) -> None:
    pinned = await world.post("pinned")
    await world.moderation.pin_comment(world.room, pinned.id)
    await world.moderation.delete_comment(world.room, pinned.id, by="m1")
    assert (await world.rooms.get(world.room)).pinned is None
    meta = await world.redis.hgetall(keys.room_meta(world.room))
    assert b"pinned_id" not in meta
    assert b"pinned" not in meta


async def test_deleting_another_comment_keeps_the_pin(world: World) -> None:
    pinned = await world.post("pinned")
    other = await world.post("other")
    await world.moderation.pin_comment(world.room, pinned.id)
    await world.moderation.delete_comment(world.room, other.id, by="m1")
    assert (await world.rooms.get(world.room)).pinned == {"id": pinned.id, **pinned.data}


async def test_mute_and_unmute(world: World, bus: aioredis.client.PubSub) -> None:
    before_s, before_us = await world.redis.time()
    until = await world.moderation.mute(world.room, "v1", minutes=10)
    after_s, after_us = await world.redis.time()
    window = 10 * 60_000
    assert before_s * 1000 + before_us // 1000 + window <= until
    assert until <= after_s * 1000 + after_us // 1000 + window
    assert 0 < await world.redis.pttl(keys.muted(world.room, "v1")) <= window
    published = await next_bus_message(bus)
    assert (published.kind, published.id) == ("muted", "")
    assert orjson.loads(published.data) == {"user": "v1", "until": until}

    await world.moderation.unmute(world.room, "v1")
    assert await world.redis.exists(keys.muted(world.room, "v1")) == 0
    published = await next_bus_message(bus)
    assert (published.kind, orjson.loads(published.data)) == ("unmuted", {"user": "v1"})


@pytest.mark.parametrize("minutes", [0, -1, MAX_MUTE_MINUTES + 1])
async def test_mute_minutes_bounds(minutes: int) -> None:
    with pytest.raises(ProtocolError) as info:
        await decoded({"user": "v1", "minutes": minutes}, MuteTerms)
    assert (info.value.code, info.value.details) == ("invalid_field", {"field": "minutes"})


async def test_mute_longest_allowed(world: World) -> None:
    terms = await decoded({"user": "v1", "minutes": MAX_MUTE_MINUTES}, MuteTerms)
    await world.moderation.mute(world.room, terms.user, minutes=terms.minutes)
    assert await world.redis.pttl(keys.muted(world.room, "v1")) > (MAX_MUTE_MINUTES - 1) * 60_000


@pytest.mark.parametrize("action", ["mute", "unmute", "ban", "unban"])
async def test_user_actions_validate_user_ids(world: World, action: str) -> None:
    call = getattr(world.moderation, action)
    args: tuple[Any, ...] = (world.room, "bad user{x}")
    with pytest.raises(ProtocolError) as info:
        await (call(*args, minutes=1) if action == "mute" else call(*args))
    assert info.value.details == {"field": "user"}


async def test_ban_and_unban(world: World, bus: aioredis.client.PubSub) -> None:
    assert await world.moderation.is_banned(world.room, "v1") is False
    await world.moderation.ban(world.room, "v1")
    await world.moderation.ban(world.room, "v2")
    await world.moderation.ban(world.room, "v1")
    assert await world.moderation.is_banned(world.room, "v1") is True
    assert await world.moderation.banned(world.room) == ["v1", "v2"]
    published = await next_bus_message(bus)
    assert (published.kind, orjson.loads(published.data)) == ("banned", {"user": "v1", "rank": 3})
    await world.moderation.unban(world.room, "v1")
    assert await world.moderation.is_banned(world.room, "v1") is False
    assert await world.moderation.banned(world.room) == ["v2"]


async def test_banned_words_storage(world: World, bus: aioredis.client.PubSub) -> None:
    assert await world.moderation.banned_words(world.room) == []
    await world.moderation.set_banned_words(world.room, ["scam", "spam"])
    assert await world.moderation.banned_words(world.room) == ["scam", "spam"]
    await world.moderation.set_banned_words(world.room, ["fraud"])  # replaces the list
    assert await world.moderation.banned_words(world.room) == ["fraud"]
    await world.moderation.set_banned_words(world.room, [])
    assert await world.moderation.banned_words(world.room) == []
    kinds = [(await next_bus_message(bus)).kind for _ in range(3)]
    assert kinds == ["banned_words"] * 3
