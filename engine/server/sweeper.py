"""The reservation sweeper: returns holds whose time is up to stock.

It also expires unpaid orders past their payment deadline (engine/commerce/orders.py), which
gives their reservations and coupons back. Every engine process runs one. Each pass
reads, for every room, the reservations whose expiry has passed (one pipelined round
trip) and hands them to the release script in "expire" mode, which touches only
reservations that are still held and really expired (by Redis time). So sweepers on
several processes, or one racing a checkout, can never return a unit twice; the cost of
running many is a few redundant reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.commerce.orders import OrderStore
from engine.commerce.stock import Stock, sale_of_reservation
from engine.core.errors import LivecartError
from engine.core.loop import stop_tasks
from engine.core.metrics import METRICS
from engine.store import keys
from engine.store.redis_client import text, texts

log = logging.getLogger("livecart.sweeper")
# (every room's id, now in ms) -> how many items it handled
RoomPass = Callable[[list[str], int], Awaitable[int]]


class Sweeper:
    def __init__(self, redis: Redis, stock: Stock, orders: OrderStore | None = None, *,
                 interval_s: float = 0.25, batch: int = 500,
                 passes: list[RoomPass] | None = None) -> None:  # fmt: skip
        self.redis = redis
        self.stock = stock
        self.orders = orders
        # More timed work over every room (reminders, the features' deadlines), after ours.
        self.passes: list[RoomPass] = passes or []
        self.interval_s = interval_s
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livecart-sweeper")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # Jitter keeps the processes' sweeps from running in lockstep.
            await asyncio.sleep(self.interval_s * random.uniform(0.8, 1.2))
            try:
                await self.sweep()
            except (RedisError, OSError) as exc:
                log.warning("sweep failed: %s", exc)

    async def sweep(self, at_ms: int | None = None) -> int:
        """One pass over every room; returns how many reservations it expired."""
        started = time.perf_counter()
        now = int(time.time() * 1000) if at_ms is None else at_ms
        rooms = texts(await self.redis.smembers(keys.rooms_index()))
        for room_pass in self.passes:
            try:
                await room_pass(rooms, now)
            except LivecartError as exc:
                log.warning("sweep pass %s failed: %s", room_pass, exc)
        if self.orders is not None:
            await self.sweep_orders(rooms, now, at_ms)
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.zrangebyscore(keys.expiry(room), "-inf", now, start=0, num=self.batch,
                                   withscores=True)  # fmt: skip
            due_lists = await pipe.execute()
        expired = 0
        lag: dict[tuple[str, ...], float] = {}
        for room, due in zip(rooms, due_lists, strict=True):
            if due:  # the oldest first: how late its release is
                lag[(room,)] = max(0.0, now - float(due[0][1])) / 1000
            by_sale: dict[str, list[str]] = defaultdict(list)
            for raw, _ in due:
                reservation = text(raw)
                by_sale[sale_of_reservation(reservation)].append(reservation)
            for sale_id, ids in by_sale.items():
                outcomes = await self.stock.expire(room, sale_id, ids, at_ms=at_ms)
                expired += outcomes.count("expired")
        METRICS.room_sweeper_lag.values = lag
        if expired:
            METRICS.reservations_expired.inc(expired)
        METRICS.sweep_seconds.observe(time.perf_counter() - started)
        return expired

    async def sweep_orders(self, rooms: list[str], now: int, at_ms: int | None) -> int:
        """Expire unpaid orders past their deadline (their units and coupons come back).
        Runs before the reservation pass so an order's units return through it."""
        assert self.orders is not None
        expired = 0
        for room in rooms:
            for order_id in await self.orders.due(room, now, self.batch):
                try:
                    await self.orders.expire(room, order_id, at_ms=at_ms)
                    expired += 1
                except LivecartError as exc:  # paid or cancelled meanwhile, or not due yet
                    log.debug("order %s in %s not expired: %s", order_id, room, exc)
        if expired:
            METRICS.orders_expired.inc(expired)
            METRICS.orders.inc(expired, "expired")
        return expired
