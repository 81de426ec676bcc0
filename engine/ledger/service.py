"""The ledger on one engine process: migrate, connect, run the writer, copy the shows'
watch time (engine/ledger/viewers.py), report its state, and once an hour empty the
addresses and contacts retention has let go of (engine/ledger/privacy.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.ledger import database, privacy
from engine.ledger.viewers import WatchCopier
from engine.ledger.writer import LedgerWriter

log = logging.getLogger("livecart.ledger")

# Retention: a first pass a minute after start (not in the way of a restart), then hourly.
_RETENTION_FIRST_S = 60.0
_RETENTION_EVERY_S = 3600.0


class Ledger:
    def __init__(
        self,
        redis: Redis,
        url: str,
        consumer: str,
        *,
        batch_size: int = 500,
        claim_idle_ms: int = 30_000,
        retention_days: int = 90,
    ) -> None:
        self.redis = redis
        self.url = database.check_url(url)
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.retention_days = retention_days
        self.pool: asyncpg.Pool | None = None
        self.writer: LedgerWriter | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self.watch: WatchCopier | None = None  # shows' watch time (engine/ledger/viewers.py)

    async def start(self) -> None:
        self.pool = await database.migrate_and_connect(self.url)
        self.writer = LedgerWriter(self.redis, self.pool, self.consumer,
                                   batch_size=self.batch_size,
                                   claim_idle_ms=self.claim_idle_ms)  # fmt: skip
        self.writer.start()
        self._retention_task = asyncio.create_task(self._retain(), name="livecart-retention")
        self.watch = WatchCopier(self.redis, self.pool)
        self.watch.start()
        log.info("ledger writing to %s", database.redacted(self.url))

    async def stop(self) -> None:
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        if self.watch is not None:
            await self.watch.stop()
        if self.writer is not None:
            await self.writer.stop()
        if self.pool is not None:
            await self.pool.close()

    async def _retain(self) -> None:
        assert self.pool is not None
        await asyncio.sleep(_RETENTION_FIRST_S)
        while True:
            try:
                done = await privacy.retention_pass(self.redis, self.pool, self.retention_days)
            except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("retention pass failed (next in an hour): %s", exc)
            else:
                if done and done["orders_emptied"]:
                    log.info("retention emptied %d orders' addresses", done["orders_emptied"])
            await asyncio.sleep(_RETENTION_EVERY_S)

    async def status(self) -> dict[str, Any]:
        assert self.writer is not None
        return await self.writer.status()
