"""`livecart loadtest SCENARIO`: one command runs a complete show under load and judges it.

1. The target: a local engine started here (embedded Redis, its own data dir), or an
   existing deployment (`--host URL` with `--host-token`, a host token for `--room`).
2. The room: created and taken live if new; products and a coupon template set up.
3. The load: locust headless (master plus one worker per core, `--processes`) running
   loadtests/locustfile.py, or `--generator asyncio` (loadtests/asyncio_gen.py) in several
   processes; meanwhile the host's timeline (loadtests/scenarios.py) is played here.
4. The verdict: the engine's audit (`GET /api/rooms/{room}/audit`) after the run, plus
   requests and failures per message type with p50/p95/p99, push latency, `oversell`,
   `double_used_coupons`. Bad (exit 1) when an invariant is broken, more than
   `--max-failure-ratio` of requests failed or an SLO (`--slo`, `--slo-file`;
   loadtests/slo.py) is breached. Also per-phase percentiles (`--stages`), a per-second
   timeline, the host's actions as events and the close codes the viewers saw.
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
from loadtests.slo import (
    Slo,
    Stage,
    evaluate,
    parse_slo,
    parse_slo_lines,
    parse_stages,
    peak_users,
    total_s,
)
from loadtests.stats import Timeline, bucket_percentiles, close_codes, html_report

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SETTLE_S = 3.0  # after the load stops: let the sweeper and in-flight callbacks finish


def progress(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


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
            "max": round(float(entry.get("max_response_time") or 0.0), 1),
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
    """An engine on a free port with a private embedded Redis, and its books (unless
    LIVECART_LEDGER=off or DATABASE_URL names a PostgreSQL) in the same temporary data dir;
    yields its base URL and the engine's and Redis's process ids."""
    with (
        tempfile.TemporaryDirectory(prefix="livecart-loadtest-") as data,
        EmbeddedRedis(Path(data), appendfsync="everysec") as redis,
        engine_process(redis.url, 100, {"LIVECART_DATA_DIR": data, **env}) as (engine, port),
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
    if getattr(args, "locust_master", False):  # workers on other machines connect to it
        workers = ["--master", "--expect-workers", str(args.expect_workers),
                   "--master-bind-port", str(args.master_port or LOCUST_MASTER_PORT),
                   "--expect-workers-max-wait", str(WORKERS_WAIT_S)]  # fmt: skip
    else:
        workers = ["--processes", str(args.processes), *master_port_args()]
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
        *workers,
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
        **load_env(args),
    }
    audience, spawn_rate = args.users, args.spawn_rate
    stages: list[Stage] | None = getattr(args, "stages_parsed", None)
    if stages:  # the first stage is the host's ramp: its users are the audience awaited
        audience, spawn_rate = stages[0].users, args.users / stages[0].end_s
    steps = timeline(args.scenario, args.users, spawn_rate, args.duration)
    started = time.monotonic()
    load_start = time.time()

    async def play_host() -> None:
        async with target.host_client(base_url, room, host_token) as host:
            await show.play(host, shop, steps, started, audience=audience,
                            patience_s=audience_patience_s(args))  # fmt: skip

    cpu.start()
    if args.generator == "locust":
        for stale in ("stats_started.json", "stats_timeline.json", "stats_outcomes.json"):
            (out / stale).unlink(missing_ok=True)  # an --out used before
        process = await asyncio.create_subprocess_exec(
            *locust_command(args, base_url, out), env=env, stdout=subprocess.DEVNULL
        )
        if getattr(args, "locust_master", False):
            progress(worker_instructions(args, room, host_token))
        began = await locust_started(out, process)
        if began is None:  # e.g. a master whose workers never came
            raise RuntimeError(f"locust exited {process.returncode} before its load started")
        # The host's timeline and the timeline's t=0: the load's start.
        started, load_start = time.monotonic() - (time.time() - began), began
        await play_host()
        await process.wait()
        stats_file = out / "stats.json"
        if not stats_file.exists():
            raise RuntimeError(f"locust exited {process.returncode} without stats")
        figures = summarize_locust(orjson.loads(stats_file.read_bytes()))
        outcomes_file = out / "stats_outcomes.json"
        if outcomes_file.exists():
            figures["statuses"] = nest_outcomes(orjson.loads(outcomes_file.read_bytes()))
        timeline_file = out / "stats_timeline.json"
        if timeline_file.exists():
            figures["timeline"] = orjson.loads(timeline_file.read_bytes())
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
                start_at=load_start,
                seed=getattr(args, "seed", None),
                stages=getattr(args, "stages_parsed", None),
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
    events = [{"t": round(max(0.0, at - load_start), 2), "label": text}
              for at, text in shop.events]  # fmt: skip
    return {"figures": figures, "audit": audit, "show": shop.played, "report": str(report),
            "show_report": show_report, "load_start": load_start, "events": events}  # fmt: skip


async def locust_started(out: Path, process: asyncio.subprocess.Process) -> float | None:
    """When locust's load began (Unix seconds; the locustfile writes it at test_start), or
    None if locust ended first. A master waits for its workers first."""
    marker = out / "stats_started.json"
    while process.returncode is None:
        if marker.exists():
            with contextlib.suppress(orjson.JSONDecodeError, KeyError):
                return float(orjson.loads(marker.read_bytes())["started"])
        await asyncio.sleep(0.1)
    return None


def worker_instructions(args: argparse.Namespace, room: str, host_token: str) -> str:
    token = "$LIVECART_HOST_TOKEN" if args.host else host_token  # ours: a local engine's
    seed = f" --seed {args.seed}" if args.seed is not None else ""
    return (
        f"locust master waiting for {args.expect_workers} worker(s) on port "
        f"{args.master_port or LOCUST_MASTER_PORT}: on each worker machine run "
        f"LIVECART_HOST_TOKEN={token} livecart loadtest-worker {args.scenario} --room {room} "
        f"--master-host <this machine> --master-port {args.master_port or LOCUST_MASTER_PORT}"
        f"{seed}"
    )


def load_env(args: argparse.Namespace) -> dict[str, str]:
    """The locustfile's settings of this part of the load test (seed, stages)."""
    env = {}
    if getattr(args, "seed", None) is not None:
        env["LIVECART_SEED"] = str(args.seed)
    stages: list[Stage] | None = getattr(args, "stages_parsed", None)
    if stages:
        env["LIVECART_STAGES"] = orjson.dumps([s.to_json() for s in stages]).decode()
    return env


