"""`livecart bench grab`: the flash-sale second. N signed-in viewers in one load process
are in the room when a sale of S units starts; at the start they tap "grab" A times in
all (each tap after the previous answer, a fresh request id each time), through one
engine process, with Redis in a third.

Figures: answers by status, `grabs_per_second` (answered grabs over the time from the
first tap to the last answer), client-side round-trip latency, `oversell` (units
reserved or sold beyond the sale's units, by the acknowledgements and by Redis), and
`audit_ok` (`livecart audit` on the room afterwards).

Baseline: `raw_evalsha_per_second` is the same grab script called directly, one grab per
EVALSHA, by `redis-benchmark` with 50 clients and no pipelining, against a fresh sale of
the same size in the same Redis (so the mix of reserved and sold-out answers matches);
measured just before and just after the rush, and averaged (the machine is shared).
Without `redis-benchmark` on PATH (Debian: redis-tools) a redis-py client does it, and
`raw_client` says so; that baseline is lower, a Python client being the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from engine.bench.harness import (
    Child,
    bench_env,
    connect,
    create_room,
    engine_process,
    host_http,
    metric_values,
    print_result,
    redis_for,
)
from engine.commerce.catalog import Catalog
from engine.commerce.sales import Sale, SaleStore, SaleTerms
from engine.core.loop import loop_name
from engine.insights.audit import audit_room
from engine.store import keys, redis_client
from engine.store.scripts import Scripts

COUNTDOWN_S = 3
RAW_CLIENTS = 50
RAW_REQUESTS = 100_000


def progress(message: str) -> None:
    print(f"[bench grab] {message}", file=sys.stderr, flush=True)


def add_product(port: int, secret: str, room: str) -> None:
    with host_http(port, secret, room) as http:
        product = {"title": "Bench sneaker", "currency": "USD",
                   "skus": [{"sku": "BENCH-1", "list_price": 9900}]}  # fmt: skip
        http.post(f"/api/rooms/{room}/products", json=product).raise_for_status()


def launch_sale(port: int, secret: str, room: str, stock: int, limit: int) -> dict[str, Any]:
    with host_http(port, secret, room) as http:
        terms = {"sku": "BENCH-1", "allotment": stock, "per_user_limit": limit,
                 "countdown_s": COUNTDOWN_S, "duration_s": 600}  # fmt: skip
        response = http.post(f"/api/rooms/{room}/sales", json=terms)
        response.raise_for_status()
        sale: dict[str, Any] = response.json()
        return sale


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


async def inspect(url: str, room: str, sale_id: str) -> tuple[Sale, dict[str, Any]]:
    redis: Redis = redis_client.connect(url)
    try:
        scripts = Scripts()
        await scripts.load(redis)
        raw = await redis.hgetall(keys.sale(room, sale_id))
        report = await audit_room(redis, room)
        return Sale.from_hash(raw), report.to_wire()
    finally:
        await redis.aclose()


def batch_stats(port: int) -> dict[str, float]:
    """Mean grabs per script call, from the engine's /metrics."""
    found = metric_values(port, r"livecart_grab_batch_size_(sum|count)")
    calls = found.get("count", 0.0)
    mean = round(found.get("sum", 0.0) / calls, 1) if calls else 0.0
    return {"script_calls": calls, "mean_batch": mean}


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


