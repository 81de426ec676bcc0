"""Who watched each show: the rooms' watch time copied from Redis into `show_viewers`.

Redis keeps, per room, how long each signed-in user has watched (engine/rooms/watchtime.py:
finished sessions, plus the start of a session in progress). The customers' profiles need
it across a shop's shows, so the ledger copies it into PostgreSQL:

- `WatchCopier`, started by each engine process's ledger, makes a pass every `every_s`
  (60 s) over the rooms in the index: a room not yet ended is copied on every pass (open
  sessions counted up to the pass), an ended room once more and then marked final in
  `watch_copies`, after which no pass reads it again. Several processes copying the same
  room write the same rows (idempotent upserts; a figure never goes down).
- `copy_room` copies one room at once: the customers routes, a tiered coupon drop and the
  report call it for the room they are about, so the show on air is never a pass behind.

The shop's own user (the host) is not a viewer of its shows and is not copied. The copy
also writes the room's `shows` row, as the order writer does, so a show nobody bought in
is still a show of its shop.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.core.clock import now_ms
from engine.core.loop import stop_tasks
from engine.ledger import rows
from engine.store import keys
from engine.store.redis_client import text, texts

log = logging.getLogger("livecart.ledger")

_SHOW = """
INSERT INTO shows (room, shop, title, state, created_at_ms, started_at_ms, ended_at_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (room) DO UPDATE SET shop = EXCLUDED.shop, title = EXCLUDED.title,
    state = EXCLUDED.state, created_at_ms = EXCLUDED.created_at_ms,
    started_at_ms = EXCLUDED.started_at_ms, ended_at_ms = EXCLUDED.ended_at_ms,
    updated_at = now()
"""
# GREATEST: a copy made from an older read never takes a viewer's time back.
_VIEWERS = """
INSERT INTO show_viewers (room, user_id, shop, watch_ms)
SELECT $1, u, $2, w FROM unnest($3::text[], $4::int8[]) AS t (u, w)
ON CONFLICT (room, user_id) DO UPDATE SET shop = EXCLUDED.shop,
    watch_ms = GREATEST(show_viewers.watch_ms, EXCLUDED.watch_ms)
"""
_COPIED = """
INSERT INTO watch_copies (room, copied_at_ms, final) VALUES ($1, $2, $3)
ON CONFLICT (room) DO UPDATE SET copied_at_ms = GREATEST(watch_copies.copied_at_ms,
    EXCLUDED.copied_at_ms), final = watch_copies.final OR EXCLUDED.final
"""


def watched(done: dict[str, int], since: dict[str, int], at_ms: int) -> dict[str, int]:
    """Each user's watch time: finished sessions plus the one in progress up to `at_ms`."""
    total = dict(done)
    for user, start in since.items():
        total[user] = total.get(user, 0) + max(0, at_ms - start)
    return total


async def copy_room(redis: Redis, pool: asyncpg.Pool, room: str, *,
                    at_ms: int | None = None) -> str | None:  # fmt: skip
    """Copy one room's watch time (and its `shows` row); the room's state as read, None if
    there is no such room. An ended room's copy is final: passes no longer read it."""
    at = now_ms() if at_ms is None else at_ms
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.room_meta(room))
        pipe.hgetall(keys.watch_ms(room))
        pipe.hgetall(keys.watch_since(room))
        raw_meta, raw_done, raw_since = await pipe.execute()
    meta = {text(k): text(v) for k, v in raw_meta.items()}
    show = rows.show_row(room, meta)
    if show is None:
        return None
    shop = meta.get("host", "")
    done = {text(u): int(ms) for u, ms in raw_done.items()}
    since = {text(u): int(ms) for u, ms in raw_since.items()}
    times = {u: ms for u, ms in watched(done, since, at).items() if u != shop}
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(_SHOW, *show)
        if times:
            await connection.execute(_VIEWERS, room, shop, list(times), list(times.values()))
        await connection.execute(_COPIED, room, at, meta["state"] == "ended")
    return meta["state"]


class WatchCopier:
    """The periodic pass (module docstring); one per engine process with a ledger."""

    def __init__(self, redis: Redis, pool: asyncpg.Pool, *, every_s: float = 60.0) -> None:
        self.redis = redis
        self.pool = pool
        self.every_s = every_s
        self.final: set[str] | None = None  # rooms copied after they ended, read once
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livecart-ledger-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await stop_tasks([task])
        # Cancelled mid-query, the driver may end the task with an error of its own instead
        # of the cancellation: a copy is lost (the next start copies again), nothing else.
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            log.warning("watch time copy stopped on %s: %s", type(error).__name__, error)

    async def _run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                    RedisError) as exc:  # fmt: skip
                # The next pass copies everything again: nothing is lost but freshness.
                log.warning("watch time copy failed (next pass in %.0f s): %s", self.every_s, exc)
            await asyncio.sleep(self.every_s)

    async def pass_once(self, *, at_ms: int | None = None) -> int:
        """Copy every room not yet copied for good; the number of rooms copied."""
        if self.final is None:
            found = await self.pool.fetch("SELECT room FROM watch_copies WHERE final")
            self.final = {record["room"] for record in found}
        rooms = [r for r in texts(await self.redis.smembers(keys.rooms_index()))
                 if r not in self.final]  # fmt: skip
        copied = 0
        for room in rooms:
            state = await copy_room(self.redis, self.pool, room, at_ms=at_ms)
            copied += state is not None
            if state == "ended":
                self.final.add(room)
        return copied
