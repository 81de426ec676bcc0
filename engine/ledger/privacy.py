"""A customer's data: everything held about them (`export`), erased (`forget`), and old
shipping addresses and contacts emptied (`retention`), in the ledger and in Redis
(docs/ledger.md § Retention and erasure; `livecart customers ...`).

Erasure keeps the books whole: the user id becomes a stable pseudonym (`erased:` and an
HMAC of the id under a key derived from the engine's secret), the same in every row and
key, so amounts, counts per buyer, per-user limits and the audit still add up; names
become the pseudonym; addresses and contacts are emptied; the room-log entries, order
events and stock events that name the user are deleted once every consumer group has them
(the ledger's group is drained first). One record stays on purpose: a closed giveaway the
user won keeps their id in its draw and in its prize (the draw is verified from the
entrants' ids, docs/giveaways.md); their name goes.

Redis: engine/ledger/privacy_redis.py (with the privacy_*_keys.py modules it names). The
ledger: every table with a `user_id` column, found by the schema's own catalogue, so a table
a later migration adds is covered too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.commerce.orders import Order, OrderState
from engine.core.errors import UnavailableError
from engine.ledger import rows
from engine.ledger.database import Connection
from engine.ledger.key_edits import rewrite_hash, swap_member
from engine.ledger.privacy_redis import audiences, leftovers, scan_rooms, shop_rooms
from engine.ledger.privacy_scan import PSEUDONYM, Subject, pseudonym
from engine.ledger.writer import GROUP, LedgerWriter, rooms_lag
from engine.store import keys
from engine.store.redis_client import text, texts

CLOSED_STATES = (OrderState.FULFILLED, OrderState.REFUNDED, OrderState.CANCELLED,
                 OrderState.EXPIRED)  # fmt: skip
DAY_MS = 86_400_000
# PostgreSQL columns that hold personal data, emptied wherever a row is the user's (the
# ledger's orders, and any table a later migration adds with such columns).
_PERSONAL_JSON = ("shipping_address", "contact")
_PERSONAL_TEXT = ("name", "display_name", "email", "phone")
_SKIP_TABLES = ("erasures", "alembic_version")  # the request's own record; the schema's
_CHUNK = 500
# An order event's fields with the user's id replaced wherever it is a value.
_EVENT_DATA = (
    "data = (SELECT jsonb_object_agg(k, CASE WHEN v = to_jsonb($1::text)"
    " THEN to_jsonb($2::text) ELSE v END) FROM jsonb_each(data) e(k, v))"
)
RETENTION_LOCK = 7_262_028  # one retention pass at a time over the engines of one ledger


# ---- the ledger ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    nullable: bool
    type: str


Tables = dict[str, dict[str, Column]]


async def _tables(connection: Connection) -> Tables:
    """Every table of the ledger's schema, its columns in order (a later migration's too)."""
    found: Tables = {}
    for row in await connection.fetch(
        "SELECT table_name, column_name, is_nullable, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ):
        found.setdefault(row["table_name"], {})[row["column_name"]] = Column(
            row["is_nullable"] == "YES", row["data_type"]
        )
    return found


class Binds(list[Any]):
    """Query arguments, numbered as they are added."""

    def __call__(self, value: Any) -> str:
        self.append(value)
        return f"${len(self)}"


def _scope(columns: dict[str, Column], shop: str | None, bind: Binds) -> str | None:
    """What keeps a table's rows to one shop, or None when it cannot be told by shop
    (then the table is left alone, and said so)."""
    if shop is None:
        return ""
    if "shop" in columns:
        return f" AND shop = {bind(shop)}"
    if "room" in columns:
        at = bind(shop)
        return (
            f" AND room IN (SELECT room FROM shows WHERE shop = {at}"
            f" UNION SELECT room FROM orders WHERE shop = {at})"
        )
    return None


def _row(record: asyncpg.Record, columns: dict[str, Column]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, datetime | date):
            out[name] = value.isoformat()
        elif isinstance(value, str) and columns[name].type == "jsonb":
            out[name] = orjson.loads(value)
        else:
            out[name] = value
    return out


async def ledger_rows(connection: Connection, user: str,
                      shop: str | None) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Every row of the user's in the ledger, table by table (refunds through their orders)."""
    found: dict[str, list[dict[str, Any]]] = {}
    tables = await _tables(connection)
    for table, columns in tables.items():
        if table == "alembic_version" or "user_id" not in columns:
            continue
        bind = Binds([user])
        scope = "" if table == "erasures" else _scope(columns, shop, bind)
        if scope is None:
            continue
        records = await connection.fetch(f"SELECT * FROM {table} WHERE user_id = $1{scope}",
                                         *bind)  # fmt: skip
        found[table] = [_row(r, columns) for r in records]
    bind = Binds([user])
    refunds = await connection.fetch(
        "SELECT r.* FROM refunds r JOIN orders o USING (room, order_id) WHERE o.user_id = $1"
        + (f" AND o.shop = {bind(shop)}" if shop else "") + " ORDER BY r.at_ms", *bind,
    )  # fmt: skip
    found["refunds"] = [_row(r, tables["refunds"]) for r in refunds]
    return found


