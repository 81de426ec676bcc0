"""Creating the engine's Redis client, and typed views of its raw (bytes) replies.

The engine never sets `decode_responses`: payloads stay bytes end to end and text is
decoded where it is used. redis-py types replies loosely (`bytes | str | None`); the
helpers here pin them down in one place.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

StreamRow = tuple[bytes, dict[bytes, bytes]]


# Concurrent commands beyond this wait (up to POOL_TIMEOUT_S) for a free connection
# instead of failing: a join storm queues rather than erroring.
POOL_SIZE = 128
POOL_TIMEOUT_S = 10.0


def connect(url: str, *, resend: bool = True) -> Redis:
    """A pooled client. After Redis restarts or fails over, every pooled connection is dead
    but does not know it yet: with `resend`, a command that meets one reconnects and is sent
    once more (connection errors only, never timeouts). A command can thus run twice only if
    the connection broke after Redis applied it and before the reply; the stock, coupon,
    order, payment and award scripts are idempotent (request ids, keys, payment ids), so only
    a comment or a bid could then repeat. The pub/sub broker connects without `resend`: it
    must see every connection loss to backfill what was published meanwhile."""
    retry = Retry(NoBackoff(), 1 if resend else 0)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_TIMEOUT_S, health_check_interval=30,
        retry=retry, retry_on_error=[RedisConnectionError],
    )  # fmt: skip
    return Redis.from_pool(pool)


def text(value: Any) -> str:
    """A reply element as text (redis-py types replies loosely)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(values: Any) -> list[str]:
    return sorted(text(v) for v in values)


def stream_rows(raw: Any) -> list[StreamRow]:
    return cast(list[StreamRow], raw or [])
