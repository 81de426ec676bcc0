"""engine.rooms.rooms: the state machine, host input validation and RoomStore on real Redis."""

from __future__ import annotations

import secrets
from dataclasses import asdict, fields
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.core.errors import ConflictError, LivecartError, NotFoundError, ProtocolError
from engine.rooms.rooms import (
    MAX_TITLE,
    MAX_URL,
    Room,
    RoomAction,
    RoomChanges,
    RoomSettings,
    RoomState,
    RoomStore,
    RoomTerms,
    SettingsChanges,
    next_state,
    settings_changes,
)
from engine.store import keys
from engine.store.redis_client import stream_rows
from engine.store.scripts import Scripts
from tests.conftest import decoded


def new_room_id() -> str:
    return f"t-{secrets.token_hex(4)}"


def invalid(call: Any, *args: Any, **kw: Any) -> LivecartError:
    with pytest.raises(ProtocolError) as info:
        call(*args, **kw)
    assert info.value.code == "invalid_field", info.value
    return info.value


async def refused(body: Any, schema: type[RoomTerms | RoomChanges]) -> LivecartError:
    """`body` refused as the body of a route with `schema` is (`invalid_field`)."""
    with pytest.raises(ProtocolError) as info:
        await decoded(body, schema)
    assert info.value.code == "invalid_field", info.value
    return info.value


@pytest.fixture
async def store(redis: aioredis.Redis) -> RoomStore:
    scripts = Scripts()
    await scripts.load(redis)
    return RoomStore(redis, scripts, stream_maxlen=100)


async def log_entries(redis: aioredis.Redis, room: str) -> list[tuple[str, dict[str, Any]]]:
    rows = stream_rows(await redis.xrange(keys.room_stream(room)))
    return [(fields[b"k"].decode(), orjson.loads(fields[b"d"])) for _, fields in rows]


# ---- state machine ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "action", "expected"),
    [
        (RoomState.SCHEDULED, RoomAction.GO_LIVE, RoomState.LIVE),
        (RoomState.SCHEDULED, RoomAction.END, RoomState.ENDED),
        (RoomState.LIVE, RoomAction.END, RoomState.ENDED),
    ],
)
def test_legal_transitions(state: RoomState, action: RoomAction, expected: RoomState) -> None:
    assert next_state(state, action) is expected


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (RoomState.LIVE, RoomAction.GO_LIVE),
        (RoomState.ENDED, RoomAction.GO_LIVE),
        (RoomState.ENDED, RoomAction.END),
    ],
)
def test_illegal_transitions(state: RoomState, action: RoomAction) -> None:
    with pytest.raises(ConflictError) as info:
        next_state(state, action)
    assert info.value.code == "illegal_transition"
    assert info.value.details == {"state": state.value, "action": action.value}
    assert info.value.http_status == 409


def test_accepts_comments() -> None:
    assert [s for s in RoomState if s.accepts_comments] == [RoomState.SCHEDULED, RoomState.LIVE]


# ---- RoomSettings -----------------------------------------------------------------------


# The integer settings' bounds (docs/api.md § Settings).
SETTING_BOUNDS = {
    "comment_rate_max": (0, 1000),
    "comment_rate_window_ms": (100, 3_600_000),
    "display_rate": (1, 1000),
    "max_comment_chars": (1, 2000),
    "slow_mode_ms": (0, 3_600_000),
}


def test_settings_merged() -> None:
    base = RoomSettings()
    changes = {"slow_mode_ms": 3000, "allow_anonymous": False, "display_rate": 1}
    merged = base.merged(settings_changes(changes))
    assert merged == RoomSettings(slow_mode_ms=3000, allow_anonymous=False, display_rate=1)
    assert base == RoomSettings()  # frozen: the original is untouched
    assert base.merged(settings_changes({})) == base


def test_every_integer_setting_is_bounded() -> None:
    integers = [f.name for f in fields(RoomSettings) if f.name != "allow_anonymous"]
    assert sorted(integers) == sorted(SETTING_BOUNDS)


