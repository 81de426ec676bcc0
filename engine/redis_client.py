"""Creating the engine's Redis client, and typed views of its raw (bytes) replies.

The engine never sets `decode_responses`: payloads stay bytes end to end and text is
decoded where it is used. redis-py types replies loosely (`bytes | str | None`); the
helpers here pin them down in one place.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis

StreamRow = tuple[bytes, dict[bytes, bytes]]


# Concurrent commands beyond this wait (up to POOL_TIMEOUT_S) for a free connection
# instead of failing: a join storm queues rather than erroring.
POOL_SIZE = 128
POOL_TIMEOUT_S = 10.0


def connect(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_TIMEOUT_S, health_check_interval=30
    )
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
