"""The ledger writer: every room's order events, copied into PostgreSQL in batches.

Each engine process runs one, a consumer of the `ledger` group on every room's
`{room}:order_events` stream (engine/commerce/order_feed.py). A batch is read, completed
with the orders and payments as Redis holds them, written in one transaction of idempotent
upserts (events keyed by their stream id, rows guarded by version: engine/ledger/rows.py),
and only then acknowledged. So a crash between commit and acknowledgement writes the same
batch again to no effect, and a crash before the commit leaves the events pending: this
consumer reads its own pending events first, and events another consumer left pending for
`claim_idle_ms` are claimed. Exactly once in effect.

Redis stays the hot path: the writer never sits on a grab's or a checkout's way. While
PostgreSQL is away it retries with backoff and the lag grows (`lag()`, the
`livecart_ledger_lag_events` gauge, /readyz's `ledger`); it drains when the server is back.
A lag beyond `order_events_maxlen` (the stream's length) would lose events: alert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from engine.commerce.order_feed import OrderFeed
from engine.commerce.orders import Order
from engine.core.metrics import METRICS
from engine.ledger import rows
from engine.ledger.database import Connection
from engine.ledger.rows import Batch, Event
from engine.store import keys
from engine.store.redis_client import text, texts

log = logging.getLogger("livecart.ledger")

GROUP = "ledger"
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_COUNT_UPTO = 10_000  # undelivered entries counted one by one, at most (see rooms_lag)


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...], update: str) -> str:
    """INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT: one statement a table a batch.
    `update`: "never" (rows that never change), "newer" (only by a row of a newer
    version) or "always" (the latest word wins)."""
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES[table], 1))
    conflict = "DO NOTHING"
    if update != "never":
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
        guard = f" WHERE {table}.version <= EXCLUDED.version" if update == "newer" else ""
        conflict = f"DO UPDATE SET {sets}{guard}"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(key)}) {conflict}"
    )


# Each column's type, in the order of rows.py's *_COLUMNS (unnest takes typed arrays).
_TYPES: dict[str, tuple[str, ...]] = {
    "order_events": ("text", "text", "int8", "text", "text", "text", "text", "int8", "text",
                     "int8", "jsonb"),
    "orders": ("text", "text", "text", "text", "text", "text", "text", "int8", "int8", "int8",
               "int8", "int8", "jsonb", "jsonb", "int8", "int8", "int8", "int8", "text", "bool",
               "jsonb", "jsonb", "int8"),
    "payments": ("text", "text", "text", "text", "int8", "text", "text", "text", "int8", "int8"),
    "refunds": ("text", "text", "text", "text", "int8", "text", "text", "int8"),
    "coupon_uses": ("text", "text", "text", "text", "int8"),
    "shows": ("text", "text", "text", "text", "int8", "int8", "int8"),
}  # fmt: skip

_STATEMENTS = (
    ("events", _upsert("order_events", rows.EVENTS_COLUMNS, ("room", "event_id"), "never")),
    ("shows", _upsert("shows", rows.SHOWS_COLUMNS, ("room",), "always")),
    ("orders", _upsert("orders", rows.ORDERS_COLUMNS, ("room", "order_id"), "newer")),
    ("payments", _upsert("payments", rows.PAYMENTS_COLUMNS, ("payment_id",), "newer")),
    ("refunds", _upsert("refunds", rows.REFUNDS_COLUMNS, ("room", "refund_id"), "never")),
    ("coupons", _upsert("coupon_uses", rows.COUPONS_COLUMNS, ("room", "coupon"), "never")),
)


def _columns(batch_rows: list[rows.Row]) -> list[list[Any]]:
    return [list(column) for column in zip(*batch_rows, strict=True)]


async def write(connection: Connection, batch: Batch) -> None:
    """One batch, in one transaction, idempotently."""
    async with connection.transaction():
        for table, sql in _STATEMENTS:
            table_rows = batch.table(table)
            if table_rows:
                await connection.execute(sql, *_columns(table_rows))


async def room_lag(redis: Redis, room: str) -> int:
    """A room's order events not yet in the ledger."""
    return (await rooms_lag(redis, [room]))[room]


