"""The ledger on one engine process: migrate, connect, run the writer, report its state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.core.metrics import METRICS
from engine.ledger import database
from engine.ledger.viewers import WatchCopier
from engine.ledger.writer import LedgerWriter

log = logging.getLogger("livecart.ledger")

_LAG_EVERY_S = 1.0


class Ledger:
    def __init__(self, redis: Redis, url: str, consumer: str, *, batch_size: int = 500) -> None:
        self.redis = redis
        self.url = database.check_url(url)
        self.consumer = consumer
        self.batch_size = batch_size
        self.pool: asyncpg.Pool | None = None
        self.writer: LedgerWriter | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.watch: WatchCopier | None = None  # shows' watch time (engine/ledger/viewers.py)

    async def start(self) -> None:
        await database.migrate(self.url)
        self.pool = await database.connect(self.url)
        self.writer = LedgerWriter(self.redis, self.pool, self.consumer, batch_size=self.batch_size)
        self.writer.start()
        self._lag_task = asyncio.create_task(self._watch_lag(), name="livecart-ledger-lag")
        self.watch = WatchCopier(self.redis, self.pool)
        self.watch.start()
        log.info("ledger writing to %s", database.redacted(self.url))

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        if self.watch is not None:
            await self.watch.stop()
        if self.writer is not None:
            await self.writer.stop()
        if self.pool is not None:
            await self.pool.close()

    async def _watch_lag(self) -> None:
        assert self.writer is not None
        while True:
            with contextlib.suppress(RedisError, OSError):
                METRICS.ledger_lag.set(await self.writer.lag())
            await asyncio.sleep(_LAG_EVERY_S)

    async def status(self) -> dict[str, Any]:
        assert self.writer is not None
        return await self.writer.status()
