"""The room log: one Redis Stream per room holding, in order, everything a viewer must not
miss (comments, deletions, pins, state and settings changes). Stream ids are the
offsets clients resume from. The same entries reach other engine processes on the
room's bus channel as `kind \\n id \\n ref \\n data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.core.stream_ids import entry_timestamp_ms, stream_id_key
from engine.store import keys
from engine.store.redis_client import stream_rows, text
from engine.store.scripts import Scripts


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    kind: str
    ref: str
    data: dict[str, Any]

    @property
    def is_comment(self) -> bool:
        return self.kind == "comment"

    @property
    def order(self) -> tuple[int, int]:
        return stream_id_key(self.id)

    def to_wire(self) -> dict[str, Any]:
        # The envelope wins over the data: a product's own "id" travels in `ref`.
        wire: dict[str, Any] = {**self.data, "id": self.id, "kind": self.kind,
                                "ts": entry_timestamp_ms(self.id)}  # fmt: skip
        if self.ref:
            wire["ref"] = self.ref
        return wire


@dataclass(frozen=True, slots=True)
class BusMessage:
    """A message on a room's bus: a log entry (with id) or a control message (no id)."""

    kind: str
    id: str
    ref: str
    data: bytes

    @classmethod
    def parse(cls, payload: bytes) -> BusMessage:
        kind, entry_id, ref, data = payload.split(b"\n", 3)
        return cls(kind.decode(), entry_id.decode(), ref.decode(), data)

    def entry(self) -> Entry:
        return Entry(self.id, self.kind, self.ref, orjson.loads(self.data))


def control_payload(kind: str, data: dict[str, Any]) -> bytes:
    """A bus message that is not a log entry (kicks, mute notices, word-list changes)."""
    return kind.encode() + b"\n\n\n" + orjson.dumps(data)


async def append_entry(redis: Redis, scripts: Scripts, room: str, kind: str, ref: str, *,
                       data: dict[str, Any], maxlen: int) -> str:  # fmt: skip
    """Log one entry on its own (engine/rooms/lua/room_entry.lua); its id."""
    entry_id = await scripts.room_entry(
        redis, [keys.room_stream(room)],
        [kind, ref, orjson.dumps(data), maxlen, keys.room_bus(room)],
    )  # fmt: skip
    return text(entry_id)


async def publish_control(redis: Redis, scripts: Scripts, room: str, kind: str,
                          data: dict[str, Any]) -> None:  # fmt: skip
    """A control message (not a log entry) on the room's bus, to every engine process."""
    bus = keys.room_bus(room)
    await scripts.bus_publish(redis, [bus], [control_payload(kind, data)])


async def notify_user(redis: Redis, scripts: Scripts, room: str, user: str, kind: str,
                      **data: Any) -> None:  # fmt: skip
    """A private `notice` frame of `kind` to every connection of `user` in the room, on
    every engine process. Best effort, like any pub/sub message: what must not be lost
    also lives in a record the client can read (an order, a wallet, a giveaway)."""
    await publish_control(redis, scripts, room, kind, {**data, "user": user})


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    return Entry(
        id=entry_id.decode(),
        kind=fields[b"k"].decode(),
        ref=fields.get(b"r", b"").decode(),
        data=orjson.loads(fields[b"d"]),
    )


class RoomLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def last_id(self, room: str) -> str:
        """The newest entry's id, or "0-0" for an empty log."""
        newest = stream_rows(await self.redis.xrevrange(keys.room_stream(room), count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def recent(self, room: str, upto: str, count: int) -> list[Entry]:
        """The last `count` entries with id <= upto, oldest first."""
        if upto == "0-0" or count <= 0:
            return []
        rows = stream_rows(
            await self.redis.xrevrange(keys.room_stream(room), max=upto, count=count)
        )
        return [_entry(entry_id, fields) for entry_id, fields in reversed(rows)]

    async def between(self, room: str, after: str, upto: str, limit: int) -> list[Entry] | None:
        """Entries with after < id <= upto, or None when more than `limit` or when the log
        no longer reaches back to `after` (trimmed): the caller cannot recover that gap."""
        if stream_id_key(after) >= stream_id_key(upto):
            return []
        stream = keys.room_stream(room)
        rows = stream_rows(
            await self.redis.xrange(stream, min=f"({after}", max=upto, count=limit + 1)
        )
        if len(rows) > limit:
            return None
        if after != "0-0":
            oldest = stream_rows(await self.redis.xrange(stream, count=1))
            if oldest and stream_id_key(oldest[0][0].decode()) > stream_id_key(after):
                # The oldest retained entry is newer than the offset: the log was trimmed
                # past it (or, rarely, the offset's own entry was deleted by moderation;
                # then the client just reloads recent history too).
                return None
        return [_entry(entry_id, fields) for entry_id, fields in rows]

    async def after(self, room: str, after: str, limit: int) -> tuple[list[Entry], bool]:
        """Up to `limit` entries with id > after, and whether they are complete (the log
        still reaches back to `after` and nothing beyond `limit` was left out)."""
        stream = keys.room_stream(room)
        rows = stream_rows(await self.redis.xrange(stream, min=f"({after}", count=limit + 1))
        complete = len(rows) <= limit
        if after != "0-0" and rows and complete:
            oldest = stream_rows(await self.redis.xrange(stream, count=1))
            complete = stream_id_key(oldest[0][0].decode()) <= stream_id_key(after)
        return [_entry(entry_id, fields) for entry_id, fields in rows[:limit]], complete

    async def get_comment(self, room: str, entry_id: str) -> Entry | None:
        rows = stream_rows(
            await self.redis.xrange(keys.room_stream(room), min=entry_id, max=entry_id)
        )
        if not rows:
            return None
        entry = _entry(rows[0][0], rows[0][1])
        return entry if entry.is_comment else None