async def rooms_lag(redis: Redis, rooms: list[str]) -> dict[str, int]:
    """Each room's order events not yet in the ledger: never delivered to the group, plus
    delivered and not acknowledged (all of them before the group exists; none without a
    stream). Two pipelines, whatever the number of rooms."""
    async with redis.pipeline(transaction=False) as pipe:
        for room in rooms:
            pipe.xinfo_groups(keys.order_events(room))
        replies = await pipe.execute(raise_on_error=False)
    lags: dict[str, int] = {}
    ungrouped = []
    for room, groups in zip(rooms, replies, strict=True):
        if isinstance(groups, ResponseError):
            lags[room] = 0  # no stream: the room never had an order
            continue
        ours = next((g for g in groups if text(g["name"]) == GROUP), None)
        if ours is None:
            ungrouped.append(room)
        elif ours.get("lag") is None:
            # Redis cannot say once entries were deleted (an erasure) or trimmed: count
            # what follows the group's last delivered entry instead.
            last = text(ours["last-delivered-id"])
            after = await redis.xrange(keys.order_events(room), f"({last}", "+", _COUNT_UPTO)
            lags[room] = len(after or []) + int(ours.get("pending") or 0)
        else:
            lags[room] = int(ours["lag"]) + int(ours.get("pending") or 0)
    if ungrouped:
        async with redis.pipeline(transaction=False) as pipe:
            for room in ungrouped:
                pipe.xlen(keys.order_events(room))
            lags.update(zip(ungrouped, map(int, await pipe.execute()), strict=True))
    return lags


