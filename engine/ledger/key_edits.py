"""Changes to one Redis key at a time, each a WATCH / MULTI transaction: a grab or a
payment landing on the same key meanwhile makes it read again, never loses a write
(engine/ledger/privacy_redis.py rewrites a customer's data with them). And reading a key
whole, by cursor, whatever it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from engine.core.errors import UnavailableError
from engine.store.redis_client import stream_rows, text

_RETRIES = 200  # a key rewritten while grabs or payments keep changing it
CHUNK = 500


def loads_or_none(raw: str) -> Any:
    """JSON decoded, or None where it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


Change = Callable[[Pipeline], Awaitable[bool]]


async def atomically(redis: Redis, key: str, change: Change) -> bool:
    """Run `change` on `key` under WATCH: it reads (immediately), then queues its writes
    after `pipe.multi()`, or returns False for nothing to do. Read again if the key changed."""
    for _ in range(_RETRIES):
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if not await change(pipe):
                    return False
                await pipe.execute()
                return True
            except WatchError:
                await asyncio.sleep(0.002)
    raise UnavailableError(f"{key} kept changing while it was being erased: run forget again")


Edit = Callable[[Redis], Awaitable[bool]]
Combine = Callable[[str, str | None], str]


def _multi(pipe: Pipeline) -> None:
    pipe.multi()  # type: ignore[no-untyped-call]


def swap_field(key: str, old: str, new: str, value: Combine) -> Edit:
    """Move hash field `old` to `new`, its value made by `value(old value, value at new)`."""

    async def change(pipe: Pipeline) -> bool:
        found = await pipe.hget(key, old)
        if found is None:
            return False
        there = await pipe.hget(key, new) if new != old else None
        written = value(text(found), None if there is None else text(there))
        _multi(pipe)
        if new != old:
            pipe.hdel(key, old)
        pipe.hset(key, new, written)
        return True

    return lambda redis: atomically(redis, key, change)


def keep(value: str, _there: str | None) -> str:
    return value


def added(value: str, there: str | None) -> str:
    """Counters (units, watch time, holdings) of one person, if the pseudonym had some."""
    try:
        return str(int(value) + int(there or 0))
    except ValueError:
        return value


def to(fixed: str) -> Callable[[str, str | None], str]:
    return lambda _value, _there: fixed


def swap_member(key: str, kind: str, old: str, new: str) -> Edit:
    """A set's, sorted set's (score kept, added) or list's (every place) member `old` -> `new`."""

    async def change(pipe: Pipeline) -> bool:
        if kind == "set":
            if not await pipe.sismember(key, old):
                return False
            _multi(pipe)
            pipe.srem(key, old)
            pipe.sadd(key, new)
        elif kind == "zset":
            score = await pipe.zscore(key, old)
            if score is None:
                return False
            _multi(pipe)
            pipe.zrem(key, old)
            pipe.zincrby(key, score, new)
        else:
            places = cast(list[int], await pipe.lpos(key, old, count=0))
            if not places:
                return False
            _multi(pipe)
            for place in places:
                pipe.lset(key, place, new)
        return True

    return lambda redis: atomically(redis, key, change)


def rewrite_hash(key: str, edit: Callable[[dict[str, str]], dict[str, str] | None]) -> Edit:
    """A small hash (an order, an auction, a team, a giveaway) read whole and given the
    fields `edit` returns (None: nothing to change; "" values are deleted)."""

    async def change(pipe: Pipeline) -> bool:
        raw = await pipe.hgetall(key)
        changed = edit({text(k): text(v) for k, v in raw.items()})
        if not changed:
            return False
        _multi(pipe)
        gone = [name for name, value in changed.items() if value == ""]
        kept = {name: value for name, value in changed.items() if value != ""}
        if gone:
            pipe.hdel(key, *gone)
        if kept:
            pipe.hset(key, items=[item for pair in kept.items() for item in pair])
        return True

    return lambda redis: atomically(redis, key, change)


async def hash_items(redis: Redis, key: str) -> list[tuple[str, str]]:
    return [(text(k), text(v)) async for k, v in redis.hscan_iter(key, count=CHUNK)]


async def stream_items(redis: Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    after = "-"
    while True:
        chunk = stream_rows(await redis.xrange(key, min=after, count=CHUNK))
        for entry_id, fields in chunk:
            found.append((text(entry_id), {text(k): text(v) for k, v in fields.items()}))
        if len(chunk) < CHUNK:
            return found
        after = "(" + found[-1][0]


async def hdel(redis: Redis, key: str, name: str) -> bool:
    return bool(await redis.hdel(key, name))


async def deleted(redis: Redis, key: str) -> bool:
    return bool(await redis.delete(key))


async def split_wallet(redis: Redis, key: str, user: str, alias: str, moved: list[str]) -> bool:
    """Coupons in the wallet move to the pseudonym's, a won prize's coupon stays."""

    async def change(pipe: Pipeline) -> bool:
        mine = text(await pipe.hget(key, user)).split()
        theirs = text(await pipe.hget(key, alias)).split()
        going = [c for c in mine if c in moved]
        if not going:
            return False
        staying = [c for c in mine if c not in going]
        _multi(pipe)
        pipe.hset(key, alias, " ".join(theirs + going))
        if staying:
            pipe.hset(key, user, " ".join(staying))
        else:
            pipe.hdel(key, user)
        return True

    return await atomically(redis, key, change)


async def rename_bids(redis: Redis, key: str, user: str, alias: str) -> bool:
    async def change(pipe: Pipeline) -> bool:
        bids = [text(raw) for raw in await pipe.lrange(key, 0, -1)]
        writes = []
        for n, raw in enumerate(bids):
            bid = loads_or_none(raw)
            if isinstance(bid, dict) and bid.get("u") == user:
                bid["u"] = alias
                writes.append((n, orjson.dumps(bid).decode()))
        if not writes:
            return False
        _multi(pipe)
        for n, raw in writes:
            pipe.lset(key, n, raw)
        return True

    return await atomically(redis, key, change)


async def dump(redis: Redis, key: str) -> str:
    """A key's whole content as text, for looking through."""
    kind = text(await redis.type(key))
    if kind == "hash":
        return "\n".join(f"{k}\n{v}" for k, v in await hash_items(redis, key))
    if kind == "set":
        return "\n".join([text(m) async for m in redis.sscan_iter(key, count=CHUNK)])
    if kind == "zset":
        return "\n".join([text(m) async for m, _ in redis.zscan_iter(key, count=CHUNK)])
    if kind == "list":
        return "\n".join(text(v) for v in await redis.lrange(key, 0, -1))
    if kind == "stream":
        return "\n".join(orjson.dumps(f).decode() for _, f in await stream_items(redis, key))
    return text(await redis.get(key)) if kind == "string" else ""
