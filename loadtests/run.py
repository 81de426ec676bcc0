"""`livecart loadtest SCENARIO`: one command runs a complete show under load and judges it.

1. The target: a local engine started here (embedded Redis, its own data dir), or an
   existing deployment (`--host URL` with `--host-token`, a host token for `--room`).
2. The room: created and taken live if new; products and a coupon template set up.
3. The load: locust headless (master plus one worker per core, `--processes`) running
   loadtests/locustfile.py, or `--generator asyncio` (loadtests/asyncio_gen.py) in several
   processes; meanwhile the host's timeline (loadtests/scenarios.py) is played here.
4. The verdict: the engine's audit (`GET /api/rooms/{room}/audit`) after the run, plus
   requests and failures per message type with p50/p95/p99, push latency, `oversell`,
   `double_used_coupons`. Bad (exit 1) when an invariant is broken or more than
   `--max-failure-ratio` of requests failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from clients import HostClient, LivecartClientError
from engine.bench.harness import UNLIMITED_ADMISSION, engine_process
from engine.core.identity import Role
from engine.insights.report import write as write_files
from engine.rooms import auth
from engine.store.redis_server import EmbeddedRedis, free_port
from loadtests import report as run_report
from loadtests import show, target
from loadtests.cpu import CpuMeter
from loadtests.scenarios import SCENARIOS, ramp_s, timeline
from loadtests.stats import html_report

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SETTLE_S = 3.0  # after the load stops: let the sweeper and in-flight callbacks finish


def progress(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


def bucket_percentiles(histogram: dict[float, int]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) of a {value: count} histogram, rounded to 0.1."""
    total = sum(histogram.values())
    result = {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    if not total:
        return result
    ordered = sorted(histogram.items())
    for label, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        rank, seen = max(1, int(q * total + 0.5)), 0
        for value, count in ordered:
            seen += count
            if seen >= rank:
                result[label] = round(float(value), 1)
                break
    return result


def summarize_locust(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Locust's final stats (its --json-file) as the verdict's figures."""
    by_type: dict[str, Any] = {}
    push: Counter[float] = Counter()
    requests = failures = 0
    for entry in entries:
        histogram = {float(k): int(v) for k, v in entry["response_times"].items()}
        name = f"{entry['method']} {entry['name']}"
        by_type[name] = {
            "count": entry["num_requests"],
            "failures": entry["num_failures"],
            **bucket_percentiles(histogram),
        }
        if entry["method"] == "PUSH":
            push.update(histogram)
        else:
            requests += entry["num_requests"]
            failures += entry["num_failures"]
    return {
        "requests": requests,
        "failures": failures,
        "by_type": dict(sorted(by_type.items())),
        "push_latency_ms": bucket_percentiles(dict(push)),
    }


def nest_outcomes(outcomes: dict[str, int]) -> dict[str, dict[str, int]]:
    """Locust's "grab:reserved" counts as {"grab": {"reserved": n}} (the asyncio
    generator's `statuses`)."""
    nested: dict[str, dict[str, int]] = {}
    for key, count in sorted(outcomes.items()):
        category, _, status = key.partition(":")
        nested.setdefault(category, {})[status] = count
    return nested


@contextlib.contextmanager
def local_engine(env: dict[str, str]) -> Iterator[tuple[str, int, int]]:
    """An engine on a free port with a private embedded Redis; yields its base URL and
    the engine's and Redis's process ids."""
    with (
        tempfile.TemporaryDirectory(prefix="livecart-loadtest-") as data,
        EmbeddedRedis(Path(data), appendfsync="everysec") as redis,
        engine_process(redis.url, 100, env) as (engine, port),
    ):
        assert redis.process is not None
        yield f"http://127.0.0.1:{port}", engine.process.pid, redis.process.pid


async def set_up(base_url: str, room: str, host_token: str) -> show.Shop:
    async with target.host_client(base_url, room, host_token) as host:
        with contextlib.suppress(Exception):
            await host.create_room(f"load test: {room}")
        room_state = (await host.get_room())["state"]
        if room_state == "scheduled":
            await host.go_live()
        return await show.prepare(host)


def audience_patience_s(args: argparse.Namespace) -> float:
    """How long the host waits past a step's time for the viewers to have joined: up to a
    third of the run, so a slow start delays the show but leaves it time to be played."""
    return float(args.duration) / 3


def master_port_args() -> list[str]:
    """A free port for locust's master and its workers (its default, 5557, would collide
    with any other load test running on the machine)."""
    port = str(free_port())
    return ["--master-bind-port", port, "--master-port", port]


def locust_command(args: argparse.Namespace, base_url: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        base_url,
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{int(args.duration)}s",
        "--processes",
        str(args.processes),
        *master_port_args(),
        "--csv",
        str(out / "stats"),
        "--html",
        str(out / "report.html"),
        "--json-file",
        str(out / "stats"),
        "--skip-log",
        "--stop-timeout",
        "5",
    ]


async def run_load(  # noqa: PLR0917
    args: argparse.Namespace,
    base_url: str,
    room: str,
    host_token: str,
    out: Path,
    cpu: CpuMeter,
) -> dict[str, Any]:
    shop = await set_up(base_url, room, host_token)
    env = {
        **os.environ,
        "LIVECART_ROOM": room,
        "LIVECART_HOST_TOKEN": host_token,
        "LIVECART_SCENARIO": args.scenario,
        "LIVECART_USERS": str(args.users),
        "LIVECART_SPAWN_RATE": str(args.spawn_rate),
        "LIVECART_DURATION_S": str(args.duration),
    }
    steps = timeline(args.scenario, args.users, args.spawn_rate, args.duration)
    started = time.monotonic()

    async def play_host() -> None:
        async with target.host_client(base_url, room, host_token) as host:
            await show.play(host, shop, steps, started, audience=args.users,
                            patience_s=audience_patience_s(args))  # fmt: skip

    cpu.start()
    if args.generator == "locust":
        process = await asyncio.create_subprocess_exec(
            *locust_command(args, base_url, out), env=env, stdout=subprocess.DEVNULL
        )
        await play_host()
        await process.wait()
        stats_file = out / "stats.json"
        if not stats_file.exists():
            raise RuntimeError(f"locust exited {process.returncode} without stats")
        figures = summarize_locust(orjson.loads(stats_file.read_bytes()))
        outcomes_file = out / "stats_outcomes.json"
        if outcomes_file.exists():
            figures["statuses"] = nest_outcomes(orjson.loads(outcomes_file.read_bytes()))
        report = out / "report.html"
    else:
        from loadtests import asyncio_gen  # noqa: PLC0415 - only this generator needs it

        load = asyncio.create_task(
            asyncio.to_thread(
                asyncio_gen.run,
                base_url,
                room,
                host_token,
                args.scenario,
                args.users,
                args.spawn_rate,
                args.duration,
                args.processes,
            )
        )
        await play_host()
        figures = await load
        report = out / "report.html"
        report.write_text(html_report(args.scenario, room, figures))
    figures.update(await cpu.stop())
    await asyncio.sleep(SETTLE_S)
    async with target.host_client(base_url, room, host_token) as host:
        audit = await host.call("GET", f"/api/rooms/{room}/audit")
        show_report = await save_show_report(host, room, out / "show")
    return {"figures": figures, "audit": audit, "show": shop.played, "report": str(report),
            "show_report": show_report}  # fmt: skip


SHOW_REPORT_FILES = ("summary.json", "metrics.csv", "orders.csv")


async def save_show_report(host: HostClient, room: str, out: Path) -> dict[str, Any]:
    """The show's own post-live report (`livecart report`, over HTTP so that it works
    against a remote deployment too): its files in `out`, and summary.json's figures."""
    files = {}
    for name in ("report.html", *SHOW_REPORT_FILES):
        path = f"/api/rooms/{room}/report" + ("" if name == "report.html" else f"/{name}")
        response = await host.http.get(path)
        response.raise_for_status()
        files[name] = response.content
    write_files(files, out)
    summary: dict[str, Any] = orjson.loads(files["summary.json"])
    return {"html": str(out / "report.html"), "summary": summary}


def verdict(args: argparse.Namespace, room: str, result: dict[str, Any]) -> dict[str, Any]:
    figures, audit = result["figures"], result["audit"]
    requests, failures = figures["requests"], figures["failures"]
    ratio = failures / requests if requests else 1.0
    problems = [c["name"] for c in audit["checks"] if not c["ok"]]
    joined = figures.get("statuses", {}).get("join", {}).get("joined", 0)
    if joined < args.users * (1 - args.max_failure_ratio):
        problems.append(f"only {joined} of {args.users} viewers joined")
    if audit["oversell"]:
        problems.append(f"oversell {audit['oversell']}")
    if audit["double_used_coupons"]:
        problems.append(f"{audit['double_used_coupons']} coupons used twice")
    if not requests:
        problems.append("no requests were made")
    elif ratio > args.max_failure_ratio:
        problems.append(f"{failures} of {requests} requests failed")
    return {
        "scenario": args.scenario,
        "room": room,
        "users": args.users,
        "duration_s": args.duration,
        "generator": args.generator,
        "requests": requests,
        "failures": failures,
        "failure_ratio": round(ratio, 4),
        "viewers_joined": joined,
        "by_type": figures["by_type"],
        "push_latency_ms": figures["push_latency_ms"],
        "oversell": audit["oversell"],
        "double_used_coupons": audit["double_used_coupons"],
        "audit_ok": audit["ok"],
        "report_html": result["report"],
        "show_report_html": result["show_report"]["html"],
        "show_summary": result["show_report"]["summary"],
        "ok": not problems,
        "problems": problems,
        "show": result["show"],
        "audit": {k: audit[k] for k in ("room", "ok", "checks")},
        **{
            k: v
            for k, v in figures.items()
            if k not in {"requests", "failures", "by_type", "push_latency_ms"}
        },
    }


def cleanup_room(base_url: str, room: str, host_token: str) -> dict[str, Any]:
    """--cleanup: the room made private and ended; a failure is reported, not fatal (the
    verdict stands)."""
    try:
        done = asyncio.run(target.cleanup(base_url, room, host_token))
    except (OSError, LivecartClientError, httpx.HTTPError) as exc:
        progress(f"warning: --cleanup failed, room {room} may still be live: {exc}")
        return {"error": str(exc)}
    progress(f"cleanup: room {room} is {done['state']}" + (", private" if done["private"] else ""))
    return done


def main(args: argparse.Namespace) -> int:
    if args.generator == "locust" and importlib.util.find_spec("locust") is None:
        raise ValueError(
            "locust is not installed: pip install 'livecart[loadtest]', or use --generator asyncio"
        )
    target.prepare(args, progress)  # the token and TLS options: checked, handed on
    if ramp_s(args.users, args.spawn_rate) >= args.duration:
        progress(
            f"warning: {args.users} users at {args.spawn_rate}/s take "
            f"{ramp_s(args.users, args.spawn_rate):.0f}s to join, not less than --duration"
        )
    out = Path(args.out or tempfile.mkdtemp(prefix=f"livecart-{args.scenario}-"))
    out.mkdir(parents=True, exist_ok=True)
    room = args.room or f"load-{secrets.token_hex(4)}"
    cpu = CpuMeter(None, set())  # a remote engine: the generator's CPU only
    with contextlib.ExitStack() as stack:
        if args.host:
            base_url = args.host.rstrip("/")
            host_token = target.host_token(args)
            if not host_token or not args.room:
                raise ValueError(
                    "--host needs --room and a host token for it (LIVECART_HOST_TOKEN, "
                    "--host-token-env NAME, --host-token-file PATH or --host-token)"
                )
        else:
            secret = secrets.token_urlsafe(24)
            # Every simulated viewer comes from this machine: no per-address handshake limit;
            # the viewers pay through the simulated provider.
            env = {**os.environ, "LIVECART_SECRET": secret, "LIVECART_LOG_LEVEL": "WARNING",
                   "LIVECART_SIMULATED_PSP": "on", **UNLIMITED_ADMISSION}  # fmt: skip
            base_url, engine_pid, redis_pid = stack.enter_context(local_engine(env))
            cpu = CpuMeter(engine_pid, {engine_pid, redis_pid})
            host_token = auth.mint(secret, room=room, role=Role.HOST, user="loadtest-host")
        progress(
            f"{args.scenario}: {args.users} users at {args.spawn_rate}/s for "
            f"{args.duration:.0f}s against {base_url} (room {room}, {args.generator})"
        )
        try:
            result = asyncio.run(run_load(args, base_url, room, host_token, out, cpu))
        except (RuntimeError, OSError, LivecartClientError, httpx.HTTPError) as exc:
            # Could not run (engine unreachable, token refused, a generator died): exit
            # 2, as the other commands' "could not check", never 1, a bad verdict.
            progress(f"could not run the load test: {target.tls_failure(exc) or exc}")
            return 2
        if args.cleanup:
            result["cleanup"] = cleanup_room(base_url, room, host_token)
    judged = verdict(args, room, result)
    if "cleanup" in result:
        judged["cleanup"] = result["cleanup"]
    progress(f"run report {run_report.save(out, {'host': base_url, **judged})}")
    files = "CSVs" if args.generator == "locust" else "files"
    progress(f"report {judged['report_html']}; {files} in {out}")
    progress(f"the show's post-live report: {judged['show_report_html']}")
    if args.json:
        print(orjson.dumps(judged).decode())
    else:
        for key in (
            "scenario",
            "room",
            "requests",
            "failures",
            "push_latency_ms",
            "oversell",
            "double_used_coupons",
            "audit_ok",
            "ok",
            "problems",
            "report_html",
            "show_report_html",
        ):
            print(f"{key:22} {judged[key]}")
        for name, row in judged["by_type"].items():
            print(f"  {name:20} {row}")
    return 0 if judged["ok"] else 1


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("loadtest", help="run a scenario under load and judge the result")
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=float, default=50.0, help="users started per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--host", default=None, help="an existing deployment's base URL")
    parser.add_argument("--host-token", default=None, help="host token (visible in ps)")
    target.add_arguments(parser)  # --host-token-env/-file, --ca-file, --insecure, --cleanup
    parser.add_argument("--room", default=None, help="room id (default: a new room)")
    parser.add_argument("--generator", choices=["locust", "asyncio"], default="locust")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="load processes (locust: workers; default: one per core)",
    )
    parser.add_argument("--max-failure-ratio", type=float, default=0.01)
    parser.add_argument("--out", default=None, help="directory for the report and CSVs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=main)