def phase_spans(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """(name, start_s, end_s) of each phase: the stages, else the ramp and the hold."""
    stages: list[Stage] | None = getattr(args, "stages_parsed", None)
    if stages:
        return [(s.name, s.start_s, s.end_s) for s in stages]
    spawn_rate = getattr(args, "spawn_rate", None) or float(args.users)
    ramp = min(ramp_s(args.users, spawn_rate), float(args.duration))
    spans = [("ramp", 0.0, ramp)]
    if ramp < args.duration:
        spans.append(("hold", ramp, float(args.duration)))
    return spans


def judge_slos(args: argparse.Namespace, figures: dict[str, Any]) -> list[dict[str, Any]]:
    slos: list[Slo] = getattr(args, "slos_parsed", None) or []
    return evaluate(slos, figures, float(args.duration))


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
    slos = judge_slos(args, figures)
    for slo in slos:
        if not slo["ok"]:
            seen = "no data" if slo["value"] is None else f"{slo['value']}{slo['unit']}"
            problems.append(f"SLO {slo['slo']} breached ({seen})")
    raw_timeline = Timeline.from_json(figures.get("timeline") or {})
    load_start = float(result.get("load_start", 0.0))
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
            if k not in {"requests", "failures", "by_type", "push_latency_ms", "timeline"}
        },
        "slos": slos,
        "phases": raw_timeline.phases(load_start, phase_spans(args)),
        "timeline": {
            "interval_s": 1,
            "rows": raw_timeline.rows(load_start, float(args.duration)),
        },
        "events": result.get("events", []),
        "close_codes": close_codes(figures.get("statuses", {}).get("close", {})),
        "seed": getattr(args, "seed", None),
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


def read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def read_specs(args: argparse.Namespace) -> None:
    """Parse --slo, --slo-file and --stages (a SpecError, a ValueError: exit 2); stages
    set the run's users (their peak) and duration (their total)."""
    slos = [parse_slo(text) for text in args.slo or []]
    if args.slo_file:
        slos += parse_slo_lines(read_text(args.slo_file))
    args.slos_parsed = slos
    args.stages_parsed = None
    if args.stages:
        stages = parse_stages(read_text(args.stages))
        args.stages_parsed = stages
        args.users, args.duration = peak_users(stages), total_s(stages)
        args.spawn_rate = max(args.spawn_rate, 1.0)
    if args.locust_master and args.generator != "locust":
        raise ValueError("--locust-master is for the locust generator")


