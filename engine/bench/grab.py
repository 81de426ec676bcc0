"""`livecart bench grab`: the flash-sale second. N signed-in viewers in one load process
are in the room when a sale of S units starts; at the start they tap "grab" A times in
all (each tap after the previous answer, a fresh request id each time), through one
engine process (or `--workers N` of them on one port), with Redis in a third.
`--burst`: every viewer taps once, at the sale's start on the server's clock, and never
again (engine/bench/burst.py).

Figures: answers by status, `grabs_per_second` (answered grabs over the time from the
first tap to the last answer), client-side round-trip latency, `oversell` (units
reserved or sold beyond the sale's units, by the acknowledgements and by Redis),
`audit_ok` (`livecart audit` on the room afterwards) and `engine_cpu_us_per_grab` (the
engine's processes' CPU time from the first tap to the last answer, per answer).

Two baselines, measured in the same run:
- `raw_evalsha_per_second`: the grab script by EVALSHA against the same Redis
  (engine/bench/evalsha.py), just before and just after the rush, averaged (the machine
  is shared);
- `raw_ws_echo_per_second`: the same load process and tapping code against a bare
  `websockets` server answering every tap with the engine's own ack bytes
  (engine/bench/raw_echo.py), after the rush: the WebSocket and load-process floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from typing import Any

from redis.asyncio import Redis

from engine.bench.evalsha import raw_baseline
from engine.bench.harness import (
    Child,
    bench_env,
    connect,
    create_room,
    engine_process,
    host_http,
    local_redis_pid,
    metric_values,
    print_result,
    redis_for,
)
from engine.bench.stats import connections_per_process, process_tree
from engine.commerce.sales import Sale
from engine.core.loop import loop_name
from engine.insights.audit import audit_room
from engine.server.metrics_share import SNAPSHOT_INTERVAL_S
from engine.store import keys, redis_client
from engine.store.scripts import Scripts

COUNTDOWN_S = 3
# The echo baseline's viewers start this long after they are told to (time to get there).
ECHO_LEAD_MS = 1000


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


def taps(args: argparse.Namespace) -> int:
    """How many grabs the run sends: one per viewer in a burst."""
    return int(args.viewers) if args.burst else int(args.attempts)


def tap_command(args: argparse.Namespace, target: str, at_ms: float, clock: str,
                cpu_pids: list[int], *, others: dict[str, int] | None = None,
                ) -> dict[str, Any]:  # fmt: skip
    """The load process's rush command: the same for the engine and the echo server.
    `clock` says whose clock `at_ms` is on (a burst's; the sustained rush reads this
    machine's). A burst also reads the CPU of `others` (the Redis server on this machine)."""
    if args.burst:
        return {"cmd": "burst", "target": target, "at_ms": at_ms, "clock": clock,
                "cpu_pids": cpu_pids, "others": others or {}}  # fmt: skip
    return {"cmd": "grab", "target": target, "attempts": args.attempts, "at_ms": at_ms,
            "think_ms": args.think_ms, "cpu_pids": cpu_pids}  # fmt: skip


def echo_baseline(loader: Child, env: dict[str, str], args: argparse.Namespace,
                  reply: bytes) -> dict[str, Any]:  # fmt: skip
    """The same viewers and taps against a bare websockets server that answers each tap
    with `reply` (the engine's last grab ack)."""
    progress("raw baseline: a bare websockets server answering every tap with the ack")
    echo = Child([sys.executable, "-m", "engine.bench.raw_echo", reply.hex()], env)
    try:
        port = echo.receive()["port"]
        connect(loader, port, "echo", args.viewers, posters=0, mode="raw", report=progress)
        at_ms = time.time() * 1000 + ECHO_LEAD_MS
        result = loader.ask(**tap_command(args, "echo", at_ms, "local", [echo.process.pid]))
        loader.ask(cmd="close")
        return result
    finally:
        echo.stop()


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
        with engine_process(redis_url, 100, env, workers=args.workers) as (engine, port):
            # The supervisor and its workers (with one worker, the engine alone).
            engine_pids = process_tree(engine.process.pid)
            room = create_room(port, secret, {})
            add_product(port, secret, room)
            # The machine is shared: measure the baseline before and after the rush.
            raw_before, _ = raw_baseline(redis_url, room, args.stock, args.limit, progress)
            connect(loader, port, room, args.viewers, posters=args.viewers, mode="engine",
                    report=progress)  # fmt: skip
            spread = connections_per_process(engine_pids[1:] or engine_pids, port)
            # Everyone is in the room: the host starts a countdown; viewers tap at zero.
            sale = launch_sale(port, secret, room, args.stock, args.limit)
            progress(f"{args.viewers} viewers tap {taps(args)} times when a "
                     f"{args.stock}-unit sale starts")  # fmt: skip
            redis_pid = local_redis_pid(redis_url)
            others = {} if redis_pid is None else {"redis": redis_pid}
            rush = loader.ask(**tap_command(args, sale["id"], sale["starts_at"], "server",
                                            engine_pids, others=others))  # fmt: skip
            if args.workers > 1:
                time.sleep(SNAPSHOT_INTERVAL_S + 0.5)  # the other workers' counts trail by this
            batches = batch_stats(port)
            loader.ask(cmd="close")
        final, audit = asyncio.run(inspect(redis_url, room, sale["id"]))
        echo = echo_baseline(loader, env, args, bytes.fromhex(rush["answer_hex"]))
        raw_after, raw_client = raw_baseline(redis_url, room, args.stock, args.limit, progress)
    raw = (raw_before + raw_after) / 2
    statuses = rush["statuses"]
    grabs_per_second = rush["answered"] / rush["window_s"]
    echo_per_second = echo["answered"] / echo["window_s"]
    units_taken = final.reserved + final.sold
    oversell = max(0, rush["reserved_units"] - final.units, units_taken - final.units)
    result = {
        "attempts": rush["attempts"],
        "reserved": statuses.get("reserved", 0),
        "sold_out": statuses.get("sold_out", 0),
        "limit_reached": statuses.get("limit_reached", 0),
        "errors": sum(rush["errors"].values()),
        "oversell": oversell,
        "grabs_per_second": round(grabs_per_second),
        "latency_ms": rush["latency_ms"],
        "raw_evalsha_per_second": round(raw),
        "raw_evalsha_before_after": [round(raw_before), round(raw_after)],
        "ratio_to_raw": round(grabs_per_second / raw, 3),
        "raw_ws_echo_per_second": round(echo_per_second),
        "ratio_to_raw_echo": round(grabs_per_second / echo_per_second, 3),
        "engine_cpu_us_per_grab": per_answer_us(rush),
        "engine_workers": args.workers,
        "viewers_per_worker": spread,
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
        "raw_ws_echo": echo_figures(echo),
        "event_loop": loop_name(),
    }
    if args.burst:
        result["burst"] = burst_figures(rush, echo, oversell, audit["ok"])
    return {**result, "audit": audit}


def per_answer_us(rush: dict[str, Any]) -> float:
    """The measured processes' CPU time per answered tap, in microseconds."""
    return round(rush["cpu_s"] * 1e6 / rush["answered"], 1) if rush["answered"] else 0.0


def echo_figures(echo: dict[str, Any]) -> dict[str, Any]:
    figures = {
        "answered": echo["answered"],
        "window_s": round(echo["window_s"], 3),
        "latency_ms": echo["latency_ms"],
        "cpu_us_per_answer": per_answer_us(echo),
    }
    if "all_answered_ms" in echo:
        figures["all_answered_ms"] = echo["all_answered_ms"]
    return figures


def burst_figures(rush: dict[str, Any], echo: dict[str, Any], oversell: int,
                  audit_ok: bool) -> dict[str, Any]:  # fmt: skip
    return {
        "taps": rush["attempts"],
        "answered": rush["answered"],
        "duplicates": rush["duplicates"],
        "all_answered_ms": rush["all_answered_ms"],
        "latency_ms": rush["latency_ms"],
        "statuses": rush["statuses"],
        "error_codes": rush["errors"],
        "oversell": oversell,
        "audit_ok": audit_ok,
        "engine_cpu_us_per_grab": per_answer_us(rush),
        **machine_figures(rush),
        "raw_ws_echo_all_answered_ms": echo["all_answered_ms"],
        "raw_ws_echo_latency_ms": echo["latency_ms"],
        "send_ms": rush["send_ms"],
        "first_tap_late_ms": rush["first_tap_late_ms"],
        "clock_offset_ms": rush["clock_offset_ms"],
        "clock_rtt_ms": rush["clock_rtt_ms"],
    }


def machine_figures(rush: dict[str, Any]) -> dict[str, Any]:
    """How busy this machine's cores were in the burst: the CPU the engine, the Redis
    server (when it runs here) and the load process used, against the cores x the time
    until the last answer. Near 1 the machine, not one process, set the pace."""
    cpu_ms = {"engine": rush["cpu_s"] * 1000} | {
        name: seconds * 1000 for name, seconds in rush["others_cpu_s"].items()
    }
    cores = os.cpu_count() or 1
    window_ms = rush["window_s"] * 1000
    busy = sum(cpu_ms.values()) / (cores * window_ms) if window_ms else 0.0
    return {
        "cpu_ms": {name: round(ms, 1) for name, ms in cpu_ms.items()},
        "cores": cores,
        "cores_busy": round(busy, 3),
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
        "attempts": taps(args), "with_metrics": on, "without_metrics": off,
        "median_ratio_with": median_on, "median_ratio_without": median_off,
        # > 1: metrics cost throughput; 1.0 means no measurable cost.
        "cost_ratio": round(median_off / median_on, 3) if median_on else None,
    }  # fmt: skip


def main(args: argparse.Namespace) -> int:
    result = compare_metrics(args) if args.compare_metrics else run(args)
    print_result(result, args.json)
    return 0
