"""Room-wide presence and likes across engine processes.

Each process reports its local online count and aggregated likes for a room once per
sync interval (one script call per room per process) and reads back the room totals:
online now, peak concurrent, likes and unique viewers (exact: a hash of identities with
their first join). A process that stops reporting (crash) drops out of `online` after
`stale_ms`. Each report also samples the online count into the show metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from engine import keys
from engine.scripts import Scripts


class Arrival(StrEnum):
    """A join, for the audience figures: the identity's first in this room, and new to the
    host (never watched any of their shows) or returning; or a rejoin."""

    NEW = "new"
    RETURNING = "returning"
    AGAIN = "again"


@dataclass(frozen=True, slots=True)
class RoomStats:
    online: int = 0
    peak: int = 0
    likes: int = 0
    unique: int = 0

    def to_wire(self) -> dict[str, int]:
        return {
            "online": self.online,
            "peak": self.peak,
            "likes": self.likes,
            "unique": self.unique,
        }


class Presence:
    def __init__(self, redis: Redis, scripts: Scripts, process_id: str, stale_ms: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.process_id = process_id
        self.stale_ms = stale_ms

    async def sync(self, room: str, online_here: int, likes_delta: int) -> RoomStats:
        """Report this process's numbers (online_here = -1 withdraws it) and get totals."""
        return await self._exchange(room, self.process_id, online_here, likes_delta)

    async def _exchange(self, room: str, reporter: str, online: int, likes: int) -> RoomStats:
        totals = await self.scripts.room_sync(
            self.redis,
            [
                keys.presence(room),
                keys.likes(room),
                keys.peak(room),
                keys.uniques(room),
                keys.show_metrics(room),
            ],
            [reporter, online, likes, self.stale_ms],
        )
        return RoomStats(*(int(n) for n in totals))

    async def seen(self, room: str, identity: str, host: str) -> Arrival:
        """Count a viewer identity towards unique viewers (one round trip): whether this is
        its first join of the room, and if so whether it watched this host before."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(keys.uniques(room), identity, int(time.time() * 1000))
            pipe.sadd(keys.audience(host), identity)
            first, unknown = await pipe.execute()
        if not first:
            return Arrival.AGAIN
        return Arrival.NEW if unknown else Arrival.RETURNING

    async def read(self, room: str) -> RoomStats:
        """Room totals without reporting anything (for the HTTP API)."""
        return await self._exchange(room, f"{self.process_id}:reader", -1, 0)
