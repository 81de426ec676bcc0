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
3. raw baseline: N more lean viewers (a second load process) on a bare
   `websockets.broadcast()` loop sending a tick captured from the engine in phase 2:
   `raw_broadcast_sends_per_second`.
Phases 2 and 3 alternate in `ROUNDS` rounds of `ROUND_SECONDS` each, both sets of viewers
connected throughout, so a slowdown of this shared machine lasting a few seconds weighs
on both sides alike instead of on whichever phase it fell in. `ratio_to_raw` = phase 2's
sends per second over all rounds ÷ phase 3's: how much of the bare library's fan-out
capacity the engine's full path (Lua, pub/sub, hub, encoding) keeps; `ratio_rounds` gives
each round's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections import Counter
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

ROUNDS = 3  # engine saturation and raw baseline, alternating
ROUND_SECONDS = 2.0
SATURATION_POSTERS = 60


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


def capacity_rounds(
    args: argparse.Namespace, redis_url: str, env: dict[str, str], loader: Child
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Phases 2 and 3, alternating: each round saturates the engine, then blasts the bare
    server with the engine's first captured tick; both rounds' reports."""
    raw_loader = Child([sys.executable, "-m", "engine.bench.loader"], env)
    raw = Child([sys.executable, "-m", "engine.bench.raw_server"], env)
    try:
        with engine_process(redis_url, 1, env) as (_, port):
            room = create_room(port, env["LIVECART_SECRET"], room_settings(args))
            posters = min(args.viewers, SATURATION_POSTERS)
            connect_viewers(loader, port, room, args.viewers, posters=posters, mode="engine")
            connect_viewers(raw_loader, raw.receive()["port"], "raw", args.viewers, posters=0,
                            mode="raw")  # fmt: skip
            engine_rounds: list[dict[str, Any]] = []
            raw_rounds: list[dict[str, Any]] = []
            frame = b""  # the engine's first captured tick, once it has one
            for round_no in range(1, ROUNDS + 1):
                progress(f"round {round_no}/{ROUNDS}: saturating the engine for {ROUND_SECONDS}s")
                engine_rounds.append(loader.ask(cmd="flood", seconds=ROUND_SECONDS))
                frame = frame or bytes.fromhex(engine_rounds[0]["sample_tick_hex"])
                progress(f"round {round_no}/{ROUNDS}: raw broadcast of a {len(frame)}-byte "
                         f"engine tick for {ROUND_SECONDS}s")  # fmt: skip
                raw_rounds.append(blast(raw, raw_loader, frame))
            loader.ask(cmd="close")
            raw_loader.ask(cmd="close")
    finally:
        raw.stop()
        raw_loader.stop()
    return engine_rounds, raw_rounds


def blast(raw: Child, raw_loader: Child, frame: bytes) -> dict[str, Any]:
    """One round of the bare server broadcasting `frame`, counted by its viewers."""
    raw.send(cmd="blast", frame_hex=frame.hex(), seconds=ROUND_SECONDS + 1.0)
    time.sleep(0.5)
    counted = raw_loader.ask(cmd="count", seconds=ROUND_SECONDS)
    raw.receive()
    return counted


def per_second(frames: int, seconds: float) -> float:
    return frames / max(seconds, 1e-9)


def round_ratios(
    engine_rounds: list[dict[str, Any]], raw_rounds: list[dict[str, Any]]
) -> list[float]:
    """Each round's engine sends per second ÷ the raw baseline's in the same round."""
    return [
        round(
            per_second(e["frames_in_window"], e["window_s"])
            / max(1.0, per_second(r["frames"], r["window_s"])),
            3,
        )
        for e, r in zip(engine_rounds, raw_rounds, strict=True)
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        loader = Child([sys.executable, "-m", "engine.bench.loader"], env)
        stack.callback(loader.stop)
        offered = offered_phase(args, redis_url, env, loader)
        engine_rounds, raw_rounds = capacity_rounds(args, redis_url, env, loader)
    frame = bytes.fromhex(engine_rounds[0]["sample_tick_hex"])
    window = offered["window_s"]
    engine_frames = sum(r["frames_in_window"] for r in engine_rounds)
    engine_seconds = sum(r["window_s"] for r in engine_rounds)
    raw_frames = sum(r["frames"] for r in raw_rounds)
    raw_seconds = sum(r["window_s"] for r in raw_rounds)
    engine_sends = round(per_second(engine_frames, engine_seconds))
    raw_sends = round(per_second(raw_frames, raw_seconds))
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
        "raw_broadcast_sends_per_second": raw_sends,
        "ratio_to_raw": round(engine_sends / max(1, raw_sends), 3),
        "ratio_rounds": round_ratios(engine_rounds, raw_rounds),
        "offered_sends_per_second": round(offered["frames"] / window),
        "frame_bytes_mean": round(offered["frame_bytes"] / max(1, offered["frames"])),
        "raw_frame_bytes": len(frame),
        "comments_posted": offered["posted"],
        "comments_acknowledged": offered["acked"],
        "comments_refused": offered["refused"],
        "sampled_out": offered["sampled_out"],
        "duplicates": offered["extra"],
        "seq_gaps": offered["seq_gaps"] + sum(r["seq_gaps"] for r in engine_rounds),
        "disconnects": {
            "offered": offered["closes"],
            "saturation": dict(sum((Counter(r["closes"]) for r in engine_rounds), Counter())),
        },
        "latency_samples": offered["latency_samples"],
        "tick_ms": args.tick_ms,
        "event_loop": loop_name(),
        "saturation": {
            "rounds": ROUNDS,
            "seconds": round(engine_seconds, 2),
            "frames": engine_frames,
            "comments_posted": sum(r["posted"] for r in engine_rounds),
            "raw_seconds": round(raw_seconds, 2),
            "raw_frames": raw_frames,
        },
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json, width=32)
    return 0
