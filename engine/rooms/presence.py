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

from engine.store import keys
from engine.store.scripts import Scripts


class Arrival(StrEnum):
    """A join, for the audience figures: the identity's first in this room, and new to the
    host (never watched any of their shows) or returning; or a rejoin."""

    NEW = "new"
    RETURNING = "returning"
    AGAIN = "again"
    UNCOUNTED = "uncounted"  # an anonymous first join beyond its address's bound


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

    async def seen(self, room: str, identity: str, host: str, *, anonymous_from: str = "",
                   anonymous_per_address: int = 0) -> Arrival:  # fmt: skip
        """Count a viewer identity towards unique viewers: whether this is its first join of
        the room, and if so whether it watched this host before. An anonymous identity
        names its client address (`anonymous_from`): at most `anonymous_per_address` of
        them count per address (0: no bound)."""
        address = anonymous_from if anonymous_per_address > 0 else ""
        first = await self.scripts.viewer_seen(
            self.redis,
            [keys.uniques(room), keys.anonymous_by_address(room)],
            [identity, int(time.time() * 1000), address, anonymous_per_address],
        )
        if first == 0:
            return Arrival.AGAIN
        if first < 0:
            return Arrival.UNCOUNTED
        # The host's audience is not a room key (another slot): a second call, first joins only.
        unknown = await self.redis.sadd(keys.audience(host), identity)
        return Arrival.NEW if unknown else Arrival.RETURNING

    async def read(self, room: str) -> RoomStats:
        """Room totals without reporting anything (for the HTTP API)."""
        return await self._exchange(room, f"{self.process_id}:reader", -1, 0)
