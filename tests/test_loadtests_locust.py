"""The locust side of the load tests (loadtests/locust_client.py, loadtests/locustfile.py)
against a real engine.

How the gevent check works: locust monkey-patches the standard library for gevent when it
is imported, and `EngineClient` uses websocket-client's blocking `WebSocket`, which is
only cooperative if its socket reads yield to gevent's hub. So the check runs in a
subprocess (`python -c`, keeping the patching out of pytest's asyncio loop, where the
engine runs), with 20 viewers plus a poster as `EngineClient`s in ONE process:

- every viewer's reader greenlet sits in `recv` between frames; a heartbeat greenlet
  wakes every 5 ms and counts its wake-ups in a row during which no frame arrived. A read
  that blocked the process (an unpatched socket) would hold it until a frame came, so the
  heartbeat could not run in a quiet room;
- one viewer, then all 20, each in its own greenlet, wait for a comment. It is posted
  only once every waiter is waiting AND the heartbeat has then run 5 times in a row with
  no frame arriving (every reader parked in `recv`, the process still going). So every
  waiter receiving it shows the waits ran side by side (serialised waits could never all
  be waiting at once: the first would wait for a post that never comes) and no read held
  the process. Nothing is timed.

The control shows the check can fail: the same script with locust's patching switched off
(LOCUST_SKIP_MONKEY_PATCH=1) hangs in the first reader's `recv` (no heartbeat, no post)
until a plain SIGALRM watchdog reports it blocked.

The locust tests run locust itself, headless, and read its CSV stats: opening-rush
(`-u 10 -r 10 -t 8s`, master only), and full-show with a worker process (`--processes
1`, as the orchestrator runs it) while the test drops coupons and launches a sale, so
grabs, claims, checkouts and payments run and their outcomes reach the master.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from clients import HostClient
from engine.realtime.protocol import CloseCode
from engine.server.app import Engine
from loadtests.run import master_port_args
from loadtests.scenarios import COUPON, PRODUCTS, REQUESTS
from loadtests.stats import Timeline, close_codes
from tests.conftest import eventually, token

ROOT = Path(__file__).resolve().parents[1]
VIEWERS = 20

GEVENT_SCRIPT = r"""
import os, signal, sys
import orjson

def watchdog(*_):  # a plain signal handler: it runs even if a socket read holds the process
    print(orjson.dumps({"blocked": True}).decode(), flush=True)
    os._exit(0)

signal.signal(signal.SIGALRM, watchdog)
signal.setitimer(signal.ITIMER_REAL, float(sys.argv[5]))
import gevent, gevent.event
from locust.env import Environment  # importing locust monkey-patches for gevent
from loadtests.locust_client import EngineClient

QUIET_BEATS = 5
base_url, room, host_token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = Environment()
counts = {}

def on_request(request_type, name, exception=None, **_):
    key = f"{request_type} {name}" + (" FAILED" if exception else "")
    counts[key] = counts.get(key, 0) + 1

env.events.request.add_listener(on_request)
poster = EngineClient(env, base_url, room, host_token)
viewers = [EngineClient(env, base_url, room, host_token) for _ in range(n)]
gevent.joinall([gevent.spawn(c.start, f"gevent-{i}") for i, c in enumerate([poster, *viewers])],
               raise_error=True)

beat = {"quiet": 0, "frames": 0}
quiet = gevent.event.Event()

def heartbeat():
    # Counts its wake-ups in a row during which no client received a frame (tick seq).
    while True:
        gevent.sleep(0.005)
        frames = sum(c.seq for c in [poster, *viewers])
        beat["quiet"] = beat["quiet"] + 1 if frames == beat["frames"] else 0
        beat["frames"] = frames
        if beat["quiet"] >= QUIET_BEATS:
            quiet.set()

beating = gevent.spawn(heartbeat)

def wait_for_comment(clients, text):
    # How many of `clients` received `text`, each waiting in its own greenlet; it is
    # posted once all of them wait and the heartbeat ran QUIET_BEATS times with no frame.
    waiting, received = [], []
    all_waiting = gevent.event.Event()
    def waiter(client):
        seen = gevent.event.Event()
        def on_entry(entry, received_ms):
            if entry["kind"] == "comment" and entry["text"] == text:
                seen.set()
        client.on_entry = on_entry
        waiting.append(client)
        if len(waiting) == len(clients):
            all_waiting.set()
        if seen.wait(10):
            received.append(client)
    def post():
        all_waiting.wait()
        beat["quiet"] = 0
        quiet.clear()
        quiet.wait()  # every reader sits in recv with nothing to read; the process runs on
        poster.comment(text)
    posting = gevent.spawn(post)
    gevent.joinall([gevent.spawn(waiter, c) for c in clients])
    posting.kill()
    return len(received)

single = wait_for_comment(viewers[:1], "one viewer waits")
everyone = wait_for_comment(viewers, "all viewers wait")
signal.setitimer(signal.ITIMER_REAL, 0)
for client in [poster, *viewers]:
    client.close()
