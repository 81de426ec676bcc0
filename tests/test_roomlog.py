"""engine.store.roomlog: the room stream (recent, between, get_comment) and bus messages."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.core.identity import Author, Role
from engine.rooms.comments import CommentService
from engine.rooms.moderation import BannedWordFilter
from engine.rooms.rooms import RoomSettings, RoomStore, RoomTerms
from engine.store import keys
from engine.store.roomlog import BusMessage, Entry, RoomLog, control_payload
from engine.store.scripts import Scripts


@pytest.fixture
async def room(redis: aioredis.Redis) -> AsyncIterator[str]:
    room_id = f"t-{secrets.token_hex(4)}"
    yield room_id
    await redis.delete(keys.room_stream(room_id), keys.room_meta(room_id))


async def add(
    redis: aioredis.Redis, room: str, entry_id: str, kind: str = "comment", **data: Any
) -> None:
    fields = {"k": kind, "r": "", "d": orjson.dumps(data or {"text": entry_id})}
    await redis.xadd(keys.room_stream(room), fields, id=entry_id)  # type: ignore[arg-type]


async def fill(redis: aioredis.Redis, room: str, count: int = 5) -> list[str]:
    """Entries 1-0 .. count-0, all comments."""
    ids = [f"{n}-0" for n in range(1, count + 1)]
    for entry_id in ids:
        await add(redis, room, entry_id)
    return ids


def ids_of(entries: list[Entry] | None) -> list[str] | None:
    return None if entries is None else [e.id for e in entries]


# ---- Entry and BusMessage ---------------------------------------------------------------


def test_entry_to_wire() -> None:
    entry = Entry("1732212345678-2", "comment", "", {"user": "u1", "text": "hi"})
    assert entry.to_wire() == {
        "id": "1732212345678-2",
        "kind": "comment",
        "ts": 1732212345678,
        "user": "u1",
        "text": "hi",
    }
    deleted = Entry("9-0", "comment_deleted", "5-1", {"by": "m1"})
    assert deleted.to_wire() == {
        "id": "9-0",
        "kind": "comment_deleted",
        "ts": 9,
        "ref": "5-1",
        "by": "m1",
    }
    assert entry.is_comment
    assert not deleted.is_comment
    assert Entry("10-0", "c", "", {}).order > Entry("9-9", "c", "", {}).order


def test_bus_message_parse() -> None:
    payload = b'comment_pinned\n7-0\n5-0\n{"text": "a\\nb"}'
    message = BusMessage.parse(payload)
    assert message == BusMessage("comment_pinned", "7-0", "5-0", b'{"text": "a\\nb"}')
    assert message.entry() == Entry("7-0", "comment_pinned", "5-0", {"text": "a\nb"})


def test_bus_message_data_may_contain_newlines() -> None:
    message = BusMessage.parse(b"kind\n1-0\n\nline1\nline2\n")
    assert (message.kind, message.id, message.ref, message.data) == (
        "kind",
        "1-0",
        "",
        b"line1\nline2\n",
    )


def test_control_payload() -> None:
    payload = control_payload("muted", {"user": "u1", "until": 5})
    message = BusMessage.parse(payload)
    assert (message.kind, message.id, message.ref) == ("muted", "", "")
    assert orjson.loads(message.data) == {"user": "u1", "until": 5}


async def test_bus_message_from_the_comment_script_matches_the_log(
    redis: aioredis.Redis, room: str
) -> None:
    scripts = Scripts()
    await scripts.load(redis)
    await RoomStore(redis, scripts, 100).create("h1", RoomTerms(id=room, title="T"))
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.room_bus(room))
    try:
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        author = Author("u1", "U One", Role.VIEWER)
        posted = await CommentService(redis, scripts, 100).post(
            room, author, "hello\nthere", RoomSettings(), BannedWordFilter()
        )
        received = None
        for _ in range(50):
            received = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if received is not None:
                break
        assert received is not None
        entry = BusMessage.parse(received["data"]).entry()
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert entry == posted
    assert entry.data == {"user": "u1", "name": "U One", "role": "viewer", "text": "hello there"}
    stored = await RoomLog(redis).recent(room, "+", 1)
    assert stored == [entry]
    await redis.delete(*[k async for k in redis.scan_iter(match=keys.room_keys_pattern(room))])


# ---- last_id / recent -------------------------------------------------------------------


async def test_last_id(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    assert await log.last_id(room) == "0-0"
    await fill(redis, room, 3)
    assert await log.last_id(room) == "3-0"


async def test_recent(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    assert ids_of(await log.recent(room, "5-0", 2)) == ["4-0", "5-0"]
    assert ids_of(await log.recent(room, "3-0", 10)) == ["1-0", "2-0", "3-0"]
    assert ids_of(await log.recent(room, "3-5", 1)) == ["3-0"]
    assert await log.recent(room, "0-0", 10) == []
    assert await log.recent(room, "5-0", 0) == []
    entries = await log.recent(room, "1-0", 1)
    assert entries == [Entry("1-0", "comment", "", {"text": "1-0"})]


async def test_recent_on_empty_log(redis: aioredis.Redis, room: str) -> None:
    assert await RoomLog(redis).recent(room, "5-0", 10) == []


# ---- between ----------------------------------------------------------------------------


async def test_between(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    assert ids_of(await log.between(room, "2-0", "4-0", 10)) == ["3-0", "4-0"]
    assert ids_of(await log.between(room, "0-0", "5-0", 10)) == ["1-0", "2-0", "3-0", "4-0", "5-0"]
    assert ids_of(await log.between(room, "4-0", "5-0", 1)) == ["5-0"]
    assert ids_of(await log.between(room, "2-5", "3-0", 10)) == ["3-0"]  # after need not exist


async def test_between_empty_ranges(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    assert await log.between(room, "3-0", "3-0", 10) == []
    assert await log.between(room, "5-0", "3-0", 10) == []
    assert await log.between(room, "10-0", "9-0", 10) == []  # numeric, not string, order
    assert await log.between(room, "5-0", "6-0", 10) == []


async def test_between_over_limit_is_none(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    assert await log.between(room, "0-0", "5-0", 4) is None
    assert ids_of(await log.between(room, "0-0", "5-0", 5)) == ["1-0", "2-0", "3-0", "4-0", "5-0"]
    assert await log.between(room, "1-0", "5-0", 3) is None
    assert ids_of(await log.between(room, "1-0", "5-0", 4)) == ["2-0", "3-0", "4-0", "5-0"]


async def test_between_trimmed_log_is_none(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    await redis.xtrim(keys.room_stream(room), maxlen=2, approximate=False)
    assert ids_of(await log.recent(room, "5-0", 10)) == ["4-0", "5-0"]
    assert await log.between(room, "2-0", "5-0", 10) is None
    assert await log.between(room, "3-0", "5-0", 10) is None  # 3-0 itself was trimmed
    assert ids_of(await log.between(room, "4-0", "5-0", 10)) == ["5-0"]


async def test_after_reads_to_the_end(redis: aioredis.Redis, room: str) -> None:
    # RoomHub.on_subscribed backfills with `after(room, received_id, maxlen)`.
    log = RoomLog(redis)
    await fill(redis, room, 4)
    entries, complete = await log.after(room, "2-0", 10)
    assert (ids_of(entries), complete) == (["3-0", "4-0"], True)
    entries, complete = await log.after(room, "4-0", 10)
    assert (entries, complete) == ([], True)


async def test_after_over_limit_is_incomplete(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    entries, complete = await log.after(room, "1-0", 2)
    assert (ids_of(entries), complete) == (["2-0", "3-0"], False)


async def test_after_trimmed_log_is_incomplete(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await fill(redis, room, 5)
    await redis.xtrim(keys.room_stream(room), maxlen=2, approximate=False)
    entries, complete = await log.after(room, "2-0", 10)
    assert (ids_of(entries), complete) == (["4-0", "5-0"], False)
    entries, complete = await log.after(room, "4-0", 10)
    assert (ids_of(entries), complete) == (["5-0"], True)


# ---- get_comment ------------------------------------------------------------------------


async def test_get_comment(redis: aioredis.Redis, room: str) -> None:
    log = RoomLog(redis)
    await add(redis, room, "1-0", text="hi", user="u1")
    await add(redis, room, "2-0", kind="room_state", state="live", previous="scheduled")
    assert await log.get_comment(room, "1-0") == Entry(
        "1-0", "comment", "", {"text": "hi", "user": "u1"}
    )
    assert await log.get_comment(room, "2-0") is None  # not a comment
    assert await log.get_comment(room, "3-0") is None  # missing
    await redis.xdel(keys.room_stream(room), "1-0")
    assert await log.get_comment(room, "1-0") is None