async def ledger_devices(connection: Connection, who: Subject, shop: str | None) -> None:
    """The devices of the user's orders in the ledger (Redis may no longer have them)."""
    bind = Binds([who.user])
    found = await connection.fetch(
        "SELECT DISTINCT device FROM orders WHERE user_id = $1 AND device IS NOT NULL"
        + (f" AND shop = {bind(shop)}" if shop else ""), *bind,
    )  # fmt: skip
    for row in found:
        who.device(row["device"])


async def forget_rows(connection: Connection, who: Subject, shop: str | None,
                      by: str) -> tuple[dict[str, int], list[dict[str, str]]]:  # fmt: skip
    """One transaction: every table with a `user_id` gives the user's rows the pseudonym
    and empties their personal columns; the erasure is recorded. (Rows changed per table,
    tables left.)"""
    changed: dict[str, int] = {}
    left: list[dict[str, str]] = []
    async with connection.transaction():
        for table, columns in sorted((await _tables(connection)).items()):
            if table in _SKIP_TABLES or "user_id" not in columns:
                continue
            bind = Binds([who.user])
            sets = [f"user_id = {bind(who.alias)}"]
            scope = _scope(columns, shop, bind)
            if scope is None:
                left.append({"table": table, "why": "no shop or room column to scope it by"})
                continue
            sets += [f"{c} = '{{}}'::jsonb" for c in _PERSONAL_JSON if c in columns]
            sets += [f"{c} = {'NULL' if columns[c].nullable else repr('')}"
                     for c in _PERSONAL_TEXT if c in columns]  # fmt: skip
            if "device" in columns and who.devices:
                devices = bind(orjson.dumps(who.devices).decode())
                sets.append(f"device = coalesce(({devices}::jsonb) ->> device, device)")
            if table == "order_events":
                # The event's fields as the stream had them: `user`, and `by` for their own
                # cancellation.
                sets.append(_EVENT_DATA)
            status = await connection.execute(
                f"UPDATE {table} SET {', '.join(sets)} WHERE user_id = $1{scope}", *bind
            )
            changed[table] = int(status.rsplit(" ", 1)[-1])
        await connection.execute(
            "INSERT INTO erasures (shop, user_id, who) VALUES ($1, $2, $3) ON CONFLICT"
            " (shop, user_id) DO UPDATE SET who = EXCLUDED.who, at = now()",
            shop or "*", who.user, by,
        )  # fmt: skip
    return changed, left


async def drain_ledger(redis: Redis, pool: asyncpg.Pool, rooms: Iterable[str], *,
                       wait_s: float) -> None:  # fmt: skip
    """Until the ledger holds every order event of these rooms: write what is waiting (as
    one more consumer of the `ledger` group) and wait for what other writers hold."""
    rooms = sorted(rooms)
    streams = [keys.order_events(room) for room in rooms]
    writer = LedgerWriter(redis, pool, f"privacy-{time.time_ns()}", batch_size=500)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            # The writer's own count: a lag Redis cannot give after an erasure is counted.
            behind = sum((await rooms_lag(redis, rooms)).values())
            if behind == 0:
                return
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"the ledger is still {behind} order events behind in these rooms: "
                    "nothing was erased from PostgreSQL; run forget again",
                    details={"lag_events": behind},
                )
            if not await writer.drain_once():
                await asyncio.sleep(0.2)
    finally:
        for stream in streams:
            consumers = await _consumers(redis, stream)
            if consumers.get(writer.consumer) == 0:
                await redis.xgroup_delconsumer(stream, GROUP, writer.consumer)


async def _consumers(redis: Redis, stream: str) -> dict[str, int]:
    try:
        found = await redis.xinfo_consumers(stream, GROUP)
    except ResponseError:
        return {}
    return {text(c["name"]): int(c["pending"]) for c in found}


