"""What the engine needs of its Redis, read at start (CONFIG GET on every master).

Stock, reservations, orders and payments live only in Redis. A Redis that evicts keys
under memory pressure (any `maxmemory-policy` but `noeviction`) can drop a reservation or
an order, and one that persists nothing (`appendonly no` and `save ""`) loses every room
when it restarts. The engine refuses to start on either, naming the setting and the fix,
unless `LIVECART_REDIS_UNSAFE_OK` is set: then it logs the problems loudly and `/readyz`
reports them. A managed Redis may disable CONFIG; then nothing can be checked, the engine
says so and starts (docs/deploy.md § Redis).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from engine.store import redis_client

log = logging.getLogger("livecart.redis_config")

OVERRIDE_ENV = "LIVECART_REDIS_UNSAFE_OK"
SETTINGS = ("maxmemory-policy", "appendonly", "save")


class RedisConfigError(RuntimeError):
    """The Redis is configured so that it can lose the engine's data (refused at start)."""


@dataclass(frozen=True, slots=True)
class RedisConfigCheck:
    """The outcome of the check; kept on the node and shown on /readyz."""

    checked: bool  # False: CONFIG could not be read (a managed Redis may disable it)
    problems: tuple[str, ...] = ()  # one sentence each, naming the node, setting and fix
    override: bool = False  # started anyway with LIVECART_REDIS_UNSAFE_OK

    @property
    def ok(self) -> bool:
        return self.checked and not self.problems

    def to_wire(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": list(self.problems)}


def problems_of(config: Mapping[str, str]) -> list[str]:
    """What is unsafe in one server's settings (`SETTINGS` read with CONFIG GET); a setting
    the server did not report is not judged."""
    problems = []
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy}, so it may evict stock, reservation and order "
            "keys under memory pressure: set maxmemory-policy noeviction"
        )
    if config.get("appendonly") == "no" and config.get("save", "?").strip() == "":
        problems.append(
            "it persists nothing (appendonly no and save ''), so a restart loses every "
            "room: set appendonly yes (or save rules)"
        )
    return problems


async def _read_one(redis: Redis, **target: Any) -> dict[str, str]:
    config: dict[str, str] = {}
    for name in SETTINGS:  # one name per call: Redis 6 takes a single pattern
        reply = await redis.config_get(name, **target)
        for key, value in (reply or {}).items():
            config[redis_client.text(key)] = redis_client.text(value)
    return config


async def read(redis: Redis) -> dict[str, dict[str, str]]:
    """`SETTINGS` of every server that holds data: node address -> {setting: value}."""
    if not redis_client.is_cluster(redis):
        kwargs = redis.connection_pool.connection_kwargs
        address = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return {str(address): await _read_one(redis)}
    cluster = cast(RedisCluster, cast(object, redis))
    await cluster.initialize()  # a fresh client knows no nodes until it has asked
    return {
        node.name: await _read_one(redis, target_nodes=node) for node in cluster.get_primaries()
    }


def _grouped(found: dict[str, list[str]]) -> list[str]:
    """One sentence per problem, naming every node that has it."""
    nodes_by_problem: dict[str, list[str]] = {}
    for node, problems in found.items():
        for problem in problems:
            nodes_by_problem.setdefault(problem, []).append(node)
    return [f"Redis {', '.join(nodes)}: {problem}" for problem, nodes in nodes_by_problem.items()]


async def check(redis: Redis, *, unsafe_ok: bool = False) -> RedisConfigCheck:
    """Read the configuration and judge it; raises RedisConfigError on an unsafe Redis
    unless `unsafe_ok`, in which case the problems are logged as errors at every start."""
    try:
        configs = await read(redis)
    except ResponseError as exc:  # CONFIG renamed away, or not allowed to this user
        note = (
            f"cannot read the Redis configuration ({exc}); make sure it has "
            "maxmemory-policy noeviction and persistence (appendonly yes or save rules)"
        )
        log.warning(note)
        return RedisConfigCheck(checked=False, problems=(note,), override=unsafe_ok)
    problems = tuple(_grouped({node: problems_of(c) for node, c in configs.items()}))
    if problems and not unsafe_ok:
        raise RedisConfigError(
            f"refusing to start: {'; '.join(problems)} (or set {OVERRIDE_ENV}=1 to start "
            "anyway and risk losing orders)"
        )
    for problem in problems:
        log.error("UNSAFE REDIS, started anyway because %s is set: %s", OVERRIDE_ENV, problem)
    return RedisConfigCheck(checked=True, problems=problems, override=unsafe_ok)


async def check_url(url: str, *, unsafe_ok: bool = False) -> RedisConfigCheck:
    """`check` with a client of its own (the supervisor of `serve --workers`, before any
    worker starts)."""
    redis = redis_client.connect(url)
    try:
        return await check(redis, unsafe_ok=unsafe_ok)
    finally:
        await redis.aclose()
