"""The first baseline of `livecart bench grab`: the grab script called directly, one grab
per EVALSHA, by `redis-benchmark` with 50 clients and no pipelining, against a fresh sale
of the same size in the same Redis (so the mix of reserved and sold-out answers matches).
Without `redis-benchmark` on PATH (Debian: redis-tools) a redis-py client does it, and
says so; that baseline is lower, a Python client being the bottleneck.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from engine.commerce.catalog import Catalog
from engine.commerce.sales import SaleStore, SaleTerms
from engine.store import keys, redis_client
from engine.store.scripts import Scripts

RAW_CLIENTS = 50
RAW_REQUESTS = 100_000


def grab_keys(room: str, sale_id: str) -> list[str]:
    return [
        keys.sale(room, sale_id), keys.sale_reservations(room, sale_id),
        keys.sale_users(room, sale_id), keys.sale_answers(room, sale_id),
        keys.expiry(room), keys.outbox(room), keys.show_metrics(room),
    ]  # fmt: skip


def raw_with_redis_benchmark(url: str, sha: str, room: str, sale_id: str) -> float:
    """EVALSHA of the grab script, one grab per call, by redis-benchmark."""
    parsed = urlsplit(url)
    server = ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
    if parsed.password:
        server += ["-a", parsed.password]
    argv = ["redis-benchmark", *server, "-c", str(RAW_CLIENTS), "-n", str(RAW_REQUESTS),
            "-r", "100000000", "-q", "EVALSHA", sha, "7", *grab_keys(room, sale_id), "", "200000",
            "1", "user:__rand_int__", "req:__rand_int__", "1"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout
    match = re.search(r"([0-9.]+) requests per second", out.replace("\r", "\n"))
    if match is None:
        raise RuntimeError(f"unexpected redis-benchmark output: {out[-300:]!r}")
    return float(match.group(1))


async def raw_with_redis_py(url: str, sha: str, room: str, sale_id: str) -> float:
    redis = redis_client.connect(url)
    keys_ = grab_keys(room, sale_id)
    count = 0
    stop_at = time.perf_counter() + 5.0

    async def client(n: int) -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            count += 1
            await redis.evalsha(sha, 7, *keys_, "", 200_000, "1", f"u{n}.{count}", f"r{count}", 1)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(RAW_CLIENTS)))
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return count / elapsed


async def _raw_sale(url: str, room: str, stock: int, limit: int) -> str:
    """A second sale of the same size for the baseline, started at once."""
    redis = redis_client.connect(url)
    try:
        scripts = Scripts()
        await scripts.load(redis)  # the baseline calls grab.lua (this flavour of it) by SHA
        catalog = Catalog(redis, scripts, 1000)
        sales = SaleStore(redis, scripts, catalog, 1000, 200_000)
        terms = SaleTerms(sku="BENCH-1", allotment=stock, per_user_limit=limit, duration_s=3600)
        return (await sales.create(room, terms)).id
    finally:
        await redis.aclose()


def raw_baseline(
    redis_url: str, room: str, stock: int, limit: int, report: Callable[[str], None]
) -> tuple[float, str]:
    """EVALSHA of the grab script on a fresh sale of the same size; (calls/s, client)."""
    report("raw baseline: the grab script by EVALSHA, one grab per call")
    raw_sale = asyncio.run(_raw_sale(redis_url, room, stock, limit))
    sha = Scripts().grab.sha
    if shutil.which("redis-benchmark"):
        return raw_with_redis_benchmark(redis_url, sha, room, raw_sale), "redis-benchmark"
    return asyncio.run(raw_with_redis_py(redis_url, sha, room, raw_sale)), "redis-py"
