"""`livecart bench fanout`: how well one engine process fans a busy room out to N viewers.

Processes: Redis (embedded unless --redis-url), the engine (`livecart serve`), a load
process of lean viewers (engine.bench.loader) and, for the baseline, a bare websockets
broadcaster (engine.bench.raw_server). Phases, all in one run on this machine:

1. offered load: N viewers in the room (every tick's seq checked), comments posted at
   M/s for S seconds by some of them; gives deliveries, frames, latency (poster's send
   to viewer's receipt), `missed` (comments neither delivered nor reported as sampled
   out), engine CPU, and RSS per connection;
2. engine saturation: the same N viewers on a fresh engine with a 1 ms tick and posters
   posting back-to-back, so the engine broadcasts as many frames as its CPU allows:
   `engine_sends_per_second`;
3. raw baseline: the same N lean viewers on a bare `websockets.broadcast()` loop sending
   frames of the mean size seen in phase 1: `raw_broadcast_sends_per_second`.
`ratio_to_raw` = phase 2 ÷ phase 3: how much of the bare library's fan-out capacity the
engine's full path (Lua, pub/sub, hub, encoding) keeps.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from typing import Any

from engine.bench.harness import (
    Child,
    bench_env,
    connect,
    create_room,
    engine_process,
    print_result,
    redis_for,
)
from engine.bench.stats import cpu_seconds, rss_kib
from engine.core.loop import loop_name

SATURATION_SECONDS = 5.0
SATURATION_POSTERS = 60
RAW_SECONDS = 5.0


def progress(message: str) -> None:
    print(f"[bench fanout] {message}", file=sys.stderr, flush=True)


def connect_viewers(loader: Child, port: int, room: str, viewers: int, *, posters: int,
                    mode: str) -> None:  # fmt: skip
    connect(loader, port, room, viewers, posters=posters, mode=mode, report=progress)


def room_settings(args: argparse.Namespace) -> dict[str, Any]:
    # Posters post often: comment limits are not what this measures.
    settings: dict[str, Any] = {"comment_rate_max": 0}
    if args.display_rate is not None:
        settings["display_rate"] = args.display_rate
    return settings


def offered_phase(
    args: argparse.Namespace, redis_url: str, env: dict[str, str], loader: Child
) -> dict[str, Any]:
    secret = env["LIVECART_SECRET"]
    with engine_process(redis_url, args.tick_ms, env) as (engine, port):
        room = create_room(port, secret, room_settings(args))
        rss_before = rss_kib(engine.process.pid)
        posters = max(1, math.ceil(args.comments_per_second / 10))
        connect_viewers(loader, port, room, args.viewers, posters=posters, mode="engine")
        time.sleep(1.0)
        rss_after = rss_kib(engine.process.pid)
        progress(f"posting {args.comments_per_second}/s for {args.seconds}s")
        cpu_before, wall_before = cpu_seconds(engine.process.pid), time.perf_counter()
        loader.send(cmd="post", rate=args.comments_per_second, seconds=args.seconds)
        # CPU over the posting window only; the loader then drains and reports.
        time.sleep(args.seconds)
        cpu_after, wall_after = cpu_seconds(engine.process.pid), time.perf_counter()
        report = loader.receive()
        loader.ask(cmd="close")
    report["engine_cpu_percent"] = round(
        100 * (cpu_after - cpu_before) / (wall_after - wall_before), 1
    )
    report["rss_per_connection_kib"] = round((rss_after - rss_before) / args.viewers, 1)
    return report


def saturation_phase(
    args: argparse.Namespace, redis_url: str, env: dict[str, str], loader: Child
) -> dict[str, Any]:
    with engine_process(redis_url, 1, env) as (_, port):
        room = create_room(port, env["LIVECART_SECRET"], room_settings(args))
        posters = min(args.viewers, SATURATION_POSTERS)
        connect_viewers(loader, port, room, args.viewers, posters=posters, mode="engine")
        progress(f"saturating the engine for {SATURATION_SECONDS}s")
        report = loader.ask(cmd="flood", seconds=SATURATION_SECONDS)
        loader.ask(cmd="close")
    report["sends_per_second"] = round(report["frames_in_window"] / report["window_s"])
    return report


def raw_phase(
    args: argparse.Namespace, env: dict[str, str], loader: Child, frame: bytes
) -> dict[str, Any]:
    raw = Child([sys.executable, "-m", "engine.bench.raw_server"], env)
    try:
        port = raw.receive()["port"]
        connect_viewers(loader, port, "raw", args.viewers, posters=0, mode="raw")
        progress(f"raw broadcast of a {len(frame)}-byte engine tick for {RAW_SECONDS}s")
        raw.send(cmd="blast", frame_hex=frame.hex(), seconds=RAW_SECONDS + 1.0)
        time.sleep(0.5)
        counted = loader.ask(cmd="count", seconds=RAW_SECONDS)
        raw.receive()
        loader.ask(cmd="close")
    finally:
        raw.stop()
    counted["sends_per_second"] = round(counted["frames"] / counted["window_s"])
    return counted


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        loader = Child([sys.executable, "-m", "engine.bench.loader"], env)
        stack.callback(loader.stop)
        offered = offered_phase(args, redis_url, env, loader)
        saturated = saturation_phase(args, redis_url, env, loader)
        frame = bytes.fromhex(saturated["sample_tick_hex"])
        raw = raw_phase(args, env, loader, frame)
    window = offered["window_s"]
    engine_sends = saturated["sends_per_second"]
    return {
        "viewers": args.viewers,
        "comments_per_second": args.comments_per_second,
        "seconds": args.seconds,
        "deliveries_per_second": round(offered["comments_received"] / window),
        "frames_per_second": round(offered["frames"] / args.viewers / window, 1),
        "latency_ms": offered["latency_ms"],
        "missed": offered["missed"],
        "engine_cpu_percent": offered["engine_cpu_percent"],
        "rss_per_connection_kib": offered["rss_per_connection_kib"],
        "engine_sends_per_second": engine_sends,
        "raw_broadcast_sends_per_second": raw["sends_per_second"],
        "ratio_to_raw": round(engine_sends / max(1, raw["sends_per_second"]), 3),
        "offered_sends_per_second": round(offered["frames"] / window),
        "frame_bytes_mean": round(offered["frame_bytes"] / max(1, offered["frames"])),
        "raw_frame_bytes": len(frame),
        "comments_posted": offered["posted"],
        "comments_acknowledged": offered["acked"],
        "comments_refused": offered["refused"],
        "sampled_out": offered["sampled_out"],
        "duplicates": offered["extra"],
        "seq_gaps": offered["seq_gaps"] + saturated["seq_gaps"],
        "disconnects": {"offered": offered["closes"], "saturation": saturated["closes"]},
        "latency_samples": offered["latency_samples"],
        "tick_ms": args.tick_ms,
        "event_loop": loop_name(),
        "saturation": {
            "seconds": round(saturated["window_s"], 2),
            "frames": saturated["frames_in_window"],
            "comments_posted": saturated["posted"],
        },
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json, width=32)
    return 0
