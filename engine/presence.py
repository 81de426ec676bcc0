"""Room-wide presence and likes across engine processes.

Each process reports its local online count and aggregated likes for a room once per
sync interval (one script call per room per process) and reads back the room totals:
online now, peak concurrent, likes and unique viewers (HyperLogLog). A process that
stops reporting (crash) drops out of `online` after `stale_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine import keys
from engine.scripts import Scripts


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
            [keys.presence(room), keys.likes(room), keys.peak(room), keys.uniques(room)],
            [reporter, online, likes, self.stale_ms],
        )
        return RoomStats(*(int(n) for n in totals))

    async def seen(self, room: str, identity: str) -> None:
        """Count a viewer identity towards unique viewers."""
        await self.redis.pfadd(keys.uniques(room), identity)

    async def read(self, room: str) -> RoomStats:
        """Room totals without reporting anything (for the HTTP API)."""
        return await self._exchange(room, f"{self.process_id}:reader", -1, 0)