@pytest.mark.parametrize(("name", "bounds"), sorted(SETTING_BOUNDS.items()))
def test_settings_bounds_are_inclusive(name: str, bounds: tuple[int, int]) -> None:
    low, high = bounds
    assert getattr(RoomSettings().merged(settings_changes({name: low})), name) == low
    assert getattr(RoomSettings().merged(settings_changes({name: high})), name) == high
    for bad in (low - 1, high + 1, True, float(low), str(low), None):
        error = invalid(settings_changes, {name: bad})
        assert error.details == {"field": f"settings.{name}"}


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_settings_allow_anonymous_must_be_bool(value: Any) -> None:
    error = invalid(settings_changes, {"allow_anonymous": value})
    assert error.details == {"field": "settings.allow_anonymous"}


def test_settings_unknown_and_non_object() -> None:
    assert invalid(settings_changes, {"colour": 1}).details == {"field": "settings.colour"}
    assert invalid(settings_changes, {"given": {}}).details == {"field": "settings.given"}
    assert invalid(settings_changes, [("slow_mode_ms", 1)]).details == {"field": "settings"}


def test_settings_meta_round_trip() -> None:
    settings = RoomSettings(allow_anonymous=False, max_comment_chars=50, slow_mode_ms=1500)
    meta = settings.to_meta()
    assert meta["allow_anonymous"] == "0"
    assert meta["max_comment_chars"] == "50"
    assert RoomSettings.from_meta(meta) == settings
    assert RoomSettings.from_meta({}) == RoomSettings()
    assert RoomSettings.from_meta({"allow_anonymous": "1"}).allow_anonymous is True


# ---- RoomTerms and RoomChanges: what a host sends ----------------------------------------


async def test_validate_full_body() -> None:
    body = {
        "id": "r1",
        "title": "  Spring drop  ",
        "cover_url": "https://cdn.example.com/c.png",
        "stream_url": None,
        "scheduled_at": 1_900_000_000_000,
        "settings": {"slow_mode_ms": 1000},
    }
    terms = await decoded(body, RoomTerms)
    assert terms.fields() == {
        "title": "Spring drop",
        "cover_url": "https://cdn.example.com/c.png",
        "stream_url": None,
        "scheduled_at": 1_900_000_000_000,
    }
    assert terms.settings_changes() == SettingsChanges(slow_mode_ms=1000)


async def test_validate_partial_body() -> None:
    with pytest.raises(ProtocolError) as empty:
        await decoded({}, RoomChanges)
    assert empty.value.code == "bad_request"
    assert (await decoded({"scheduled_at": None}, RoomChanges)).fields() == {"scheduled_at": None}
    assert (await refused({"id": "r1"}, RoomTerms)).details == {"field": "title"}


@pytest.mark.parametrize("title", [None, "", "   ", 5, ["t"], "x" * (MAX_TITLE + 1)])
async def test_validate_bad_title(title: Any) -> None:
    assert (await refused({"title": title}, RoomChanges)).details == {"field": "title"}


async def test_validate_title_bounds() -> None:
    long = "x" * MAX_TITLE
    assert (await decoded({"title": f"  {long}  "}, RoomChanges)).fields() == {"title": long}
    assert (await decoded({"title": "x"}, RoomChanges)).fields() == {"title": "x"}


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com",
        "https://exa mple.com",
        "javascript:alert(1)",
        "https://",
        5,
        "https://example.com/" + "x" * MAX_URL,
        "https://example.com/x.png\n",
        "https://example.com/\nx",
    ],
)
@pytest.mark.parametrize("name", ["cover_url", "stream_url"])
async def test_validate_bad_urls(name: str, url: Any) -> None:
    error = await refused({name: url}, RoomChanges)
    assert error.details == {"field": name}


async def test_validate_good_urls() -> None:
    body = {"cover_url": "http://a.io/x?y=1#z", "stream_url": "https://live.example.com/m.m3u8"}
    assert (await decoded(body, RoomChanges)).fields() == body


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1_900_000_000_000, 1_900_000_000_000),
        ("2030-01-01T10:00:00+00:00", 1_893_492_000_000),
        ("2030-01-01T10:00:00Z", 1_893_492_000_000),
        ("2030-01-01T12:00:00+02:00", 1_893_492_000_000),
        ("2030-01-01T10:00:00.250+00:00", 1_893_492_000_250),
    ],
)
async def test_validate_scheduled_at(value: Any, expected: int) -> None:
    changes = await decoded({"scheduled_at": value}, RoomChanges)
    assert changes.fields() == {"scheduled_at": expected}