class LedgerWriter:
    def __init__(
        self,
        redis: Redis,
        pool: asyncpg.Pool,
        consumer: str,
        *,
        batch_size: int = 500,
        poll_s: float = 0.2,
        claim_idle_ms: int = 30_000,
        look_s: float = 0.2,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.consumer = consumer
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.claim_idle_ms = claim_idle_ms
        self.written = 0  # events committed by this writer
        self.last_commit_s = 0.0  # time.time() of the last commit, 0 before one
        self.error: str | None = None  # why the last write failed, until one succeeds
        self._feeds: dict[str, OrderFeed] = {}
        self._next_claim: dict[str, float] = {}  # room -> when to look for stale events
        # This consumer may hold unacknowledged events (a write failed): read them first,
        # until a pass finds none.
        self._retrying = True
        self._found_pending = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.look_s = look_s
        self.lag_events = 0  # as last looked at
        self._behind: set[str] = set()  # rooms with events waiting, as last looked at
        self._next_look = 0.0

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livecart-ledger")

    async def stop(self) -> None:
        # A flag besides the cancel: a cancellation that lands inside a client library's
        # own clean-up can be absorbed there, and the pass would go on over every room.
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                written = await self.drain_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                    RedisError) as exc:  # fmt: skip
                self._retrying = True
                self.error = f"{type(exc).__name__}: {exc}"
                delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                log.warning("ledger write failed (retrying in %.1f s): %s", delay, self.error)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if not written:
                await asyncio.sleep(self.poll_s)

    # ---- one pass ----------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Read what is waiting in the rooms that are behind (up to a batch), write it,
        acknowledge it; the number of events written."""
        if time.monotonic() >= self._next_look:
            await self.look()
        picked: dict[str, list[Event]] = {}
        self._found_pending = False
        budget = self.batch_size
        for room in sorted(self._behind):
            if budget <= 0 or self._stopping:
                break
            events = await self._next_events(room, budget)
            if len(events) < budget:
                self._behind.discard(room)  # drained: the next look says if more came
            if events:
                picked[room] = events
                budget -= len(events)
        if not picked:
            self._retrying = False
            return 0
        batch = await self._complete(picked)
        async with self.pool.acquire() as connection:
            await write(connection, batch)
        for room, events in picked.items():
            await self._feeds[room].ack([event_id for event_id, _ in events])
        self.written += len(batch)
        self.last_commit_s = time.time()
        self.error = None
        self._retrying = self._found_pending
        METRICS.ledger_events.inc(len(batch))
        return len(batch)

    async def look(self) -> int:
        """Every room's lag in one pipeline (a Redis with thousands of past rooms costs one
        round trip a second, not one a room a pass): the rooms behind are the ones read
        until drained. The total is the lag metric's."""
        rooms = sorted(texts(await self.redis.smembers(keys.rooms_index())))
        lags = await rooms_lag(self.redis, rooms)
        self._behind.update(room for room, lag in lags.items() if lag)
        self.lag_events = sum(lags.values())
        self._next_look = time.monotonic() + self.look_s
        METRICS.ledger_lag.set(self.lag_events)
        return self.lag_events

    async def _feed(self, room: str) -> OrderFeed:
        feed = self._feeds.get(room)
        if feed is None:
            feed = OrderFeed(self.redis, room, GROUP, self.consumer)
            await feed.ensure_group()
            self._feeds[room] = feed
        return feed

    async def _next_events(self, room: str, count: int) -> list[Event]:
        """This consumer's own pending events first (after a write that failed), then
        events another consumer left pending too long (looked for every half
        `claim_idle_ms`), then new ones: one command a room when all is well."""
        feed = await self._feed(room)
        try:
            events = await feed.pending(count) if self._retrying else []
            self._found_pending |= bool(events)
            if not events and time.monotonic() >= self._next_claim.get(room, 0.0):
                self._next_claim[room] = time.monotonic() + self.claim_idle_ms / 2000
                events = await feed.claim_stale(self.claim_idle_ms, count)
            if not events:
                events = await feed.read(count)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            del self._feeds[room]  # the stream was deleted with its room: made anew next pass
            return []
        return events

    async def _complete(self, picked: dict[str, list[Event]]) -> Batch:
        """The batch's rows: the events, and the orders, payments and shows they touch as
        Redis holds them now."""
        batch = Batch()
        for room, events in picked.items():
            order_ids, payment_ids = rows.touched(events)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.room_meta(room))
                for order_id in sorted(order_ids):
                    pipe.hgetall(keys.order(room, order_id))
                if payment_ids:
                    pipe.hmget(keys.payments(room), sorted(payment_ids))
                replies = await pipe.execute()
            meta = {text(k): text(v) for k, v in replies[0].items()}
            orders = {
                order.id: order
                for order in (
                    Order.from_hash(raw) for raw in replies[1 : 1 + len(order_ids)] if raw
                )
            }
            payments = {}
            if payment_ids:
                found = replies[-1]
                payments = {p: orjson.loads(raw) for p, raw in
                            zip(sorted(payment_ids), found, strict=True) if raw}  # fmt: skip
            self._room_rows(batch, room, meta, events, orders=orders, payments=payments)
        return batch

    @staticmethod
    def _room_rows(batch: Batch, room: str, meta: dict[str, str], events: list[Event], *,
                   orders: dict[str, Order], payments: dict[str, Any]) -> None:  # fmt: skip
        shop = meta.get("host", "")
        show = rows.show_row(room, meta)
        if show is not None:
            batch.shows[room] = show
        newest: dict[str, int] = {}
        users: dict[str, str] = {}
        for event_id, fields in events:
            batch.events.append(rows.event_row(room, event_id, fields))
            at_version = rows.version(event_id)
            for name in ("order", "payment"):
                if fields.get(name):
                    newest[f"{name}:{fields[name]}"] = max(
                        newest.get(f"{name}:{fields[name]}", 0), at_version
                    )
            if fields.get("payment") and fields.get("user"):
                users[fields["payment"]] = fields["user"]
            order = orders.get(fields.get("order", ""))
            for refund in rows.refund_rows(room, fields, order):
                batch.refunds[(room, refund[1])] = refund
        for order in orders.values():
            batch.orders[(room, order.id)] = rows.order_row(
                room, shop, order, newest[f"order:{order.id}"]
            )
            for coupon in rows.coupon_rows(room, order):
                batch.coupons[(room, coupon[1])] = coupon
        for payment_id, record in payments.items():
            order = orders.get(record["o"])
            user = users.get(payment_id) or (order.user if order else "")
            batch.payments[payment_id] = rows.payment_row(
                room, payment_id, record, user, newest[f"payment:{payment_id}"]
            )

    # ---- how far behind ----------------------------------------------------------------

    async def lag(self) -> int:
        """Order events not yet in the ledger, over every room, looked at now."""
        return await self.look()

    async def status(self) -> dict[str, Any]:
        """For /readyz: never failing readiness (the hot path does not need the ledger).
        The lag as last looked at (at most `look_s` ago)."""
        return {
            "lag_events": self.lag_events,
            "written": self.written,
            "last_commit_age_s": round(time.time() - self.last_commit_s, 1)
            if self.last_commit_s
            else None,
            "error": self.error,
        }
