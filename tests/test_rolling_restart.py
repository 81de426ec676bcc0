"""`serve --workers N` replaces its workers one at a time on SIGHUP (engine/server/workers.py),
and harms nothing: a real load runs through the restart with no failed request and no
missed tick, and the audit adds up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients import HostClient, ViewerClient
from clients.core import MSGPACK, hello, tick_seq
from engine.bench.leanws import LeanConnection
from engine.core.identity import Role
from engine.core.settings import Settings
from engine.realtime.protocol import CloseCode
from engine.rooms import auth
from engine.server.app import Engine
from engine.server.workers import Supervisor, Worker, reserve_port
from engine.store import keys
from loadtests import show
from loadtests.scenarios import PLANS
from loadtests.swarm import Swarm
from tests.conftest import SECRET, RoomFactory, TwinEngines, eventually, token
from tests.test_workers import serving_workers, workers_of

VIEWERS = 30


class WatchedSwarm(Swarm):
    """The load generator's viewers, also keeping each connection's welcome and tick seqs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seqs: dict[LeanConnection, list[int]] = defaultdict(list)
        self.welcomes: dict[LeanConnection, dict[str, Any]] = {}

    def on_message(self, conn: LeanConnection, payload: bytes) -> None:
        seq = tick_seq(payload)
        if seq is None:
            message = MSGPACK.decode(payload)
            if message.get("type") == "tick":
                seq = int(message["seq"])
            elif message.get("type") == "welcome":
                self.welcomes[conn] = message
        if seq is not None:
            self.seqs[conn].append(seq)
        super().on_message(conn, payload)


def failures(swarm: Swarm) -> dict[str, dict[str, int]]:
    return {f"{k[0]} {k[1]}": s.errors for k, s in swarm.stats.series.items() if s.failures}


def restarted(log: Path) -> bool:
    return "rolling restart done" in log.read_text()


