"""The ledger on one engine process: migrate, connect, run the writer, report its state,
and once an hour empty the addresses and contacts retention has let go of
(engine/ledger/privacy.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.core.metrics import METRICS
from engine.ledger import database, privacy
from engine.ledger.writer import LedgerWriter

log = logging.getLogger("livecart.ledger")

_LAG_EVERY_S = 1.0
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
        self._lag_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.pool = await database.migrate_and_connect(self.url)
        self.writer = LedgerWriter(self.redis, self.pool, self.consumer,
                                   batch_size=self.batch_size,
                                   claim_idle_ms=self.claim_idle_ms)  # fmt: skip
        self.writer.start()
        self._lag_task = asyncio.create_task(self._watch_lag(), name="livecart-ledger-lag")
        self._retention_task = asyncio.create_task(self._retain(), name="livecart-retention")
        log.info("ledger writing to %s", database.redacted(self.url))

    async def stop(self) -> None:
        for task in (self._lag_task, self._retention_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