async def delete_entries(redis: Redis, stream: str, ids: list[str]) -> tuple[int, int]:
    """Delete stream entries that no consumer group still needs: delivered to every group
    (at or before its last delivered id) and pending in none. (deleted, kept)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        groups = []
    busy: set[str] = set()
    floor = None
    for group in groups:
        last = rows.version(text(group["last-delivered-id"]))
        floor = last if floor is None else min(floor, last)
        if int(group.get("pending") or 0):
            pending = await redis.xpending_range(stream, text(group["name"]), min=ids[0],
                                                 max=ids[-1], count=len(ids) * 4 + 100)  # fmt: skip
            busy.update(text(p["message_id"]) for p in pending)
    free = [i for i in ids if i not in busy and (floor is None or rows.version(i) <= floor)]
    deleted = int(await redis.xdel(stream, *free)) if free else 0
    return deleted, len(ids) - len(free)


# ---- export, forget, retention --------------------------------------------------------------


def _check(user: str) -> str:
    keys.check_user_id(user)
    if user.startswith(PSEUDONYM):
        raise ValueError(f"{user} is already a pseudonym: there is no one left to find")
    return user


async def export(redis: Redis, pool: asyncpg.Pool | None, user: str,
                 shop: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything held about `user` (in one shop's rooms, or all), as one JSON-ready object."""
    who = Subject(_check(user), "")
    rooms = await shop_rooms(redis, shop)
    scans = await scan_rooms(redis, rooms, who)
    document: dict[str, Any] = {
        "user": user, "shop": shop, "exported_at_ms": int(time.time() * 1000),
        "redis": {
            "rooms": {s.room: {"shop": rooms[s.room], **s.found} for s in scans if s.found},
            "audience_of_shops": await audiences(redis, set(rooms.values()) - {""}, user),
        },
        "ledger": None,
    }  # fmt: skip
    if pool is not None:
        async with pool.acquire() as connection:
            document["ledger"] = await ledger_rows(connection, user, shop)
    return document


async def forget(
    redis: Redis,
    pool: asyncpg.Pool | None,
    user: str,
    *,
    secret: str,
    who: str,
    shop: str | None = None,
    wait_s: float = 60.0,
) -> dict[str, Any]:
    """Erase `user` (in one shop, or everywhere): Redis first, then the ledger once it has
    every event, then the stream entries naming them; then look for anything left."""
    subject = Subject(_check(user), pseudonym(secret, user), secret=secret)
    if not who.strip():
        raise ValueError("--who must name who asked for or ran the erasure")
    rooms = await shop_rooms(redis, shop)
    if pool is not None:
        async with pool.acquire() as connection:
            await ledger_devices(connection, subject, shop)
    scans = await scan_rooms(redis, rooms, subject)
    changed = 0
    for scan in scans:
        for edit in scan.edits:
            changed += int(await edit(redis))
    for shop_id in await audiences(redis, set(rooms.values()) - {""}, user):
        audience = swap_member(keys.audience(shop_id), "set", user, subject.alias)
        changed += int(await audience(redis))
    result: dict[str, Any] = {
        "user": user, "pseudonym": subject.alias, "shop": shop, "who": who,
        "redis": {"rooms": sorted(s.room for s in scans if s.found), "changes": changed},
        "ledger": None, "erasure_recorded": False,
    }  # fmt: skip
    touched = [s.room for s in scans if s.found]
    if pool is not None:
        await drain_ledger(redis, pool, touched, wait_s=wait_s)
        async with pool.acquire() as connection:
            rows_changed, left = await forget_rows(connection, subject, shop, who)
        result["ledger"] = {"rows": rows_changed, "left": left}
        result["erasure_recorded"] = True
    deleted = kept = 0
    for scan in scans:
        for stream, ids in scan.doomed.items():
            gone, stay = await delete_entries(redis, stream, ids)
            deleted, kept = deleted + gone, kept + stay
    result["redis"]["stream_entries_deleted"] = deleted
    result["redis"]["stream_entries_kept"] = kept  # a consumer group still needs them
    result["kept"] = [k for s in scans for k in s.kept]
    result["left"] = await leftovers(redis, touched, subject, kept=result["kept"])
    return result


def _closed_at(order: Order) -> int | None:
    """When an order reached a state it does not leave (a refunded one: its last refund)."""
    if order.state not in CLOSED_STATES:
        return None
    if order.state is OrderState.FULFILLED:
        return int(order.fields.get("fulfilled_at") or 0) or None
    if order.state is OrderState.REFUNDED:
        return max((int(r.get("at") or 0) for r in order.refunds()), default=0) or None
    return int(order.fields.get("closed_at") or 0) or None