async def test_a_rolling_restart_under_load_drops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVECART_SIMULATED_PSP", "on")  # the viewers pay
    with serving_workers(tmp_path, "--workers", "2", "--data-dir", str(tmp_path / "data")) as (
        process, url, log
    ):  # fmt: skip
        before = workers_of(process.pid)
        assert len(before) == 2, log.read_text()
        room = "rolling-restart"
        host_token = auth.mint(SECRET, room=room, role=Role.HOST, user="host-1")
        async with HostClient(url, room, host_token) as host:
            await host.create_room("a rolling restart under load")
            await host.go_live()
            shop = await show.prepare(host)
            sku = shop.products[0]["skus"][0]["sku"]
            swarm = WatchedSwarm(url, room, host_token, PLANS["full-show"])
            try:
                for index in range(VIEWERS):
                    swarm.spawn(swarm.viewer(index))
                    await asyncio.sleep(0.03)
                await eventually(lambda: swarm.online == VIEWERS, timeout_s=20)
                await host.pin_product(shop.products[0]["id"])  # viewers open its card
                # The drop opens and the sale starts as the first old worker retires (its
                # replacement takes a second or two to start): taps, claims, checkouts and
                # payments are in flight through the restart, as comments and likes are.
                drop = await host.drop_coupons(shop.template, 10, countdown_s=2)
                sale = await host.launch_sale(sku, 10, countdown_s=2, duration_s=60,
                                              hold_s=60, per_user_limit=1)  # fmt: skip
                process.send_signal(signal.SIGHUP)
                await eventually(lambda: restarted(log), timeout_s=45)
                after = workers_of(process.pid)
                # A second sale on the new workers: the load goes on through them.
                second = await host.launch_sale(sku, 5, countdown_s=1, duration_s=60,
                                                hold_s=60, per_user_limit=1)  # fmt: skip
                await eventually(lambda: swarm.online == VIEWERS, timeout_s=20)
                await asyncio.sleep(4)
            finally:
                await swarm.stop()
            await asyncio.sleep(1)  # in-flight callbacks land
            audit = await host.call("GET", f"/api/rooms/{room}/audit")
            sales = [await host.sale(sale["id"]), await host.sale(second["id"])]
            [card] = [d for d in await host.drops() if d["id"] == drop["id"]]
        assert "worker replaced" in log.read_text()

    # Every worker was replaced; nothing else was restarted.
    assert len(after) == 2
    assert not after & before, (before, after)
    assert "worker exited; restarting it" not in log.read_text()

    stats = swarm.stats
    assert failures(swarm) == {}
    # The restart did reach the viewers: those on the old workers were sent 1001 and came
    # back (each close is a reconnection, none a failure); everyone ended joined.
    closes = stats.statuses.get("close", {})
    assert set(closes) == {"1001"}, closes
    # Both workers were replaced: every viewer moved at least once (twice if it came back
    # to the second old worker before that one was replaced).
    moved = closes["1001"]
    assert VIEWERS <= moved <= 2 * VIEWERS
    assert stats.viewers == VIEWERS
    assert "gave_up" not in stats.statuses.get("join", {})
    # The load was real: every kind of request ran, and purchases went through.
    for name in ("WS comment", "WS like", "WS grab", "WS claim", "HTTP checkout", "HTTP pay"):
        kind, _, call = name.partition(" ")
        assert stats.series[(kind, call)].count > 0, name
    assert stats.statuses["grab"].get("reserved", 0) > 0
    assert stats.statuses["pay"].get("paid", 0) > 0

    # Nothing missed: on every connection the ticks came with consecutive seqs from the
    # welcome's; every reconnection resumed with the complete replay.
    assert len(swarm.welcomes) == VIEWERS + moved
    resumed = [w for w in swarm.welcomes.values() if "recovered" in w]
    assert len(resumed) == moved
    assert all(w["recovered"] is True for w in resumed)
    for conn, welcome in swarm.welcomes.items():
        seqs = swarm.seqs[conn]
        assert seqs == list(range(welcome["seq"] + 1, welcome["seq"] + 1 + len(seqs)))
    # Ticks did flow (a connection welcomed just as its worker retired may have none).
    assert sum(len(seqs) > 10 for seqs in swarm.seqs.values()) >= VIEWERS

    assert audit["ok"] is True, audit
    assert audit["oversell"] == 0
    assert audit["double_used_coupons"] == 0
    assert [s["reserved"] + s["sold"] for s in sales] == [10, 5]
    assert card["claimed"] == 10


# ---- the order of a rolling restart, with stand-in worker processes -------------------------

# A stand-in for `python -m engine.server.workers`: ready after a start-up time, then
# serving until SIGHUP/SIGINT/SIGTERM, then exiting after a drain time.
STAND_IN = """
import os, signal, sys, time
stop = []
for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.append(1))
time.sleep(float(sys.argv[1]))
print("ready", os.getpid(), flush=True)
while not stop:
    time.sleep(0.01)
time.sleep(float(sys.argv[2]))
"""


