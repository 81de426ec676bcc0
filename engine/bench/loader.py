"""The load process of `livecart bench fanout`: thousands of lean viewers in one process.

Driven over stdin/stdout with one JSON object per line, so the orchestrator can keep it
on its own core. Commands:
  {"cmd": "connect", "host", "port", "path", "viewers", "posters", "mode": "engine"|"raw"}
  {"cmd": "post", "rate": R, "seconds": S}       -> comments at R/s, then drain and report
  {"cmd": "flood", "seconds": S}                 -> posters post back-to-back, report
  {"cmd": "count", "seconds": S}                 -> just count received frames (raw server)
  {"cmd": "grab"/"claim", "target", "attempts", "at_ms", "cpu_pids"} -> the rush on a sale
                                                  or a coupon drop, timed per tap
  {"cmd": "burst", "target", "at_ms", "clock", "cpu_pids", "others"} -> one tap per viewer at the
                                                  sale's start (engine/bench/rush.py)
  {"cmd": "close"} / {"cmd": "quit"}
Every viewer checks every tick's `seq` (a gap or repeat is counted), counts comments and
`sampled_out`, and every tenth viewer records end-to-end latency from the poster's clock
(embedded in the comment text) to its own receipt. Frames are built and read with
`clients.core` (msgpack codec, hello, `tick_seq`); the per-frame loop stays inline.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from clients.core import MSGPACK, hello, tick_seq
from engine.bench.leanws import LeanConnection, open_connection
from engine.bench.rush import burst, grab_rush
from engine.bench.stats import percentiles
from engine.core.collector import pace_for_connections
from engine.core.identity import Role
from engine.core.loop import run_event_loop
from engine.rooms import auth

LATENCY_SAMPLE_EVERY = 10
POSTER_INTERVAL_S = 1 / 15


@dataclass
class Viewer:
    seq: int = -1
    comments: int = 0
    sampled_out: int = 0
    gaps: int = 0
    welcomed: asyncio.Future[None] | None = None


@dataclass(frozen=True, slots=True)
class TickSummary:
    """What one broadcast tick carried; every viewer of the room got the same bytes."""

    payload: bytes
    comments: int
    sampled_out: int
    sent_at_ms: tuple[float, ...]


def summarize(payload: bytes) -> TickSummary:
    message = MSGPACK.decode(payload)
    comments = [e for e in message.get("entries", ()) if e["kind"] == "comment"]
    sent = tuple(
        float(e["text"][1:].split(" ", 1)[0]) for e in comments if e["text"].startswith("t")
    )
    return TickSummary(payload, len(comments), message.get("sampled_out", 0), sent)


@dataclass
class Load:
    conns: list[LeanConnection] = field(default_factory=list)
    viewers: list[Viewer] = field(default_factory=list)
    posters: int = 0
    check_seq: bool = True
    acked: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    ack_waiters: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    ticks: dict[int, TickSummary] = field(default_factory=dict)
    sample_tick: bytes = b""
    frame_bytes: int = 0
    frames: int = 0
    # The last grab (or other) ack as the engine encoded it: the echo baseline's reply.
    last_ack: bytes = b""
    # While set (a burst), every ack and error goes to it instead of a waiter.
    on_answer: Callable[[int, dict[str, Any]], None] | None = None

    def on_message(self, conn: LeanConnection, payload: bytes) -> None:
        self.frames += 1
        self.frame_bytes += len(payload)
        seq = tick_seq(payload)
        if seq is None:
            self.on_control(conn, payload)
            return
        viewer = self.viewers[conn.index]
        # clients.core.Session's seq rule, inline: a method call per frame costs this
        # loop measurably, and a tick's offset and entries are not needed here.
        if self.check_seq:
            if viewer.seq >= 0 and seq != viewer.seq + 1:
                viewer.gaps += 1
            viewer.seq = seq
        summary = self.ticks.get(seq)
        if summary is None or summary.payload != payload:
            summary = self.ticks[seq] = summarize(payload)
            if summary.comments:
                self.sample_tick = payload
        viewer.comments += summary.comments
        viewer.sampled_out += summary.sampled_out
        if summary.sent_at_ms and conn.index % LATENCY_SAMPLE_EVERY == 0:
            now_ms = time.time() * 1000
            self.latencies.extend(now_ms - sent for sent in summary.sent_at_ms)

    def on_control(self, conn: LeanConnection, payload: bytes) -> None:
        message = MSGPACK.decode(payload)
        kind = message.get("type")
        if kind == "welcome":
            viewer = self.viewers[conn.index]
            viewer.seq = message["seq"]
            if viewer.welcomed is not None and not viewer.welcomed.done():
                viewer.welcomed.set_result(None)
        elif kind in ("ack", "error", "pong"):
            if kind == "ack":
                self.acked += 1
                self.last_ack = payload
            elif kind == "error":
                self.refused[message["code"]] = self.refused.get(message["code"], 0) + 1
            if self.on_answer is not None and kind != "pong":
                self.on_answer(conn.index, message)
                return
            waiter = self.ack_waiters.pop(conn.index, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def reset_window(self) -> None:
        self.acked = 0
        self.refused = {}
        self.latencies = []
        self.frames = 0
        self.frame_bytes = 0
        for viewer in self.viewers:
            viewer.comments = viewer.sampled_out = viewer.gaps = 0


async def connect(load: Load, cmd: dict[str, Any]) -> dict[str, Any]:
    mode = cmd["mode"]
    count, posters = cmd["viewers"], cmd.get("posters", 0)
    secret = os.environ.get("LIVECART_SECRET", "")
    room = cmd["path"].rsplit("/", 1)[-1]
    # The baseline's viewers do the same work per frame as the engine's (find the seq,
    # match the frame, count); only the seq check is off, its frames are all one copy.
    load.check_seq = mode == "engine"
    handler = load.on_message
    load.viewers = [Viewer() for _ in range(count)]
    load.conns = [None] * count  # type: ignore[list-item]
    load.posters = posters
    failures: list[str] = []
    gate = asyncio.Semaphore(100)

    async def one(index: int) -> None:
        async with gate:
            try:
                conn = await open_connection(
                    cmd["host"],
                    cmd["port"],
                    cmd["path"],
                    MSGPACK.subprotocol,
                    on_message=handler,
                    index=index,
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                failures.append(str(exc))
                return
            load.conns[index] = conn
            if mode == "engine":
                token = None
                if index < posters:
                    token = auth.mint(secret, room=room, role=Role.VIEWER, user=f"poster-{index}")
                viewer = load.viewers[index]
                viewer.welcomed = asyncio.get_running_loop().create_future()
                conn.send(MSGPACK.encode(hello(token)))
                try:
                    await asyncio.wait_for(viewer.welcomed, 30)
                except TimeoutError:
                    failures.append("no welcome")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return {
        "event": "connected",
        "connected": sum(1 for c in load.conns if c is not None),
        "failed": len(failures),
        "failures": failures[:5],
        "seconds": round(time.perf_counter() - started, 2),
    }


async def post(load: Load, rate: float, seconds: float) -> dict[str, Any]:
    """Post `rate` comments per second for `seconds`, round robin over the posters."""
    load.reset_window()
    posted = 0
    started = time.perf_counter()
    step = 0.01
    next_at = started
    while (now := time.perf_counter()) < started + seconds:
        due = int((now - started) * rate) - posted
        for _ in range(max(0, due)):
            conn = load.conns[posted % load.posters]
            text = f"t{time.time() * 1000:.3f} bench comment {posted}"
            conn.send(MSGPACK.encode({"type": "comment", "text": text, "id": str(posted)}))
            posted += 1
        next_at += step
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    window = time.perf_counter() - started
    await _drain(load, posted)
    return _report(load, posted, window)


async def flood(load: Load, seconds: float) -> dict[str, Any]:
    """Every poster posts its next comment as soon as the previous one is answered (at
    most 15 a second each, under the engine's per-connection limit)."""
    load.reset_window()
    posted = 0
    stop_at = time.perf_counter() + seconds
    loop = asyncio.get_running_loop()

    async def poster(index: int) -> None:
        nonlocal posted
        conn = load.conns[index]
        while (now := time.perf_counter()) < stop_at:
            waiter = loop.create_future()
            load.ack_waiters[index] = waiter
            conn.send(MSGPACK.encode({"type": "comment", "text": f"t{time.time() * 1000:.3f}"}))
            posted += 1
            try:
                await asyncio.wait_for(waiter, 5)
            except TimeoutError:
                return
            # Stay under the engine's per-connection frame rate (Limits.messages_per_second).
            await asyncio.sleep(max(0.0, now + POSTER_INTERVAL_S - time.perf_counter()))

    started = time.perf_counter()
    await asyncio.gather(*(poster(i) for i in range(load.posters)))
    window = time.perf_counter() - started
    frames_in_window = load.frames
    await _drain(load, posted)
    report = _report(load, posted, window)
    report["frames_in_window"] = frames_in_window
    return report


async def count(load: Load, seconds: float) -> dict[str, Any]:
    load.reset_window()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    window = time.perf_counter() - started
    return {
        "event": "counted",
        "frames": load.frames,
        "window_s": window,
        "frame_bytes": load.frame_bytes,
        "comments": sum(v.comments for v in load.viewers),
    }


async def _drain(load: Load, posted: int, timeout_s: float = 5.0) -> None:
    """Wait until every viewer accounted for every acknowledged comment (or time out)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        expected = load.acked
        if load.acked + sum(load.refused.values()) >= posted and all(
            v.comments + v.sampled_out >= expected
            for v, c in zip(load.viewers, load.conns, strict=True)
            if c is not None and c.close_code is None
        ):
            return
        await asyncio.sleep(0.05)


def _report(load: Load, posted: int, window: float) -> dict[str, Any]:
    expected = load.acked
    missed = extra = gaps = 0
    for viewer in load.viewers:
        got = viewer.comments + viewer.sampled_out
        missed += max(0, expected - got)
        extra += max(0, got - expected)
        gaps += viewer.gaps
    closes: dict[str, int] = {}
    for conn in load.conns:
        if conn is not None and conn.close_code is not None:
            closes[str(conn.close_code)] = closes.get(str(conn.close_code), 0) + 1
    return {
        "event": "report",
        "posted": posted,
        "acked": load.acked,
        "refused": load.refused,
        "window_s": window,
        "frames": load.frames,
        "frame_bytes": load.frame_bytes,
        "comments_received": sum(v.comments for v in load.viewers),
        "sampled_out": sum(v.sampled_out for v in load.viewers),
        "missed": missed,
        "extra": extra,
        "seq_gaps": gaps,
        "closes": closes,
        "latency_ms": percentiles(load.latencies),
        "latency_samples": len(load.latencies),
        "sample_tick_hex": load.sample_tick.hex(),
    }


async def main() -> None:
    load = Load()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = orjson.loads(line)
        name = cmd["cmd"]
        if name == "connect":
            reply = await connect(load, cmd)
        elif name == "post":
            reply = await post(load, cmd["rate"], cmd["seconds"])
        elif name == "flood":
            reply = await flood(load, cmd["seconds"])
        elif name == "count":
            reply = await count(load, cmd["seconds"])
        elif name in {"grab", "claim"}:
            reply = await grab_rush(
                load,
                cmd["target"],
                cmd["attempts"],
                cmd["at_ms"],
                cmd.get("think_ms", 0),
                cpu_pids=cmd.get("cpu_pids", []),
                kind=name,
            )
        elif name == "burst":
            reply = await burst(load, cmd["target"], cmd["at_ms"], cmd["clock"], cmd["cpu_pids"],
                                others=cmd.get("others", {}))  # fmt: skip
        elif name == "close":
            for conn in load.conns:
                if conn is not None:
                    conn.close()
            await asyncio.sleep(0.5)
            load = Load()
            reply = {"event": "closed"}
        else:
            break
        sys.stdout.write(orjson.dumps(reply).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    pace_for_connections()
    run_event_loop(main())
