"""Rooms: the model, its state machine, validation of host input, and its Redis storage.

    scheduled ──go_live──▶ live ──end──▶ ended
        └──────────────end (cancel)─────────▲

A room's fields and settings live in one hash (`keys.room_meta`). Every change is also
appended to the room log so viewers (and resuming viewers) see it in order.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Annotated, Any

import orjson
from msgspec import UNSET, Meta, Struct, UnsetType
from redis.asyncio import Redis

from engine.core.errors import ConflictError, NotFoundError, ProtocolError
from engine.core.fields import convert_field, invalid_field
from engine.core.media_urls import MAX_MEDIA_URL, MEDIA_URL_RE
from engine.store import keys
from engine.store.redis_client import text, texts
from engine.store.scripts import Scripts

MAX_TITLE = 120
MAX_URL = MAX_MEDIA_URL


class RoomState(enum.Enum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"

    @property
    def accepts_comments(self) -> bool:
        # Viewers chat in the waiting room before the show too.
        return self is not RoomState.ENDED


class RoomAction(enum.Enum):
    GO_LIVE = "go_live"
    END = "end"


# action -> (states it may start from, state it leads to, meta field recording when)
TRANSITIONS: dict[RoomAction, tuple[frozenset[RoomState], RoomState, str]] = {
    RoomAction.GO_LIVE: (frozenset({RoomState.SCHEDULED}), RoomState.LIVE, "live_at"),
    RoomAction.END: (
        frozenset({RoomState.SCHEDULED, RoomState.LIVE}),
        RoomState.ENDED,
        "ended_at",
    ),
}


def next_state(current: RoomState, action: RoomAction) -> RoomState:
    """The pure state machine; the Lua script enforces the same table atomically."""
    allowed, target, _ = TRANSITIONS[action]
    if current not in allowed:
        raise ConflictError(
            f"cannot {action.value} a room that is {current.value}",
            code="illegal_transition",
            details={"state": current.value, "action": action.value},
        )
    return target


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """Per-room settings a host may change at any time (documented in docs/api.md)."""

    allow_anonymous: bool = True
    max_comment_chars: int = 200
    comment_rate_max: int = 5
    comment_rate_window_ms: int = 10_000
    slow_mode_ms: int = 0
    # Viewer comments per second shown to each viewer; above it the room is sampled.
    display_rate: int = 20

    def merged(self, changes: SettingsChanges) -> RoomSettings:
        return replace(self, **changes.given())

    def to_meta(self) -> dict[str, str]:
        return {
            name: ("1" if value is True else "0" if value is False else str(value))
            for name, value in asdict(self).items()
        }

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> RoomSettings:
        defaults = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = meta.get(f.name)
            if raw is None:
                continue
            values[f.name] = raw == "1" if isinstance(getattr(defaults, f.name), bool) else int(raw)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    title: str
    host: str
    state: RoomState
    host_name: str = ""  # the display name of the host token that created it
    cover_url: str | None = None
    stream_url: str | None = None
    scheduled_at: int | None = None
    created_at: int | None = None
    live_at: int | None = None
    ended_at: int | None = None
    settings: RoomSettings = field(default_factory=RoomSettings)
    pinned: dict[str, Any] | None = None
    pinned_product: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "host": self.host,
            "host_name": self.host_name or self.host,
            "state": self.state.value,
            "cover_url": self.cover_url,
            "stream_url": self.stream_url,
            "scheduled_at": self.scheduled_at,
            "created_at": self.created_at,
            "live_at": self.live_at,
            "ended_at": self.ended_at,
            "settings": asdict(self.settings),
            "pinned": self.pinned,
            "pinned_product": self.pinned_product,
        }

    @classmethod
    def from_meta(cls, room_id: str, meta: dict[str, str]) -> Room:
        def opt_int(name: str) -> int | None:
            raw = meta.get(name)
            return int(raw) if raw else None

        pinned = None
        if meta.get("pinned_id") and meta.get("pinned"):
            pinned = {"id": meta["pinned_id"], **orjson.loads(meta["pinned"])}
        return cls(
            id=room_id,
            title=meta.get("title", ""),
            host=meta.get("host", ""),
            host_name=meta.get("host_name", ""),
            state=RoomState(meta["state"]),
            cover_url=meta.get("cover_url") or None,
            stream_url=meta.get("stream_url") or None,
            scheduled_at=opt_int("scheduled_at"),
            created_at=opt_int("created_at"),
            live_at=opt_int("live_at"),
            ended_at=opt_int("ended_at"),
            settings=RoomSettings.from_meta(meta),
            pinned=pinned,
            pinned_product=meta.get("pinned_product") or None,
        )


# ---- what a host sends ------------------------------------------------------------------

# Patterns end in `\Z`: msgspec searches them, and `$` would let a final newline through.
Url = Annotated[str, Meta(max_length=MAX_URL, pattern=rf"^{MEDIA_URL_RE.pattern}\Z")]
# Epoch ms, or an ISO 8601 time with an offset (checked by `_time_ms`).
When = Annotated[int, Meta(ge=0)] | str | None
# The room's own fields a body may give (besides its settings).
_ROOM_FIELDS = ("title", "cover_url", "stream_url", "scheduled_at")


class SettingsChanges(Struct, frozen=True, forbid_unknown_fields=True):
    """Settings a host changes (docs/api.md § Settings); those not given keep their value."""

    allow_anonymous: bool | UnsetType = UNSET
    max_comment_chars: Annotated[int, Meta(ge=1, le=2000)] | UnsetType = UNSET
    comment_rate_max: Annotated[int, Meta(ge=0, le=1000)] | UnsetType = UNSET
    comment_rate_window_ms: Annotated[int, Meta(ge=100, le=3_600_000)] | UnsetType = UNSET
    slow_mode_ms: Annotated[int, Meta(ge=0, le=3_600_000)] | UnsetType = UNSET
    display_rate: Annotated[int, Meta(ge=1, le=1000)] | UnsetType = UNSET

    def given(self) -> dict[str, Any]:
        values = ((name, getattr(self, name)) for name in self.__struct_fields__)
        return {name: value for name, value in values if value is not UNSET}


def settings_changes(raw: Any) -> SettingsChanges:
    """A body's `settings`, each refusal named `settings.<name>` (docs/api.md). A body holds
    them as an object checked here: as a nested schema, its refusals would be named
    `settings`."""
    return convert_field(raw, SettingsChanges, "settings")


class RoomTerms(Struct, frozen=True, forbid_unknown_fields=True):
    """The body that creates a room (docs/api.md § POST /api/rooms)."""

    id: str
    title: str  # 1-MAX_TITLE characters once trimmed
    cover_url: Url | None = None
    stream_url: Url | None = None
    scheduled_at: When = None
    settings: dict[str, Any] = {}  # `settings_changes`

    def __post_init__(self) -> None:
        self.fields()  # checks the title and the time
        self.settings_changes()

    def fields(self) -> dict[str, str | int | None]:
        return _stored_fields(self)

    def settings_changes(self) -> SettingsChanges:
        return settings_changes(self.settings)


class RoomChanges(Struct, frozen=True, forbid_unknown_fields=True):
    """The body of PATCH /api/rooms/{room}: the fields given change (`null` clears the
    optional ones), and so do the settings given."""

    title: str | UnsetType = UNSET
    cover_url: Url | UnsetType | None = UNSET
    stream_url: Url | UnsetType | None = UNSET
    scheduled_at: When | UnsetType = UNSET
    settings: dict[str, Any] | UnsetType = UNSET  # `settings_changes`
    id: str | UnsetType = UNSET  # refused with its own reason, not as an unknown field

    def __post_init__(self) -> None:
        if self.id is not UNSET:
            raise invalid_field("id", "a room's id cannot change")
        if not self.fields() and self.settings is UNSET:
            raise ProtocolError("nothing to update", code="bad_request")
        self.settings_changes()

    def fields(self) -> dict[str, str | int | None]:
        return _stored_fields(self)

    def settings_changes(self) -> SettingsChanges | None:
        return None if self.settings is UNSET else settings_changes(self.settings)


def _stored_fields(body: RoomTerms | RoomChanges) -> dict[str, str | int | None]:
    """The room's fields a body gives, as the room holds them: the title trimmed, the time
    in ms."""
    values = {name: getattr(body, name) for name in _ROOM_FIELDS}
    given = {name: value for name, value in values.items() if value is not UNSET}
    if "title" in given:
        given["title"] = _title(given["title"])
    if "scheduled_at" in given:
        given["scheduled_at"] = _time_ms(given["scheduled_at"])
    return given


def _title(value: str) -> str:
    title = value.strip()
    if not 1 <= len(title) <= MAX_TITLE:
        raise invalid_field("title", f"must be 1-{MAX_TITLE} characters")
    return title


def _time_ms(value: int | str | None) -> int | None:
    if not isinstance(value, str):
        return value
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    # Without an offset the time would be read in the server's zone: refuse it.
    if when is None or when.tzinfo is None:
        raise invalid_field(
            "scheduled_at", "must be epoch milliseconds or an ISO 8601 time with offset"
        )
    return int(when.timestamp() * 1000)


# ---- storage ----------------------------------------------------------------------------


class RoomStore:
    def __init__(self, redis: Redis, scripts: Scripts, stream_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.stream_maxlen = stream_maxlen

    async def get(self, room_id: str) -> Room:
        keys.check_room_id(room_id)
        raw = await self.redis.hgetall(keys.room_meta(room_id))
        if not raw:
            raise NotFoundError(f"room {room_id!r} does not exist", code="room_not_found")
        meta = {text(k): text(v) for k, v in raw.items()}
        return Room.from_meta(room_id, meta)

    async def create(self, host: str, terms: RoomTerms, *, host_name: str = "") -> Room:
        keys.check_room_id(terms.id)
        settings = RoomSettings().merged(terms.settings_changes())
        fields = {name: str(value) for name, value in terms.fields().items() if value is not None}
        meta = {**fields, **settings.to_meta(), "host": host, "host_name": host_name or host,
                "state": RoomState.SCHEDULED.value}  # fmt: skip
        flat: list[str | bytes | int | float] = [item for pair in meta.items() for item in pair]
        created = await self.scripts.room_create(self.redis, [keys.room_meta(terms.id)], flat)
        if not created:
            raise ConflictError(f"room {terms.id!r} already exists", code="room_exists")
        await self.redis.sadd(keys.rooms_index(), terms.id)
        return await self.get(terms.id)

    async def update(self, room: Room, changes: RoomChanges) -> Room:
        """Apply `changes` to `room` as the caller read it (its settings are merged with
        those changed); the room log gets the fields given and the complete settings."""
        public: dict[str, Any] = {}
        meta: dict[str, str] = {}
        setting_changes = changes.settings_changes()
        if setting_changes is not None:
            given = setting_changes.given()
            settings = room.settings.merged(setting_changes)
            # Write only what changed so concurrent updates of other settings survive.
            meta.update({k: v for k, v in settings.to_meta().items() if k in given})
            public["settings"] = asdict(settings)
        for name, value in changes.fields().items():
            meta[name] = "" if value is None else str(value)
            public[name] = value
        flat: list[str | bytes | int | float] = [item for pair in meta.items() for item in pair]
        result = await self.scripts.room_update(
            self.redis,
            [keys.room_meta(room.id), keys.room_stream(room.id)],
            [orjson.dumps(public), self.stream_maxlen, keys.room_bus(room.id), *flat],
        )
        if result[0] != b"ok":
            raise NotFoundError(f"room {room.id!r} does not exist", code="room_not_found")
        return await self.get(room.id)

    async def transition(self, room_id: str, action: RoomAction) -> Room:
        keys.check_room_id(room_id)
        allowed, target, stamp_field = TRANSITIONS[action]
        result = await self.scripts.room_transition(
            self.redis,
            [keys.room_meta(room_id), keys.room_stream(room_id)],
            [
                target.value,
                " ".join(state.value for state in allowed),
                stamp_field,
                self.stream_maxlen,
                keys.room_bus(room_id),
            ],
        )
        if result[0] != b"ok":
            code = text(result[1])
            if code == "room_not_found":
                raise NotFoundError(f"room {room_id!r} does not exist", code=code)
            next_state(RoomState(text(result[2])), action)  # raises illegal_transition
        return await self.get(room_id)

    async def list_ids(self) -> list[str]:
        members = await self.redis.smembers(keys.rooms_index())
        return texts(members)

    async def listed_ids(self) -> list[str]:
        """The rooms a stranger may find: open to anonymous viewers and not ended (a private
        room is reached by its share link, an ended one by its report)."""
        ids = sorted(await self.list_ids())
        async with self.redis.pipeline(transaction=False) as pipe:
            for room_id in ids:
                pipe.hmget(keys.room_meta(room_id), "state", "allow_anonymous")
            rows = await pipe.execute()
        return [
            room_id
            for room_id, (state, anonymous) in zip(ids, rows, strict=True)
            if state is not None
            and text(state) != RoomState.ENDED.value
            and (anonymous is None or text(anonymous) == "1")
        ]