@pytest.mark.parametrize(
    "value", [-1, True, 1.5, "tomorrow", "", "2030-13-01T00:00:00Z", [2030], {"ms": 1}]
)
async def test_validate_bad_scheduled_at(value: Any) -> None:
    error = await refused({"scheduled_at": value}, RoomChanges)
    assert error.details == {"field": "scheduled_at"}


async def test_validate_scheduled_at_without_offset_is_rejected() -> None:
    # A naive time would be read in the server's local time zone; the contract asks
    # for "an ISO 8601 time with offset".
    error = await refused({"scheduled_at": "2030-01-01T10:00:00"}, RoomChanges)
    assert error.details == {"field": "scheduled_at"}


async def test_validate_unknown_fields_and_non_object() -> None:
    # Several unknown fields: the first one sent is named.
    error = await refused({"id": "r1", "title": "t", "zeta": 1, "alpha": 2}, RoomTerms)
    assert error.details == {"field": "zeta"}
    assert error.message == "zeta: unknown field"
    with pytest.raises(ProtocolError) as info:
        await decoded(["title"], RoomChanges)
    assert info.value.code == "bad_request"


def test_room_wire_and_meta() -> None:
    meta = {
        "title": "Show",
        "host": "h1",
        "state": "live",
        "cover_url": "",
        "stream_url": "https://s.io/a",
        "scheduled_at": "",
        "created_at": "100",
        "live_at": "200",
        "pinned_id": "5-0",
        "pinned": '{"user": "u1", "text": "hi"}',
        **RoomSettings(display_rate=7).to_meta(),
    }
    room = Room.from_meta("r1", meta)
    assert room.to_wire() == {
        "id": "r1",
        "title": "Show",
        "host": "h1",
        "host_name": "h1",  # a room stored before host_name: the host's id stands in
        "state": "live",
        "cover_url": None,
        "stream_url": "https://s.io/a",
        "scheduled_at": None,
        "created_at": 100,
        "live_at": 200,
        "ended_at": None,
        "settings": asdict(RoomSettings(display_rate=7)),
        "pinned": {"id": "5-0", "user": "u1", "text": "hi"},
        "pinned_product": None,
    }


# ---- RoomStore --------------------------------------------------------------------------


async def test_create_and_get(store: RoomStore, redis: aioredis.Redis) -> None:
    room_id = new_room_id()
    before_ms = (await redis.time())[0] * 1000
    created = await store.create(
        "host-1", RoomTerms(id=room_id, title="Launch", settings={"comment_rate_max": 2})
    )
    assert created.id == room_id
    assert (created.title, created.host, created.state) == ("Launch", "host-1", RoomState.SCHEDULED)
    assert created.settings == RoomSettings(comment_rate_max=2)
    assert created.created_at is not None
    assert created.created_at >= before_ms
    assert (created.live_at, created.ended_at, created.pinned) == (None, None, None)
    assert await store.get(room_id) == created
    assert room_id in await store.list_ids()
    meta = await redis.hgetall(keys.room_meta(room_id))
    assert meta[b"comment_rate_max"] == b"2"
    assert meta[b"state"] == b"scheduled"


async def test_create_duplicate_is_room_exists(store: RoomStore) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="First"))
    with pytest.raises(ConflictError) as info:
        await store.create("h2", RoomTerms(id=room_id, title="Second"))
    assert info.value.code == "room_exists"
    room = await store.get(room_id)
    assert (room.title, room.host) == ("First", "h1")


async def test_create_validates_before_writing(store: RoomStore, redis: aioredis.Redis) -> None:
    room_id = new_room_id()
    for body in ({"title": "T", "settings": {"slow_mode_ms": -5}}, {"title": ""}):
        with pytest.raises(ProtocolError):
            await store.create("h1", await decoded({"id": room_id, **body}, RoomTerms))
    assert await redis.exists(keys.room_meta(room_id)) == 0
    assert room_id not in await store.list_ids()
    with pytest.raises(ProtocolError) as info:
        await store.create("h1", RoomTerms(id="Bad Id", title="T"))
    assert info.value.details == {"field": "room"}


async def test_get_missing_is_room_not_found(store: RoomStore) -> None:
    with pytest.raises(NotFoundError) as info:
        await store.get(new_room_id())
    assert info.value.code == "room_not_found"
    assert info.value.http_status == 404