class Recorded(Supervisor):
    """A supervisor whose workers are stand-ins, recording what happens, in order."""

    def __init__(self, settings: Settings, count: int, start_s: float = 0.2) -> None:
        super().__init__(settings, count)
        self.start_s = start_s
        self.events: list[tuple[str, int, int]] = []  # (what, slot, pid)
        self.running: set[int] = set()
        self.accepting: set[int] = set()  # ready and not told to retire
        self.most_running = 0
        self.fewest_accepting: int | None = None  # once all were first ready
        self.slot_of: dict[int, int] = {}

    async def _exec(
        self, settings: Settings, worker: Worker, metrics_name: str
    ) -> asyncio.subprocess.Process:
        assert worker.sock is not None  # the slot's socket is there, kept by the supervisor
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", STAND_IN, str(self.start_s), "0.3",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.slot_of[process.pid] = worker.index
        self.running.add(process.pid)
        self.most_running = max(self.most_running, len(self.running))
        self.events.append(("start", worker.index, process.pid))
        asyncio.get_running_loop().create_task(self._exited(process))
        return process

    async def _exited(self, process: asyncio.subprocess.Process) -> None:
        await process.wait()
        self.running.discard(process.pid)
        self.accepting.discard(process.pid)
        self.events.append(("exit", self.slot_of[process.pid], process.pid))

    async def _await_ready(self, worker: Worker, process: asyncio.subprocess.Process) -> bool:
        ready = await super()._await_ready(worker, process)
        if ready:
            self.accepting.add(process.pid)
            self.events.append(("ready", worker.index, process.pid))
        return ready

    def _retire(self, process: asyncio.subprocess.Process) -> None:
        self.accepting.discard(process.pid)
        fewest = len(self.accepting)
        self.fewest_accepting = min(fewest, self.fewest_accepting or fewest)
        self.events.append(("retire", self.slot_of[process.pid], process.pid))
        super()._retire(process)


@contextlib.asynccontextmanager
async def supervising(workers: int) -> AsyncIterator[Recorded]:
    """A supervisor of `workers` stand-in workers on a reserved port, once all accept; on
    leaving it is stopped, and it must exit 0."""
    holder = reserve_port("127.0.0.1", 0)
    settings = Settings(host="127.0.0.1", port=holder.getsockname()[1], secret=SECRET,
                        redis_url="redis://x")  # fmt: skip
    supervisor = Recorded(settings, workers)
    running = asyncio.create_task(supervisor.supervise(settings))
    try:
        await eventually(lambda: len(supervisor.accepting) == workers)
        yield supervisor
    finally:
        supervisor.stopping.set()
        code = await asyncio.wait_for(running, 30)
        holder.close()
    assert code == 0


async def test_a_rolling_restart_replaces_one_worker_at_a_time() -> None:
    async with supervising(3) as supervisor:
        first = {w.index: w.pid for w in supervisor.workers}
        supervisor.events.clear()
        os.kill(os.getpid(), signal.SIGHUP)  # as an operator would: `kill -HUP <pid>`
        await eventually(lambda: supervisor.restarts == 1, timeout_s=20)
        await eventually(lambda: len(supervisor.running) == 3)
    assert supervisor.running == set()  # every process stopped, none left behind
    # Slot by slot: the replacement starts and is ready before the old worker is told to
    # retire, and the old one has exited before the next slot's replacement starts.
    expected: list[tuple[str, int, int]] = []
    replacements = {}
    for slot in range(3):
        (new,) = [pid for what, s, pid in supervisor.events if what == "start" and s == slot]
        replacements[slot] = new
        expected += [("start", slot, new), ("ready", slot, new), ("retire", slot, first[slot]),
                     ("exit", slot, first[slot])]  # fmt: skip
    assert supervisor.events[: len(expected)] == expected
    assert supervisor.most_running == 4  # at most one worker more than N, at any time
    assert supervisor.fewest_accepting == 3  # and never fewer than N accepting
    assert {w.index: w.pid for w in supervisor.workers} == replacements


async def test_a_sighup_during_a_rolling_restart_asks_for_another() -> None:
    async with supervising(2) as supervisor:
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: len(supervisor.running) == 3)  # the first one is under way
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)  # asks for the same one more
        await eventually(lambda: supervisor.restarts == 2, timeout_s=20)
        await asyncio.sleep(1)
    assert supervisor.restarts == 2
    assert [what for what, _, _ in supervisor.events].count("start") == 2 + 2 * 2
    assert supervisor.most_running == 3


