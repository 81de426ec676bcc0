"""The asyncio load generator: thousands of simulated viewers per OS process, in several
processes, for loads locust cannot produce on one machine.

`run` (or `run_async`) starts `processes` subprocesses (`python -m loadtests.asyncio_gen`),
each running `run_viewers` (a `loadtests.swarm.Swarm`) with its share of the users and of
the spawn rate on one shared clock, merges their `Stats` (loadtests/stats.py) and returns
the summary dict (`Stats.summary`).

    stats = await run_viewers(base_url, room, host_token, "flash-sale", 500, 100, 60,
                              first_index=0)
    result = run(base_url, room, host_token, "flash-sale", 5000, 500, 60, processes=4)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from engine.core.loop import run_event_loop
from loadtests.scenarios import PLANS
from loadtests.slo import Stage, stages_from_json, users_at
from loadtests.stats import Stats
from loadtests.swarm import Swarm
from loadtests.target import Tls

HOST_TOKEN_ENV = "LIVECART_LOADTEST_HOST_TOKEN"
ROOT = Path(__file__).resolve().parents[1]


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run_viewers(  # noqa: PLR0917 - the generators' shared signature
    base_url: str, room: str, host_token: str, scenario: str, users: int, spawn_rate: float,
    duration_s: float, *, first_index: int = 0, start_at: float | None = None,
    seed: int | None = None, stages: list[Stage] | None = None, process: tuple[int, int] = (0, 1),
) -> Stats:  # fmt: skip
    """Run `users` viewers of `scenario` in this process: viewer i (user
    `lt-<run>-<first_index + i>`, <run> random per process) starts at start + i /
    spawn_rate; all stop at start + duration_s. `start_at` (Unix seconds, default now)
    lets several processes share one clock. `seed`: the viewers' random choices
    (`scenarios.Dice`). With `stages`, this process (`process` = (k, of n)) keeps its share
    of the users the stages want over time (`slo.users_at`) instead: viewers k, k + n,
    k + 2n... start and leave as the count rises and falls."""
    _raise_nofile()
    # --ca-file / --insecure reach this process through the environment (loadtests/target.py).
    tls = Tls.from_env().context()
    swarm = Swarm(base_url, room, host_token, PLANS[scenario], seed=seed,
                  source=f"{process[0]}:{first_index}", ssl_context=tls)  # fmt: skip
    start = time.time() if start_at is None else start_at
    deadline = start + duration_s
    rate = max(spawn_rate, 1e-3)
    swarm.spawn(swarm.sample_viewers())
    try:
        if stages:
            await _follow(swarm, stages, start, process)
        else:
            for i in range(users):
                due = start + i / rate
                if due >= deadline:
                    break
                await asyncio.sleep(max(0.0, due - time.time()))
                swarm.spawn(swarm.viewer(first_index + i))
        await asyncio.sleep(max(0.0, deadline - time.time()))
    finally:
        await swarm.stop()
    return swarm.stats


async def _follow(
    swarm: Swarm, stages: list[Stage], start: float, process: tuple[int, int]
) -> None:
    """Start and stop viewers every 50 ms so this process has its share of the users the
    stages want (the most recently started leave first)."""
    k, n = process
    active: list[int] = []
    started = 0
    await asyncio.sleep(max(0.0, start - time.time()))
    while True:
        total = users_at(stages, time.time() - start)
        if total is None:
            return
        want = total // n + (1 if k < total % n else 0)
        while len(active) < want:
            index = k + n * started
            started += 1
            active.append(index)
            swarm.spawn(swarm.viewer(index))
        while len(active) > want:
            swarm.leave(active.pop())
        await asyncio.sleep(0.05)


def shares(users: int, processes: int) -> list[int]:
    """Users per process, as even as possible (processes without users are left out)."""
    processes = max(1, processes)
    split = [users // processes + (1 if i < users % processes else 0) for i in range(processes)]
    return [n for n in split if n > 0]


async def run_async(  # noqa: PLR0917
    base_url: str, room: str, host_token: str, scenario: str, users: int, spawn_rate: float,
    duration_s: float, processes: int, *, start_at: float | None = None,
    seed: int | None = None, stages: list[Stage] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`run` for callers that have an event loop (the orchestrator plays the host's
    timeline meanwhile)."""
    if scenario not in PLANS:
        raise ValueError(f"unknown scenario {scenario!r}")
    start = time.time() if start_at is None else start_at
    env = {**os.environ, HOST_TOKEN_ENV: host_token}
    procs = []
    first = 0
    split = shares(users, processes)
    for k, n in enumerate(split):
        args = ["--base-url", base_url, "--room", room, "--scenario", scenario,
                "--users", str(n), "--spawn-rate", repr(spawn_rate * n / users),
                "--duration", repr(duration_s), "--first-index", str(first),
                "--start-at", repr(start), "--process", f"{k}/{len(split)}"]  # fmt: skip
        if seed is not None:
            args += ["--seed", str(seed)]
        if stages:
            args += ["--stages", orjson.dumps([s.to_json() for s in stages]).decode()]
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadtests.asyncio_gen", *args, env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        ))  # fmt: skip
        first += n
    limit = max(0.0, start - time.time()) + duration_s + 60
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), limit)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    parts = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            tail = err.decode(errors="replace")[-2000:]
            raise RuntimeError(f"generator process exited {proc.returncode}: {tail}")
        parts.append(Stats.from_json(orjson.loads(out)))
    merged = Stats.merge(parts) if parts else Stats(processes=0)
    return merged.summary()


def run(  # noqa: PLR0917
    base_url: str, room: str, host_token: str, scenario: str, users: int, spawn_rate: float,
    duration_s: float, processes: int, *, start_at: float | None = None,
    seed: int | None = None, stages: list[Stage] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Split `users` (and the spawn rate) over `processes` OS processes, run them until
    `duration_s` after the start, merge their stats; the summary dict (`Stats.summary`).
    Blocks: from inside an event loop use `run_async` (or `asyncio.to_thread(run, ...)`)."""
    return asyncio.run(run_async(base_url, room, host_token, scenario, users, spawn_rate,
                                 duration_s, processes, start_at=start_at, seed=seed,
                                 stages=stages))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.asyncio_gen",
        description="One asyncio load-generator process; prints its Stats as JSON.",
    )
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--host-token", help=f"default: ${HOST_TOKEN_ENV}")
    parser.add_argument("--scenario", required=True, choices=sorted(PLANS))
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--spawn-rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--start-at", type=float, default=None, help="Unix seconds")
    parser.add_argument("--seed", type=int, default=None, help="the viewers' random choices")
    parser.add_argument("--stages", default=None, help="JSON stages (loadtests/slo.py)")
    parser.add_argument("--process", default="0/1", help="this process's number / of how many")
    parser.add_argument("--summary", action="store_true", help="print the summary instead")
    args = parser.parse_args(argv)
    host_token = args.host_token or os.environ.get(HOST_TOKEN_ENV)
    if not host_token:
        parser.error(f"--host-token or ${HOST_TOKEN_ENV} is required")
    stats = run_event_loop(run_viewers(
        args.base_url, args.room, host_token, args.scenario, args.users, args.spawn_rate,
        args.duration, first_index=args.first_index, start_at=args.start_at, seed=args.seed,
        stages=stages_from_json(orjson.loads(args.stages)) if args.stages else None,
        process=(int(args.process.split("/")[0]), int(args.process.split("/")[1])),
    ))  # fmt: skip
    output = stats.summary() if args.summary else stats.to_json()
    sys.stdout.write(orjson.dumps(output).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
