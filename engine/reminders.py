"""Show reminders to subscribers (issue 9, in progress)."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.scripts import Scripts


class Reminders:
    def __init__(self, redis: Redis, scripts: Scripts, *, log_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.log_maxlen = log_maxlen

    async def sweep(self, rooms: list[str], now: int) -> int:
        """Send the reminders that are due; returns how many."""
        return 0