async def test_update_fields(store: RoomStore, redis: aioredis.Redis) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="Old", cover_url="https://a.io/c.png"))
    updated = await store.update(
        await store.get(room_id),
        RoomChanges(title="New", cover_url=None, scheduled_at="2030-01-01T10:00:00Z"),
    )
    assert (updated.title, updated.cover_url, updated.scheduled_at) == ("New", None, 1893492000000)
    assert await log_entries(redis, room_id) == [
        ("room_updated", {"title": "New", "cover_url": None, "scheduled_at": 1893492000000})
    ]
    cleared = await store.update(updated, RoomChanges(scheduled_at=None))
    assert cleared.scheduled_at is None
    assert (await log_entries(redis, room_id))[-1] == ("room_updated", {"scheduled_at": None})


async def test_update_writes_only_changed_settings(store: RoomStore, redis: aioredis.Redis) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="T"))
    room = await store.get(room_id)
    # Another process writes to the room between this read and the update's write.
    await redis.hset(keys.room_meta(room_id), mapping={"slow_mode_ms": "5000", "title": "Renamed"})
    updated = await store.update(room, RoomChanges(settings={"display_rate": 7}))
    # The concurrent write survives: this update wrote display_rate only.
    assert updated.settings == RoomSettings(display_rate=7, slow_mode_ms=5000)
    assert updated.title == "Renamed"
    meta = await redis.hgetall(keys.room_meta(room_id))
    assert (meta[b"slow_mode_ms"], meta[b"display_rate"]) == (b"5000", b"7")
    kind, data = (await log_entries(redis, room_id))[-1]
    assert kind == "room_updated"
    assert set(data) == {"settings"}
    assert data["settings"]["display_rate"] == 7


async def test_update_rejects_bad_input_without_writing(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="T"))
    for body in ({"title": ""}, {"settings": {"display_rate": 0}}, {"owner": "x"}):
        with pytest.raises(ProtocolError):
            await store.update(await store.get(room_id), await decoded(body, RoomChanges))
    assert (await store.get(room_id)).title == "T"
    assert await log_entries(redis, room_id) == []


async def test_update_cannot_change_the_id() -> None:
    assert (await refused({"id": "another-room"}, RoomChanges)).details == {"field": "id"}


async def test_update_missing_room(store: RoomStore) -> None:
    gone = Room(id=new_room_id(), title="T", host="h1", state=RoomState.SCHEDULED)
    with pytest.raises(NotFoundError) as info:
        await store.update(gone, RoomChanges(title="T"))
    assert info.value.code == "room_not_found"


async def test_go_live_then_end(store: RoomStore, redis: aioredis.Redis) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="T"))
    live = await store.transition(room_id, RoomAction.GO_LIVE)
    assert live.state is RoomState.LIVE
    assert live.live_at is not None
    assert live.ended_at is None
    ended = await store.transition(room_id, RoomAction.END)
    assert ended.state is RoomState.ENDED
    assert ended.ended_at is not None
    assert ended.ended_at >= live.live_at
    assert await log_entries(redis, room_id) == [
        ("room_state", {"state": "live", "previous": "scheduled"}),
        ("room_state", {"state": "ended", "previous": "live"}),
    ]


async def test_go_live_twice_is_illegal(store: RoomStore, redis: aioredis.Redis) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="T"))
    first = await store.transition(room_id, RoomAction.GO_LIVE)
    with pytest.raises(ConflictError) as info:
        await store.transition(room_id, RoomAction.GO_LIVE)
    assert info.value.code == "illegal_transition"
    assert info.value.details == {"state": "live", "action": "go_live"}
    assert await store.get(room_id) == first  # live_at not restamped
    assert len(await log_entries(redis, room_id)) == 1


async def test_end_from_scheduled_is_allowed(store: RoomStore) -> None:
    room_id = new_room_id()
    await store.create("h1", RoomTerms(id=room_id, title="T"))
    ended = await store.transition(room_id, RoomAction.END)
    assert ended.state is RoomState.ENDED
    assert ended.live_at is None
    for action in RoomAction:
        with pytest.raises(ConflictError) as info:
            await store.transition(room_id, action)
        assert info.value.details == {"state": "ended", "action": action.value}


async def test_transition_missing_room(store: RoomStore) -> None:
    with pytest.raises(NotFoundError) as info:
        await store.transition(new_room_id(), RoomAction.GO_LIVE)
    assert info.value.code == "room_not_found"
