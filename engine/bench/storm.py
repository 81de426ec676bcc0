"""`livecart bench storm`: a reconnection storm. N viewers (the Python SDK, with its
full-jitter backoff) watch a room on one engine process. That process is killed (SIGKILL)
and started again on the same port while the show goes on through a second engine
process. Every viewer comes back at once, the restarted engine's handshake limit sheds
what it cannot take with `503` + `Retry-After`, and each viewer resumes from its offset.

Figures, all from this run:
- `join_seconds`: the same N viewers joining the first time, as fast as the limit lets
  them (the baseline);
- `recovery_seconds`: from the restarted engine listening to the last viewer resumed, and
  `ratio_to_join` = recovery ÷ join;
- `rate_bound_seconds`: N ÷ the limit's rate, after its burst. No engine could let the
  crowd back faster with that limit;
- `shed_handshakes`: handshakes the restarted engine refused with 503;
- `missed`, `gaps`, `duplicates`: comments posted during the outage that some viewer never
  received, resumes that could not replay everything, entries seen twice (all 0 when
  nothing is lost);
- `healthz_ms`: the restarted engine's `/healthz` latency while the storm lasts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from typing import Any

import httpx

from clients import LivecartClientError, ViewerClient
from engine.bench.harness import (
    Child,
    bench_env,
    create_room,
    engine_process,
    metric_values,
    print_result,
    redis_for,
)
from engine.bench.stats import percentiles
from engine.core.identity import Role
from engine.rooms import auth
from engine.store.redis_server import free_port

JOIN_CONCURRENCY = 200
RECOVERY_TIMEOUT_S = 180.0


def progress(message: str) -> None:
    print(f"[bench storm] {message}", file=sys.stderr, flush=True)


async def join(viewer: ViewerClient) -> None:
    """Connect, waiting out a shedding engine's Retry-After (with jitter) as told."""
    while True:
        try:
            await viewer.connect()
            return
        except LivecartClientError as exc:
            if "retry_after_ms" not in exc.details:
                raise
            await asyncio.sleep(exc.details["retry_after_ms"] / 1000 * random.uniform(1, 1.5))


async def join_all(viewers: list[ViewerClient]) -> float:
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def one(viewer: ViewerClient) -> None:
        async with gate:
            await join(viewer)

    started = time.perf_counter()
    await asyncio.gather(*(one(viewer) for viewer in viewers))
    return time.perf_counter() - started


async def probe(url: str, stop: asyncio.Event, samples: list[float]) -> None:
    """`/healthz` round trips every 100 ms until `stop`."""
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.1)


def refused_handshakes(port: int) -> int:
    found = metric_values(port, r'livecart_handshakes_refused_total\{reason="(rate)"\}')
    return int(found.get("rate", 0.0))


async def storm(args: argparse.Namespace, env: dict[str, str], redis_url: str) -> dict[str, Any]:
    secret = env["LIVECART_SECRET"]
    limited = {**env, "LIVECART_HANDSHAKES_PER_S": str(args.handshakes_per_s)}
    port = free_port()
    with contextlib.ExitStack() as stack:
        first: Child = stack.enter_context(engine_process(redis_url, 100, limited, port=port))[0]
        _, show_port = stack.enter_context(engine_process(redis_url, 100, env))
        room = create_room(show_port, secret, {"comment_rate_max": 0})
        url = f"ws://127.0.0.1:{port}/ws"
        viewers = [ViewerClient(url, room, auth.mint(secret, room=room, role=Role.VIEWER,
                                                     user=f"v{n}"))
                   for n in range(args.viewers)]  # fmt: skip
        host_token = auth.mint(secret, room=room, role=Role.HOST, user="bench-host")
        host = ViewerClient(f"ws://127.0.0.1:{show_port}/ws", room, host_token)
        try:
            await host.connect()
            join_s = await join_all(viewers)
            progress(f"{len(viewers)} viewers joined in {join_s:.2f}s")
            first.process.kill()  # SIGKILL: no goodbye, every socket just drops
            first.process.wait()
            during = [(await host.comment(f"during the outage {n}"))["id"]
                      for n in range(args.comments)]  # fmt: skip
            await asyncio.sleep(args.outage_s)
            progress(f"engine killed; {len(during)} comments posted while it was down")
            stack.enter_context(engine_process(redis_url, 100, limited, port=port))
            return await recover(args, port, viewers, during) | {
                "viewers": args.viewers, "handshakes_per_s": args.handshakes_per_s,
                "join_seconds": round(join_s, 2),
            }  # fmt: skip
        finally:
            await asyncio.gather(host.close(), *(viewer.close() for viewer in viewers))


async def recover(args: argparse.Namespace, port: int, viewers: list[ViewerClient],
                  during: list[str]) -> dict[str, Any]:  # fmt: skip
    """Watch the viewers come back to the engine restarted on `port` just now."""
    ready = time.perf_counter()
    stop = asyncio.Event()
    healthz: list[float] = []
    prober = asyncio.create_task(probe(f"http://127.0.0.1:{port}/healthz", stop, healthz))
    resumed_at: dict[int, float] = {}
    deadline = ready + RECOVERY_TIMEOUT_S
    while len(resumed_at) < len(viewers) and time.perf_counter() < deadline:
        for n, viewer in enumerate(viewers):
            if n not in resumed_at and viewer.reconnects >= 1:
                resumed_at[n] = time.perf_counter() - ready
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the last resumed viewers' replay is in flight
    stop.set()
    await prober
    recovery_s = max(resumed_at.values(), default=RECOVERY_TIMEOUT_S)
    burst = 2 * args.handshakes_per_s
    missed = sum(1 for v in viewers for entry_id in during if entry_id not in v.entries)
    times = list(resumed_at.values())
    return {
        "resumed": len(resumed_at),
        "recovery_seconds": round(recovery_s, 2),
        "resume_seconds": percentiles(times),
        "rate_bound_seconds": round(max(0, len(viewers) - burst) / args.handshakes_per_s, 2),
        "shed_handshakes": refused_handshakes(port),
        "missed": missed,
        "gaps": sum(v.gaps for v in viewers),
        "duplicates": sum(v.duplicates for v in viewers),
        "healthz_ms": percentiles(healthz),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        result = asyncio.run(storm(args, env, redis_url))
    result["ratio_to_join"] = round(result["recovery_seconds"] / max(result["join_seconds"],
                                                                     0.01), 2)  # fmt: skip
    return result


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json)
    ok = result["resumed"] == args.viewers and not (result["missed"] or result["duplicates"])
    return 0 if ok else 1