def print_verdict(judged: dict[str, Any], *, as_json: bool) -> None:
    """The verdict on stdout: one JSON object, or one line per figure."""
    if as_json:
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
        for key in ("slos", "close_codes", "seed"):
            print(f"{key:22} {judged[key]}")
        for phase in judged["phases"]:
            print(f"  phase {phase['name']} {phase['start_s']}-{phase['end_s']}s: "
                  f"{sum(phase['requests'].values())} requests, "
                  f"{sum(phase['failures'].values())} failed")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    read_specs(args)
    if args.generator == "locust" and importlib.util.find_spec("locust") is None:
        raise ValueError(
            "locust is not installed: pip install 'livecart[loadtest]', or use --generator asyncio"
        )
    target.prepare(args, progress)  # the token and TLS options: checked, handed on
    if not args.stages and ramp_s(args.users, args.spawn_rate) >= args.duration:
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
    (out / "verdict.json").write_bytes(orjson.dumps(judged))
    progress(f"run report {run_report.save(out, {'host': base_url, **judged})}")
    files = "CSVs" if args.generator == "locust" else "files"
    progress(f"report {judged['report_html']}; {files} in {out}")
    progress(f"the show's post-live report: {judged['show_report_html']}")
    print_verdict(judged, as_json=args.json)
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
    add_slo_options(parser)
    add_worker_parser(sub)


LOCUST_MASTER_PORT = 5557
WORKERS_WAIT_S = 120  # how long a --locust-master waits for its workers


def add_slo_options(parser: argparse.ArgumentParser) -> None:
    """SLOs, stages, seed and distributed locust (docs/loadtesting.md)."""
    parser.add_argument("--slo", action="append", default=[], metavar="SLO",
                        help="a threshold, e.g. 'grab.p99<250ms' (repeatable)")  # fmt: skip
    parser.add_argument("--slo-file", default=None, help="SLOs, one a line, # comments")
    parser.add_argument("--stages", default=None, help="load stages file (JSON or lines)")
    parser.add_argument("--seed", type=int, default=None, help="repeat the viewers' choices")
    parser.add_argument(
        "--locust-master",
        action="store_true",
        help="run locust's master only; workers connect from other machines",
    )
    parser.add_argument(
        "--expect-workers", type=int, default=1, help="with --locust-master: workers to wait for"
    )
    parser.add_argument(
        "--master-port",
        type=int,
        default=None,
        help=f"with --locust-master: its port (default {LOCUST_MASTER_PORT})",
    )


def worker_main(args: argparse.Namespace) -> int:
    """`livecart loadtest-worker`: locust workers for a `--locust-master` elsewhere."""
    if importlib.util.find_spec("locust") is None:
        raise ValueError("locust is not installed: pip install 'livecart[dev]'")
    host_token = args.host_token or os.environ.get("LIVECART_HOST_TOKEN", "")
    if not host_token:
        raise ValueError("a host token for --room is needed (--host-token or LIVECART_HOST_TOKEN)")
    env = {**os.environ, "LIVECART_ROOM": args.room, "LIVECART_HOST_TOKEN": host_token,
           "LIVECART_SCENARIO": args.scenario}  # fmt: skip
    if args.seed is not None:
        env["LIVECART_SEED"] = str(args.seed)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
               "--master-host", args.master_host, "--master-port", str(args.master_port),
               "--skip-log"]  # fmt: skip
    if args.processes > 1:
        command += ["--processes", str(args.processes)]
    return subprocess.run(command, env=env, check=False).returncode


def add_worker_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "loadtest-worker", help="locust workers for a `livecart loadtest --locust-master`"
    )
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--room", required=True, help="the master's room")
    parser.add_argument("--master-host", required=True)
    parser.add_argument("--master-port", type=int, default=LOCUST_MASTER_PORT)
    parser.add_argument("--host-token", default=None, help="default: LIVECART_HOST_TOKEN")
    parser.add_argument("--seed", type=int, default=None, help="as the master's --seed")
    parser.add_argument("--processes", type=int, default=1, help="worker processes here")
    parser.set_defaults(func=worker_main)