async def test_a_replacement_that_is_not_ready_leaves_the_old_worker_serving() -> None:
    async with supervising(2) as supervisor:
        first = {w.index: w.pid for w in supervisor.workers}
        supervisor.start_s = 99.0  # replacements never get ready...
        restart = asyncio.create_task(supervisor.rolling_restart())
        await eventually(lambda: len(supervisor.running) == 3)
        (new,) = supervisor.running - set(first.values())
        os.kill(new, signal.SIGKILL)  # ...and this one dies starting
        assert await asyncio.wait_for(restart, 20) is False
    assert ("retire", 0, first[0]) not in supervisor.events  # the old one was never retired
    assert supervisor.workers[0].pid == first[0]  # and served on
    assert supervisor.restarts == 0


# ---- going away: what an engine served, it answered --------------------------------------------


async def test_going_away_answers_every_frame_it_served(
    engine: Engine, room: str, host: HostClient, redis: aioredis.Redis
) -> None:
    """A viewer pipelines comments; the engine stops as the first answer arrives. Every
    comment it stored was answered before its 1001, and none it left unanswered was
    stored: so a client sends again, safely, what a 1001 left unanswered."""
    await host.update_room(settings={"comment_rate_max": 0})  # no comment limit
    sent = 30  # within the frame rate's burst (40)
    answered: set[str] = set()
    stopping: asyncio.Task[None] | None = None
    async with connect(f"{engine.ws_url}/{room}") as ws:
        await ws.send(orjson.dumps(hello(token(room, "viewer", "piper"))).decode())
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        for i in range(sent):
            await ws.send(
                orjson.dumps({"type": "comment", "id": f"c{i}", "text": f"n{i}"}).decode()
            )
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = orjson.loads(raw)
                if message["type"] in {"ack", "error"}:
                    assert message["type"] == "ack", message
                    answered.add(message["ref"])
                    if stopping is None:
                        stopping = asyncio.create_task(engine.stop())
        assert ws.close_code == CloseCode.GOING_AWAY
    assert stopping is not None
    await stopping
    entries = await redis.xrange(keys.room_stream(room))
    texts = [orjson.loads(fields[b"d"])["text"] for _, fields in entries
             if fields[b"k"] == b"comment"]  # fmt: skip
    stored = {f"c{text[1:]}" for text in texts}
    assert len(stored) == len(texts)
    assert stored == answered
    assert 0 < len(answered) < sent  # it stopped midway: some were left unserved


async def test_the_sdk_sends_again_what_a_1001_left_unanswered(
    twin_engines: TwinEngines, room_factory: RoomFactory, redis: aioredis.Redis
) -> None:
    """Two engines share one port (as two workers do); the one a viewer is on stops while
    the viewer has comments in flight. The viewer resumes on the other, every comment call
    returns its stored entry, and each comment is stored exactly once."""
    await twin_engines.start(0)
    engines = twin_engines.engines
    stopping: asyncio.Task[None] | None = None
    room = await room_factory(settings={"comment_rate_max": 0})
    viewer = ViewerClient(f"ws://127.0.0.1:{twin_engines.port}/ws", room,
                          token(room, "viewer", "sdk"))  # fmt: skip
    await viewer.connect()  # on the first engine: the only one listening yet
    await twin_engines.start(1)
    sent = 30

    async def comment(i: int) -> dict[str, Any]:
        nonlocal stopping
        entry = await viewer.comment(f"n{i}")
        if stopping is None:  # the first answer: the engine stops, the rest in flight
            stopping = asyncio.create_task(engines[0].stop())
        return entry

    try:
        entries = await asyncio.gather(*(comment(i) for i in range(sent)))
        assert stopping is not None
        await stopping
        assert viewer.close_code == CloseCode.GOING_AWAY
        assert viewer.reconnects == 1
    finally:
        await viewer.close()
    assert sorted(e["text"] for e in entries) == sorted(f"n{i}" for i in range(sent))
    stored = [orjson.loads(fields[b"d"])["text"]
              for _, fields in await redis.xrange(keys.room_stream(room))
              if fields[b"k"] == b"comment"]  # fmt: skip
    assert sorted(stored) == sorted(f"n{i}" for i in range(sent))  # each once
