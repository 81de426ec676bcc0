"""`livecart bench flood`: what a flood of bad frames costs everyone else.

Method. One engine process (`livecart serve`, one worker) on an embedded Redis and a live
room. First, idle: a fresh viewer joins `--probes` times (the time from opening the
socket to its `welcome`), and the engine's resident memory is read. Then `--flooders`
connections, in a separate load process, each sign in as a viewer and send unknown frames
as fast as the socket takes them; each time the engine closes one (3502, its error budget
spent), it connects again and goes on, for `--seconds`. Meanwhile a fresh viewer joins
every 0.2 s and the engine's memory is sampled. Handshake rate limits are off (every
flooder comes from this machine's one address), so the error budget alone has to hold.

Figures: `join_ms` under the flood (p50, max) against `idle_join_ms` measured in the same
run (`ratio_to_idle`), `rss_idle_mib` and `rss_peak_mib` (`rss_growth_mib`), and what the
flooders saw: frames sent, the most frames one connection received (error frames, at most
the budget + 1, and ticks), and connections closed with 3502 (a closed flooder is held
until the close handshake times out: the engine stopped reading it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from clients.core import JSON, hello
from engine.bench.harness import (
    Child,
    bench_env,
    create_room,
    engine_process,
    print_result,
    redis_for,
)
from engine.bench.stats import rss_kib
from engine.core.identity import Role
from engine.realtime.protocol import CloseCode
from engine.rooms import auth

PROBE_EVERY_S = 0.2
JOIN_TIMEOUT_S = 10.0  # the engine's own hello timeout: a join slower than this failed
BURST = 200  # frames written before reading what came back


def progress(message: str) -> None:
    print(f"[bench flood] {message}", file=sys.stderr, flush=True)


async def join_ms(ws_url: str, token: str) -> float | None:
    """Open a viewer socket, say hello, wait for the welcome: milliseconds, or None when
    that took over JOIN_TIMEOUT_S or failed."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            async with connect(ws_url, compression=None, open_timeout=None) as ws:
                await ws.send(JSON.encode(hello(token)))
                while JSON.decode(await ws.recv()).get("type") != "welcome":
                    pass
    except (TimeoutError, OSError, InvalidHandshake, ConnectionClosed):
        return None
    return (time.perf_counter() - started) * 1000


# ---- the load process: the flooders ------------------------------------------------------


async def buffered(ws: ClientConnection) -> int:
    """How many messages a closed connection still holds unread (they are counted, not lost)."""
    count = 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()
            count += 1
    return count


async def flooder(ws_url: str, token: str, until: float, totals: dict[str, Any]) -> None:
    frame = JSON.encode({"type": "flood"})  # an unknown type: one error frame each
    while time.monotonic() < until:
        answered = 0
        try:
            async with connect(ws_url, compression=None, open_timeout=10) as ws:
                await ws.send(JSON.encode(hello(token)))
                await ws.recv()  # the welcome
                try:
                    while time.monotonic() < until:
                        for _ in range(BURST):
                            await ws.send(frame)
                        totals["frames_sent"] += BURST
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(0.001):
                                while True:
                                    await ws.recv()
                                    answered += 1
                except ConnectionClosed:
                    # A send can meet the close first: count the answers that came before it.
                    answered += await buffered(ws)
                    raise
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == CloseCode.PROTOCOL_ABUSE:
                totals["closed_3502"] += 1
        except (OSError, InvalidHandshake, TimeoutError):
            totals["connect_failures"] += 1
        totals["most_received"] = max(totals["most_received"], answered)
        totals["connections"] += 1


async def flood(ws_url: str, secret: str, room: str, flooders: int, seconds: float) -> None:
    until = time.monotonic() + seconds
    totals: dict[str, Any] = {"frames_sent": 0, "closed_3502": 0, "connect_failures": 0,
                              "most_received": 0, "connections": 0}  # fmt: skip
    tokens = [auth.mint(secret, room=room, role=Role.VIEWER, user=f"flooder-{n}")
              for n in range(flooders)]  # fmt: skip
    await asyncio.gather(*(flooder(ws_url, token, until, totals) for token in tokens))
    print(orjson.dumps(totals).decode(), flush=True)


# ---- the run ---------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, pid: int, ws_url: str, token: str,
                  load: Child) -> dict[str, Any]:  # fmt: skip
    idle = [ms for _ in range(args.probes) if (ms := await join_ms(ws_url, token)) is not None]
    if not idle:
        raise RuntimeError("a viewer could not join the idle engine")
    rss_idle = rss_kib(pid)
    progress(f"idle: a viewer joins in {statistics.median(idle):.1f} ms; "
             f"{rss_idle / 1024:.1f} MiB resident")  # fmt: skip
    progress(f"{args.flooders} flooders for {args.seconds:g} s")
    load.send(go=True)
    joins: list[float] = []
    failed = 0
    peak = rss_idle
    until = time.monotonic() + args.seconds
    while time.monotonic() < until:
        ms = await join_ms(ws_url, token)
        if ms is None:
            failed += 1
        else:
            joins.append(ms)
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(PROBE_EVERY_S)
    flooded: dict[str, Any] = await asyncio.to_thread(load.receive)
    idle_ms = statistics.median(idle)
    return {
        "flooders": args.flooders,
        "seconds": args.seconds,
        "idle_join_ms": round(idle_ms, 1),
        "join_ms": {
            "p50": round(statistics.median(joins), 1) if joins else None,
            "max": round(max(joins), 1) if joins else None,
        },
        "joins_under_flood": len(joins),
        "joins_failed": failed,  # over JOIN_TIMEOUT_S (the engine's hello timeout), or refused
        "ratio_to_idle": round(max(joins) / max(idle_ms, 0.001), 2) if joins else None,
        "rss_idle_mib": round(rss_idle / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - rss_idle) / 1024, 1),
        **flooded,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    secret = env["LIVECART_SECRET"]
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        engine, port = stack.enter_context(engine_process(redis_url, 100, env))
        room = create_room(port, secret, {})
        ws_url = f"ws://127.0.0.1:{port}/ws/{room}"
        token = auth.mint(secret, room=room, role=Role.VIEWER, user="prober")
        load = Child([sys.executable, "-m", "engine.bench.flood", ws_url, secret, room,
                      str(args.flooders), str(args.seconds)], env)  # fmt: skip
        stack.callback(load.stop)
        return asyncio.run(measure(args, engine.process.pid, ws_url, token, load))


def main(args: argparse.Namespace) -> int:
    print_result(run(args), args.json)
    return 0


def _load_main() -> None:
    """The load process: wait for `{"go": true}` on stdin, flood, print the totals."""
    ws_url, secret, room, flooders, seconds = sys.argv[1:6]
    sys.stdin.readline()
    asyncio.run(flood(ws_url, secret, room, int(flooders), float(seconds)))


if __name__ == "__main__":
    _load_main()
