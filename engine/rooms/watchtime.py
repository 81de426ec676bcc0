"""Watch time: how long each user has watched a room (a show), across sessions.

Redis holds, per room, `watch_ms` (user -> ms over finished sessions) and `watch_since`
(user -> start of the session in progress), so any process can tell how long a user has
watched so far: `watch_ms + (now - watch_since)`. A session is this process's span with at
least one of the user's connections in the room (a second tab adds nothing); it is opened
on the first join and closed, adding its length to `watch_ms`, on the last leave. Guests
are not counted (only signed-in users can enter a giveaway).

Writes are queued and sent in one MULTI by a background flush, so the hub's (synchronous)
join and leave never wait on Redis and nothing runs per tick. Limits, by design (one field
per user keeps reads to one round trip): a user watching through two engine processes at
once has the overlap counted twice once both sessions end (while the later one is still
open after the earlier ended, it shows only when it ends), and a process that dies
mid-session leaves its start behind until that user's next session (counting them as still
watching meanwhile).
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.core.clock import now_ms
from engine.core.identity import Author, Role
from engine.store import keys
from engine.store.redis_client import text

log = logging.getLogger("livecart.watchtime")

# One queued write: ("open", room, user, start_ms) or ("close", room, user, elapsed_ms).
_Write = tuple[str, str, str, int]


class WatchTime:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.sessions: dict[tuple[str, str], tuple[int, int]] = {}  # -> (connections, start ms)
        self.queue: list[_Write] = []
        self._flushing: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()  # one flush at a time keeps the writes in order

    def joined(self, room: str, author: Author, *, at_ms: int | None = None) -> None:
        """One of the author's connections joined `room` on this process. Guests are not
        counted: only signed-in users can enter a giveaway."""
        if author.role is Role.ANONYMOUS:
            return
        user = author.user
        connections, start = self.sessions.get((room, user), (0, 0))
        if connections == 0:
            start = now_ms() if at_ms is None else at_ms
            self._queue(("open", room, user, start))
        self.sessions[(room, user)] = (connections + 1, start)

    def left(self, room: str, author: Author, *, at_ms: int | None = None) -> None:
        """One of the author's connections left `room` on this process."""
        user = author.user
        connections, start = self.sessions.pop((room, user), (0, 0))
        if connections > 1:
            self.sessions[(room, user)] = (connections - 1, start)
        elif connections == 1:
            end = now_ms() if at_ms is None else at_ms
            self._queue(("close", room, user, max(0, end - start)))

    def _queue(self, write: _Write) -> None:
        self.queue.append(write)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await self.flush()
        except (RedisError, OSError) as exc:
            # Lost watch time errs against the viewer only for a watch-time giveaway rule.
            log.warning("watch time: %d writes lost: %s", len(self.queue), exc)
            self.queue.clear()

    async def flush(self) -> None:
        """Send every queued write, in order, a transaction per batch."""
        async with self._sending:
            while self.queue:
                writes, self.queue = self.queue, []
                async with self.redis.pipeline(transaction=True) as pipe:
                    for kind, room, user, ms in writes:
                        if kind == "open":
                            pipe.hset(keys.watch_since(room), user, ms)
                        else:
                            pipe.hincrby(keys.watch_ms(room), user, ms)
                            pipe.hdel(keys.watch_since(room), user)
                    await pipe.execute()

    async def watched_ms(self, room: str, user: str, *, at_ms: int | None = None) -> int:
        """How long `user` has watched `room`, the session in progress included."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.watch_ms(room), user)
            pipe.hget(keys.watch_since(room), user)
            done, since = await pipe.execute()
        total = int(text(done) or 0)
        if since is not None:
            total += max(0, (now_ms() if at_ms is None else at_ms) - int(since))
        return total
