"""Rooms: the model, its state machine, validation of host input, and its Redis storage.

    scheduled ──go_live──▶ live ──end──▶ ended
        └──────────────end (cancel)─────────▲

A room's fields and settings live in one hash (`keys.room_meta`). Every change is also
appended to the room log so viewers (and resuming viewers) see it in order.
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.core.errors import ConflictError, NotFoundError, ProtocolError
from engine.core.fields import invalid_field
from engine.store import keys
from engine.store.redis_client import text, texts
from engine.store.scripts import Scripts

MAX_TITLE = 120
MAX_URL = 2048
_URL_RE = re.compile(r"https?://\S+")


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

    # (low, high) bounds of every integer setting.
    BOUNDS = {
        "max_comment_chars": (1, 2000),
        "comment_rate_max": (0, 1000),
        "comment_rate_window_ms": (100, 3_600_000),
        "slow_mode_ms": (0, 3_600_000),
        "display_rate": (1, 1000),
    }

    def merged(self, changes: Any) -> RoomSettings:
        if not isinstance(changes, dict):
            raise ProtocolError("settings must be an object", code="invalid_field")
        known = {f.name: f for f in fields(self)}
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise invalid_field(f"settings.{name}", "unknown setting")
            if name == "allow_anonymous":
                if not isinstance(value, bool):
                    raise invalid_field("settings.allow_anonymous", "must be true or false")
            else:
                low, high = self.BOUNDS[name]
                if (
                    not isinstance(value, int)
                    or isinstance(value, bool)
                    or not low <= value <= high
                ):
                    raise invalid_field(
                        f"settings.{name}", f"must be an integer in [{low}, {high}]"
                    )
            values[name] = value
        return replace(self, **values)

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


def _parse_time_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
        # Without an offset the time would be read in the server's zone: refuse it.
        if when is not None and when.tzinfo is not None:
            return int(when.timestamp() * 1000)
    raise invalid_field(
        "scheduled_at", "must be epoch milliseconds or an ISO 8601 time with offset"
    )


def validate_room_fields(body: Any, *, partial: bool) -> dict[str, Any]:
    """Validate host-supplied room fields into meta-ready strings (plus `settings`)."""
    if not isinstance(body, dict):
        raise ProtocolError("request body must be a JSON object", code="bad_request")
    allowed = {"id", "title", "cover_url", "stream_url", "scheduled_at", "settings"}
    unknown = set(body) - allowed
    if unknown:
        raise invalid_field(sorted(unknown)[0], "unknown field")
    if partial and "id" in body:
        raise invalid_field("id", "a room's id cannot change")
    if partial and not body:
        raise ProtocolError("nothing to update", code="bad_request")
    out: dict[str, Any] = {}
    if "title" in body or not partial:
        title = body.get("title")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE:
            raise invalid_field("title", f"must be 1-{MAX_TITLE} characters")
        out["title"] = title.strip()
    for name in ("cover_url", "stream_url"):
        if name in body:
            value = body[name]
            if value is not None and (
                not isinstance(value, str) or len(value) > MAX_URL or not _URL_RE.fullmatch(value)
            ):
                raise invalid_field(name, "must be an http(s) URL or null")
            out[name] = value or ""
    if "scheduled_at" in body:
        when = _parse_time_ms(body["scheduled_at"])
        out["scheduled_at"] = "" if when is None else str(when)
    if "settings" in body:
        out["settings"] = body["settings"]
    return out


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

    async def create(self, room_id: str, host: str, body: Any) -> Room:
        keys.check_room_id(room_id)
        values = validate_room_fields(body, partial=False)
        settings = RoomSettings().merged(values.pop("settings", {}))
        meta = {**values, **settings.to_meta(), "host": host, "state": RoomState.SCHEDULED.value}
        flat: list[str | bytes | int | float] = [item for pair in meta.items() for item in pair]
        created = await self.scripts.room_create(self.redis, [keys.room_meta(room_id)], flat)
        if not created:
            raise ConflictError(f"room {room_id!r} already exists", code="room_exists")
        await self.redis.sadd(keys.rooms_index(), room_id)
        return await self.get(room_id)

    async def update(self, room_id: str, body: Any) -> Room:
        room = await self.get(room_id)
        values = validate_room_fields(body, partial=True)
        public: dict[str, Any] = {}
        meta: dict[str, str] = {}
        if "settings" in values:
            changes = values.pop("settings")
            settings = room.settings.merged(changes)
            # Write only what changed so concurrent updates of other settings survive.
            meta.update({k: v for k, v in settings.to_meta().items() if k in changes})
            public["settings"] = asdict(settings)
        for name, value in values.items():
            meta[name] = value
            public[name] = (
                (int(value) if value else None) if name == "scheduled_at" else value or None
            )
        flat: list[str | bytes | int | float] = [item for pair in meta.items() for item in pair]
        result = await self.scripts.room_update(
            self.redis,
            [keys.room_meta(room_id), keys.room_stream(room_id)],
            [orjson.dumps(public), self.stream_maxlen, keys.room_bus(room_id), *flat],
        )
        if result[0] != b"ok":
            raise NotFoundError(f"room {room_id!r} does not exist", code="room_not_found")
        return await self.get(room_id)

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
