"""Creating the engine's Redis client, and typed views of its raw (bytes) replies.

The engine never sets `decode_responses`: payloads stay bytes end to end and text is
decoded where it is used. redis-py types replies loosely (`bytes | str | None`); the
helpers here pin them down in one place.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

StreamRow = tuple[bytes, dict[bytes, bytes]]


# Concurrent commands beyond this wait (up to POOL_TIMEOUT_S) for a free connection
# instead of failing: a join storm queues rather than erroring.
POOL_SIZE = 128
POOL_TIMEOUT_S = 10.0


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SCHEMES = ("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)


def check_url(url: str) -> str:
    """The URL, if its scheme is one `connect` understands; else a ValueError that lists
    them all (redis-py's own message leaves out the cluster schemes)."""
    if not url.startswith(SCHEMES):
        raise ValueError(
            f"the Redis URL {redacted(url)!r} must start with {', '.join(SCHEMES[:-1])} or "
            f"{SCHEMES[-1]} (e.g. redis://127.0.0.1:6379/0)"
        )
    return url


def redacted(url: str) -> str:
    """The URL without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{hosts}"


def is_cluster_url(url: str) -> bool:
    """`redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`, TLS) names a
    Redis Cluster by one or more of its nodes; any other URL is one Redis server."""
    return url.startswith(CLUSTER_SCHEMES)


def _connect_cluster(url: str, retry: Retry) -> Redis:
    scheme, _, rest = url.partition("://")
    credentials, _, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    nodes = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host or "127.0.0.1", int(port or 6379)))
    username, _, password = credentials.partition(":")
    cluster = RedisCluster(
        startup_nodes=nodes, ssl=scheme.startswith("rediss"), username=username or None,
        password=password or None, max_connections=POOL_SIZE, retry=retry,
        retry_on_error=[RedisConnectionError], health_check_interval=30,
    )  # fmt: skip
    _tolerate_kwargs(cluster.response_callbacks)
    # The cluster client speaks the same commands, pipelines, scripts and pub/sub as
    # `Redis` (redis-py routes each by its keys' slot); the engine types against `Redis`.
    return cast(Redis, cluster)


def _tolerate_kwargs(callbacks: dict[Any, Callable[..., Any]]) -> None:
    """redis-py 8.1's cluster MULTI/EXEC passes each command's options (`keys=`) to its
    reply callback, and some callbacks (HGETALL, SMEMBERS ...) take none: wrap those."""
    for name, callback in list(callbacks.items()):
        try:
            parameters = inspect.signature(callback).parameters.values()
        except (TypeError, ValueError):
            continue
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            callbacks[name] = functools.partial(_without_options, callback)


def _without_options(callback: Callable[..., Any], response: Any, *args: Any, **_: Any) -> Any:
    return callback(response, *args)


def connect(url: str, *, resend: bool = True) -> Redis:
    """A pooled client. After Redis restarts or fails over, every pooled connection is dead
    but does not know it yet: with `resend`, a command that meets one reconnects and is sent
    once more (connection errors only, never timeouts). A command can thus run twice only if
    the connection broke after Redis applied it and before the reply; the stock, coupon,
    order, payment and award scripts are idempotent (request ids, keys, payment ids), so only
    a comment or a bid could then repeat. The pub/sub broker connects without `resend`: it
    must see every connection loss to backfill what was published meanwhile."""
    retry = Retry(NoBackoff(), 1 if resend else 0)
    check_url(url)
    if is_cluster_url(url):
        return _connect_cluster(url, retry)
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


async def due_by_room(redis: Redis, index: Callable[[str], str], rooms: Sequence[str],
                      now: int) -> list[tuple[str, list[str]]]:  # fmt: skip
    """Each room with the members of its sorted set `index(room)` scored at or before `now`
    (a sweeper pass's due items: deadlines as scores), in one round trip for every room."""
    async with redis.pipeline(transaction=False) as pipe:
        for room in rooms:
            pipe.zrangebyscore(index(room), "-inf", now)
        replies = await pipe.execute()
    return [(room, texts(due)) for room, due in zip(rooms, replies, strict=True)]


def stream_rows(raw: Any) -> list[StreamRow]:
    return cast(list[StreamRow], raw or [])


def is_cluster(redis: Redis) -> bool:
    # `connect` types a cluster client as `Redis`: look at what it really is.
    return isinstance(cast(object, redis), RedisCluster)


async def refresh_topology(redis: Redis) -> None:
    """A cluster client re-reads which node serves which slots (after a failover); a
    client of one server has nothing to refresh."""
    if is_cluster(redis):
        await cast(RedisCluster, redis).nodes_manager.initialize()