beating.kill()
print(orjson.dumps({
    "single": single, "everyone": everyone, "counts": counts,
    "gaps": sum(c.gaps for c in viewers),
}).decode())
"""


async def start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """A subprocess that does not block the event loop the engine runs on."""
    return await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def reaper() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes a test started; any still running when it ends (it failed) is killed and
    its pipes drained, so nothing leaks into the next test."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.communicate()


async def finish(process: asyncio.subprocess.Process, timeout_s: float = 30) -> str:
    """Its stdout, once it exited 0."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


async def run_viewers(engine: Engine, room: str, watchdog_s: float,
                      env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    script = [GEVENT_SCRIPT, engine.base_url, room, token(room, "host", "host-1"), str(VIEWERS)]
    out = await finish(await start(sys.executable, "-c", *script, str(watchdog_s), env=env))
    result: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.slow
async def test_engine_client_is_cooperative_under_gevent(engine: Engine, room: str) -> None:
    result = await run_viewers(engine, room, watchdog_s=15)
    assert "blocked" not in result
    assert result["single"] == 1, result
    # All 20 were waiting at once when the comment went out, and each received it.
    assert result["everyone"] == VIEWERS, result
    counts = result["counts"]
    assert not [key for key in counts if key.endswith("FAILED")], counts
    for name in ("HTTP token", "WS connect", "WS join"):
        assert counts[name] == VIEWERS + 1, counts
    assert counts["WS comment"] == 2
    # Each comment reached every viewer and the poster, and was timed as a PUSH.
    assert counts["PUSH comment"] == 2 * (VIEWERS + 1), counts
    assert result["gaps"] == 0


@pytest.mark.slow
async def test_the_gevent_check_fails_without_monkey_patching(engine: Engine, room: str) -> None:
    """The control: with locust's patching switched off, the first reader blocked in
    `recv` holds the whole process (nobody posts, nobody else reads) until the watchdog."""
    result = await run_viewers(engine, room, watchdog_s=5, env={"LOCUST_SKIP_MONKEY_PATCH": "1"})
    assert result == {"blocked": True}


def read_stats(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Locust's PREFIX_stats.csv by (Type, Name)."""
    with Path(f"{prefix}_stats.csv").open(newline="") as stats:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(stats)}


def read_failures(prefix: Path) -> dict[tuple[str, str], int]:
    """Locust's PREFIX_failures.csv: (Name, Error) -> occurrences."""
    with Path(f"{prefix}_failures.csv").open(newline="") as failures:
        return {(row["Name"], row["Error"]): int(row["Occurrences"])
                for row in csv.DictReader(failures)}  # fmt: skip


def read_outcomes(prefix: Path) -> dict[str, int]:
    outcomes: dict[str, int] = orjson.loads(Path(f"{prefix}_outcomes.json").read_bytes())
    return outcomes


def read_timeline(prefix: Path) -> Timeline:
    return Timeline.from_json(orjson.loads(Path(f"{prefix}_timeline.json").read_bytes()))


async def until_online(host: HostClient, viewers: int) -> None:
    """Wait until `viewers` viewers (besides the host's seat) are in the room."""
    seat = await host.watch()
    try:
        # Locust's start-up is slow on a busy machine: allow it time before the run's clock
        # matters (the runs below last longer than their users take to join).
        await eventually(lambda: seat.stats.get("online", 0) >= viewers + 1, timeout_s=30)
    finally:
        await seat.close()


def locust_args(engine: Engine, prefix: Path, users: int, seconds: int) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
            "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
            "--host", engine.base_url, "--csv", str(prefix), "--only-summary",
            "--loglevel", "WARNING"]  # fmt: skip


def locust_env(room: str, scenario: str, users: int, seconds: int) -> dict[str, str]:
    return {"LIVECART_ROOM": room, "LIVECART_HOST_TOKEN": token(room, "host", "host-1"),
            "LIVECART_SCENARIO": scenario, "LIVECART_USERS": str(users),
            "LIVECART_SPAWN_RATE": str(users), "LIVECART_DURATION_S": str(seconds)}  # fmt: skip


@pytest.mark.slow
async def test_headless_locust_opening_rush(
    engine: Engine, room: str, host: HostClient, tmp_path: Path,
    reaper: list[asyncio.subprocess.Process],
) -> None:  # fmt: skip
    products = [await host.create_product(**body) for body in PRODUCTS]
    await host.pin_product(products[0]["id"])
    prefix = tmp_path / "stats"
    locust = await start(*locust_args(engine, prefix, 10, 8),
                         env=locust_env(room, "opening-rush", 10, 8))  # fmt: skip
    reaper.append(locust)
    await until_online(host, 10)  # each sees the pin pushed
    await host.pin_product(products[1]["id"])
    await finish(locust)
    stats = read_stats(prefix)
    reported = {key for key in stats if key[1] != "Aggregated"}
    assert reported <= REQUESTS, reported - REQUESTS
    for key in [("HTTP", "token"), ("WS", "connect"), ("WS", "join")]:
        assert stats[key]["Request Count"] == "10", stats[key]
    for key in [("HTTP", "token"), ("WS", "connect"), ("WS", "join"), ("WS", "comment"),
                ("WS", "like")]:  # fmt: skip
        assert stats[key]["Failure Count"] == "0", stats[key]
    assert int(stats["WS", "comment"]["Request Count"]) > 0
    assert int(stats["PUSH", "comment"]["Request Count"]) > 0
    assert stats["PUSH", "announcement"]["Request Count"] == "10"
    assert ("PUSH", "stock") not in stats  # no sale, no drop
    # Everyone joined once; nobody grabs, claims or pays in opening-rush.
    assert read_outcomes(prefix) == {"join:joined": 10}


