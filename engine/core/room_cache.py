"""A value per room, kept by this process for a short time instead of read on every use.

Some reads happen on every comment (the comment-to-buy settings, a room's open giveaway
keywords) while the value changes a few times a show. Each such read cost a Redis round trip
per comment: about a third of what a comment cost the engine in `livecart bench fanout`'s
saturation. The value is read once and kept for `ttl_s`; the code that changes it calls
`forget`, and so can whatever learns of a change made by another process (a room-log
entry). A read that was under way when `forget` was called is used but not kept, so a value
older than the change is never kept.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

PRUNE_AT = 4096  # rooms held before expired values are dropped


class RoomCache(Generic[T]):
    def __init__(self, load: Callable[[str], Awaitable[T]], ttl_s: float) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self._values: dict[str, tuple[float, T]] = {}  # room -> (kept until, value)
        self._forgets = 0  # how many times `forget` was called: a read spanning one is stale

    async def get(self, room: str) -> T:
        now = time.monotonic()
        kept = self._values.get(room)
        if kept is not None and kept[0] > now:
            return kept[1]
        forgets = self._forgets
        value = await self._load(room)
        if self._forgets == forgets:
            if len(self._values) >= PRUNE_AT:
                self._values = {r: v for r, v in self._values.items() if v[0] > now}
            self._values[room] = (now + self.ttl_s, value)
        return value

    def forget(self, room: str) -> None:
        """The room's value changed: the next `get` reads it again."""
        self._values.pop(room, None)
        self._forgets += 1