_CLOSED_SQL = """
SELECT room, order_id FROM orders o
WHERE state = ANY($1::text[])
  AND (shipping_address <> '{}'::jsonb OR contact <> '{}'::jsonb)
  AND CASE state
        WHEN 'fulfilled' THEN fulfilled_at_ms
        WHEN 'refunded' THEN coalesce((SELECT max(at_ms) FROM refunds r
                                       WHERE r.room = o.room AND r.order_id = o.order_id),
                                      fulfilled_at_ms, paid_at_ms)
        ELSE closed_at_ms
      END < $2
"""


async def retention(
    redis: Redis,
    pool: asyncpg.Pool | None,
    *,
    days: int,
    now_ms: int | None = None,
    scan_redis: bool = True,
) -> dict[str, Any]:
    """Empty the shipping address and contact of every order closed more than `days` ago,
    in Redis (the truth: its order hashes say when each order closed) and in the ledger.
    The ledger names the candidates; with `scan_redis` every room's orders are read too
    (what the ledger does not have yet, or an engine without a ledger)."""
    cutoff = (int(time.time() * 1000) if now_ms is None else now_ms) - days * DAY_MS
    candidates: set[tuple[str, str]] = set()
    if pool is not None:
        async with pool.acquire() as connection:
            found = await connection.fetch(_CLOSED_SQL, [s.value for s in CLOSED_STATES], cutoff)
        candidates.update((r["room"], r["order_id"]) for r in found)
    if scan_redis:
        for room in texts(await redis.smembers(keys.rooms_index())):
            for raw in await _order_hashes(redis, room):
                order = Order.from_hash(raw)
                if (order.detail.get("shipping_address") or order.detail.get("contact")) and (
                    (_closed_at(order) or cutoff) < cutoff
                ):
                    candidates.add((room, order.id))
    emptied: list[tuple[str, str]] = []
    for room, order_id in sorted(candidates):
        if await _empty_order(redis, room, order_id, cutoff):
            emptied.append((room, order_id))
    rows_emptied = 0
    if pool is not None and emptied:
        async with pool.acquire() as connection:
            status = await connection.execute(
                "UPDATE orders o SET shipping_address = '{}'::jsonb, contact = '{}'::jsonb"
                " FROM unnest($1::text[], $2::text[]) AS e(room, order_id)"
                " WHERE o.room = e.room AND o.order_id = e.order_id"
                " AND (o.shipping_address <> '{}'::jsonb OR o.contact <> '{}'::jsonb)",
                [r for r, _ in emptied], [o for _, o in emptied],
            )  # fmt: skip
        rows_emptied = int(status.rsplit(" ", 1)[-1])
    return {"days": days, "cutoff_ms": cutoff, "orders_emptied": len(emptied),
            "ledger_rows_emptied": rows_emptied}  # fmt: skip


async def _order_hashes(redis: Redis, room: str) -> list[dict[Any, Any]]:
    ids = [text(i) for i in await redis.zrange(keys.orders(room), 0, -1)]
    found = []
    for start in range(0, len(ids), _CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for order_id in ids[start : start + _CHUNK]:
                pipe.hgetall(keys.order(room, order_id))
            found += [raw for raw in await pipe.execute() if raw]
    return found


async def _empty_order(redis: Redis, room: str, order_id: str, cutoff: int) -> bool:
    """Empty one order's address and contact in Redis if Redis agrees it closed before
    `cutoff`; whether the ledger's row is due too (also when Redis no longer has it)."""
    due = True

    def edit(now: dict[str, str]) -> dict[str, str] | None:
        nonlocal due
        if not now:
            return None
        order = Order.from_hash(now)
        due = (_closed_at(order) or cutoff) < cutoff
        if not due or not (order.detail["shipping_address"] or order.detail["contact"]):
            return None
        detail = {**order.detail, "shipping_address": {}, "contact": {}}
        return {"detail": orjson.dumps(detail).decode()}

    await rewrite_hash(keys.order(room, order_id), edit)(redis)
    return due


async def retention_pass(redis: Redis, pool: asyncpg.Pool, days: int) -> dict[str, Any] | None:
    """The ledger service's periodic pass: one engine at a time (an advisory lock), from
    the ledger's candidates. None when another engine holds the lock."""
    async with pool.acquire() as connection:
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK):
            return None
        try:
            return await retention(redis, pool, days=days, scan_redis=False)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)