@pytest.mark.slow
async def test_headless_locust_full_show_with_a_worker(
    engine: Engine, room: str, host: HostClient, tmp_path: Path,
    reaper: list[asyncio.subprocess.Process],
) -> None:  # fmt: skip
    """Grabs, claims, checkouts and payments, run as the orchestrator does: a master and
    a worker process (`--processes 1`), the outcomes summed on the master."""
    products = [await host.create_product(**body) for body in PRODUCTS]
    template = await host.create_coupon(**COUPON)
    prefix = tmp_path / "stats"
    locust = await start(*locust_args(engine, prefix, 10, 12), "--processes", "1",
                         *master_port_args(),
                         env=locust_env(room, "full-show", 10, 12))  # fmt: skip
    reaper.append(locust)
    await until_online(host, 10)  # the sale is for the 10 viewers
    await host.drop_coupons(template["id"], 4, countdown_s=1)
    sku = products[0]["skus"][0]["sku"]
    await host.launch_sale(sku, 5, countdown_s=1, hold_s=60, duration_s=60, per_user_limit=1)
    await finish(locust)
    stats = read_stats(prefix)
    assert set(stats) - {("Aggregated", "Aggregated"), ("", "Aggregated")} <= REQUESTS
    for key, row in stats.items():
        assert row["Failure Count"] == "0", (key, row)
    assert int(stats["WS", "grab"]["Request Count"]) >= 10  # everyone taps at least once
    assert stats["WS", "claim"]["Request Count"] == "10"
    assert int(stats["PUSH", "stock"]["Request Count"]) > 0
    assert int(stats["PUSH", "announcement"]["Request Count"]) >= 20  # the drop and the sale
    outcomes = read_outcomes(prefix)
    assert outcomes["join:joined"] == 10, outcomes  # counted on the worker, summed here
    assert outcomes["grab:reserved"] == 5, outcomes  # 10 viewers, 5 units, 2 taps each
    assert outcomes["claim:claimed"] == 4, outcomes
    assert outcomes["claim:sold_out"] == 6, outcomes
    assert outcomes.get("pay:paid", 0) <= outcomes.get("checkout:ordered", 0) <= 5
    sold = (await host.sale((await host.sales())[0]["id"]))["sold"]
    assert sold == outcomes.get("pay:paid", 0)


@pytest.mark.slow
async def test_headless_locust_counts_close_codes_and_seconds(
    engine: Engine, room: str, host: HostClient, tmp_path: Path,
    reaper: list[asyncio.subprocess.Process],
) -> None:  # fmt: skip
    """A viewer the engine closes (3001, slow consumer: reconnect) is counted by its code,
    and the per-second timeline (loadtests/stats.py `Timeline`) is written beside the
    outcomes: the verdict's `close_codes`, `timeline` and `phases` come from these."""
    prefix = tmp_path / "stats"
    # A request of the closed viewer's still unanswered at the close fails "disconnected"
    # (docs/protocol.md § Close codes: it may or may not have been applied), and locust
    # exits 1 on any failure: its exit code is not the check here; the failures file is.
    args = [*locust_args(engine, prefix, 3, 6), "--exit-code-on-error", "0"]
    locust = await start(*args, env=locust_env(room, "opening-rush", 3, 6))
    reaper.append(locust)
    await until_online(host, 3)
    assert engine.node is not None
    hub = engine.node.hubs[room]
    await eventually(lambda: len(hub.viewers) == 3)  # the seat has left
    next(iter(hub.viewers)).close_soon(CloseCode.SLOW_CONSUMER, "test")
    await eventually(lambda: len(hub.viewers) == 3)  # it came back
    await finish(locust)
    errors = read_failures(prefix)
    assert all("disconnected" in error for _, error in errors), errors
    assert sum(errors.values()) <= 2, errors  # at most what one viewer had in flight
    outcomes = read_outcomes(prefix)
    assert outcomes == {"join:joined": 3, "close:3001": 1}
    assert close_codes({"3001": outcomes["close:3001"]}) == {"3001 slow_consumer": 1}
    timeline = read_timeline(prefix)
    stats = read_stats(prefix)
    counted = sum(second.requests["join"] for second in timeline.seconds.values())
    assert counted == int(stats["WS", "join"]["Request Count"]) == 4  # the rejoin too
    assert max(sum(v.values()) for v in timeline.viewers.values()) == 3