def raw_baseline(redis_url: str, room: str, args: argparse.Namespace) -> tuple[float, str]:
    """EVALSHA of the grab script on a fresh sale of the same size; (calls/s, client)."""
    progress("raw baseline: the grab script by EVALSHA, one grab per call")
    raw_sale = asyncio.run(_raw_sale(redis_url, room, args.stock, args.limit))
    sha = Scripts().grab.sha
    if shutil.which("redis-benchmark"):
        return raw_with_redis_benchmark(redis_url, sha, room, raw_sale), "redis-benchmark"
    return asyncio.run(raw_with_redis_py(redis_url, sha, room, raw_sale)), "redis-py"


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env(
        LIVECART_GRAB_WINDOW_MS=str(args.window_ms),
        LIVECART_METRICS=args.metrics,
    )
    secret = env["LIVECART_SECRET"]
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        loader = Child([sys.executable, "-m", "engine.bench.loader"], env)
        stack.callback(loader.stop)
        with engine_process(redis_url, 100, env) as (_, port):
            room = create_room(port, secret, {})
            add_product(port, secret, room)
            # The machine is shared: measure the baseline before and after the rush.
            raw_before, _ = raw_baseline(redis_url, room, args)
            connect(loader, port, room, args.viewers, posters=args.viewers, mode="engine",
                    report=progress)  # fmt: skip
            # Everyone is in the room: the host starts a countdown; viewers tap at zero.
            sale = launch_sale(port, secret, room, args.stock, args.limit)
            progress(f"{args.viewers} viewers tap {args.attempts} times when a "
                     f"{args.stock}-unit sale starts")  # fmt: skip
            rush = loader.ask(cmd="grab", target=sale["id"], attempts=args.attempts,
                              at_ms=sale["starts_at"], think_ms=args.think_ms)  # fmt: skip
            batches = batch_stats(port)
        final, audit = asyncio.run(inspect(redis_url, room, sale["id"]))
        raw_after, raw_client = raw_baseline(redis_url, room, args)
    raw = (raw_before + raw_after) / 2
    statuses = rush["statuses"]
    answered = rush["answered"]
    grabs_per_second = answered / rush["window_s"]
    units_taken = final.reserved + final.sold
    return {
        "attempts": args.attempts,
        "reserved": statuses.get("reserved", 0),
        "sold_out": statuses.get("sold_out", 0),
        "limit_reached": statuses.get("limit_reached", 0),
        "errors": sum(rush["errors"].values()),
        "oversell": max(0, rush["reserved_units"] - final.units, units_taken - final.units),
        "grabs_per_second": round(grabs_per_second),
        "latency_ms": rush["latency_ms"],
        "raw_evalsha_per_second": round(raw),
        "raw_evalsha_before_after": [round(raw_before), round(raw_after)],
        "ratio_to_raw": round(grabs_per_second / raw, 3),
        "audit_ok": audit["ok"],
        "metrics": args.metrics == "on",
        "viewers": args.viewers,
        "stock": args.stock,
        "per_user_limit": args.limit,
        "reserved_units": rush["reserved_units"],
        "sale_counters": final.stock(),
        "other_statuses": {
            k: v for k, v in statuses.items() if k not in {"reserved", "sold_out", "limit_reached"}
        },
        "error_codes": rush["errors"],
        "window_s": round(rush["window_s"], 3),
        "think_ms": args.think_ms,
        "grab_window_ms": args.window_ms,
        **batches,
        "raw_client": raw_client,
        "event_loop": loop_name(),
        "audit": audit,
    }


def compare_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """The show metrics' cost on the grab path: `--compare-metrics` rounds of the same rush
    with metrics on and off (in alternating order), each against its own raw baseline
    (the machine is shared: the ratios, not the rates, are comparable between runs)."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for round_no in range(args.compare_metrics):
        # Alternate which goes first: a run's place in the sequence must not look like a cost.
        for mode in ("on", "off") if round_no % 2 == 0 else ("off", "on"):
            progress(f"round {round_no + 1}/{args.compare_metrics}: metrics {mode}")
            runs[mode].append(run(argparse.Namespace(**{**vars(args), "metrics": mode})))

    def figures(mode: str) -> dict[str, Any]:
        return {
            "grabs_per_second": [r["grabs_per_second"] for r in runs[mode]],
            "ratio_to_raw": [r["ratio_to_raw"] for r in runs[mode]],
            "latency_p99_ms": [r["latency_ms"]["p99"] for r in runs[mode]],
            "oversell": sum(r["oversell"] for r in runs[mode]),
            "audit_ok": all(r["audit_ok"] for r in runs[mode]),
        }

    on, off = figures("on"), figures("off")
    median_on = round(statistics.median(on["ratio_to_raw"]), 4)
    median_off = round(statistics.median(off["ratio_to_raw"]), 4)
    return {
        "rounds": args.compare_metrics, "viewers": args.viewers, "stock": args.stock,
        "attempts": args.attempts, "with_metrics": on, "without_metrics": off,
        "median_ratio_with": median_on, "median_ratio_without": median_off,
        # > 1: metrics cost throughput; 1.0 means no measurable cost.
        "cost_ratio": round(median_off / median_on, 3) if median_on else None,
    }  # fmt: skip


def main(args: argparse.Namespace) -> int:
    result = compare_metrics(args) if args.compare_metrics else run(args)
    print_result(result, args.json)
    return 0
