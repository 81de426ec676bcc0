"""The load process's rushes on a sale (or a coupon drop): `grab_rush`, the sustained
one, where every viewer taps again after each answer, and `burst` (`livecart bench grab
--burst`), where every viewer taps "grab" once, at the sale's start, and never again (no
retry on `sold_out` or on anything else).

The burst's start is the server's: `at_ms` is the sale's `starts_at` on the engine's
clock, and the load process finds its offset to that clock as a viewer would, from a
`ping` and its `pong` (`t`, the server's time when it answered). The viewer page takes the
welcome's `server_time` as "now"; here the pong is taken to be the midpoint of the round
trip, and the shortest of a few round trips is kept, so the offset is off by under half
of it. `clock` "local" skips this (the echo baseline's server has no clock to ask; it
runs on this machine).

The burst's frames are built before the start, so at the start they leave back to back
in one pass over the connections (building and masking thousands of frames then would
spread the taps over tens of milliseconds). Each answer is timed as it is read, not when
a waiting task would resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from clients.core import MSGPACK
from engine.bench.leanws import OP_BINARY, LeanConnection, client_frame
from engine.bench.stats import cpu_by_process, percentiles, total_cpu_seconds

CLOCK_PINGS = 5
ANSWER_TIMEOUT_S = 30.0
# After the last expected answer, listen this much longer: a second answer to a tap
# counts as a duplicate.
DUPLICATE_GRACE_S = 0.25


class Load(Protocol):
    """What a rush uses of the load process's state (engine/bench/loader.py's `Load`)."""

    conns: list[LeanConnection]
    # The next answer (ack, error or pong) on connection i goes to ack_waiters[i] ...
    ack_waiters: dict[int, asyncio.Future[dict[str, Any]]]
    # ... unless on_answer is set: then every ack and error goes to it.
    on_answer: Callable[[int, dict[str, Any]], None] | None
    last_ack: bytes


async def grab_rush(
    load: Load,
    sale: str,
    attempts: int,
    at_ms: float,
    think_ms: float,
    *,
    cpu_pids: list[int],
    kind: str = "grab",
) -> dict[str, Any]:
    """At `at_ms` every viewer starts tapping "grab" (or "claim" a coupon of drop `sale`):
    `attempts` in all, spread evenly, each viewer's next tap `think_ms` after the previous
    answer (a person's tapping pace), with a fresh request id each time. `cpu_s` is the
    CPU time the processes `cpu_pids` used from the first tap to the last answer."""
    target = "sale" if kind == "grab" else "drop"
    viewers = len(load.conns)
    share = [attempts // viewers + (1 if i < attempts % viewers else 0) for i in range(viewers)]
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    reserved_units = 0
    loop = asyncio.get_running_loop()

    async def tap(index: int, taps: int) -> None:
        nonlocal reserved_units
        conn = load.conns[index]
        for n in range(taps):
            waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
            load.ack_waiters[index] = waiter
            started = time.perf_counter()
            conn.send(MSGPACK.encode({"type": kind, target: sale, "id": f"g{index}.{n}"}))
            try:
                reply = await asyncio.wait_for(waiter, 30)
            except TimeoutError:
                errors["timeout"] += 1
                return
            latencies.append((time.perf_counter() - started) * 1000)
            if reply["type"] == "error":
                errors[reply["code"]] += 1
                continue
            result = reply["result"]
            statuses[result["status"]] += 1
            if result["status"] == "reserved":
                reserved_units += result["quantity"]
            elif result["status"] == "claimed":
                reserved_units += 1
            if think_ms:
                await asyncio.sleep(think_ms / 1000)

    await asyncio.sleep(max(0.0, at_ms / 1000 - time.time()))
    cpu_before = total_cpu_seconds(cpu_pids)
    started = time.perf_counter()
    await asyncio.gather(*(tap(i, n) for i, n in enumerate(share)))
    window = time.perf_counter() - started
    cpu_s = total_cpu_seconds(cpu_pids) - cpu_before
    return {
        "event": "grabbed",
        "attempts": attempts,
        "answered": len(latencies),
        "statuses": dict(statuses),
        "errors": dict(errors),
        "reserved_units": reserved_units,
        "window_s": window,
        "latency_ms": percentiles(latencies),
        "cpu_s": cpu_s,
        "answer_hex": load.last_ack.hex(),
    }


async def server_clock_offset(load: Load) -> tuple[float, float]:
    """(the server's clock minus ours, that round trip), in ms, from the shortest of
    CLOCK_PINGS ping/pong round trips on the first connection."""
    conn = load.conns[0]
    loop = asyncio.get_running_loop()
    best_offset, best_rtt = 0.0, math.inf
    for n in range(CLOCK_PINGS):
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        load.ack_waiters[conn.index] = waiter
        sent_ms = time.time() * 1000
        conn.send(MSGPACK.encode({"type": "ping", "id": f"clock{n}"}))
        pong = await asyncio.wait_for(waiter, 10)
        received_ms = time.time() * 1000
        if received_ms - sent_ms < best_rtt:
            best_rtt = received_ms - sent_ms
            best_offset = pong["t"] - (sent_ms + received_ms) / 2
    return best_offset, best_rtt


@dataclass
class Tally:
    """Every viewer's one tap: when it left, when (and how) it was answered."""

    taps: int
    cpu_pids: list[int]
    done: asyncio.Future[None]
    # Processes whose CPU is read too (the Redis server), by name.
    others: dict[str, int] = field(default_factory=dict)
    sent_at: list[float] = field(init=False)
    answered_at: list[float | None] = field(init=False)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    duplicates: int = 0
    reserved_units: int = 0
    last_answer_at: float = 0.0
    cpu_end: float = 0.0
    others_end: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sent_at = [0.0] * self.taps
        self.answered_at = [None] * self.taps

    def on_answer(self, index: int, message: dict[str, Any]) -> None:
        now = time.perf_counter()
        if self.answered_at[index] is not None:
            self.duplicates += 1
            return
        self.answered_at[index] = self.last_answer_at = now
        self.answered += 1
        if message["type"] == "error":
            self.errors[message["code"]] += 1
        else:
            result = message["result"]
            self.statuses[result["status"]] += 1
            if result["status"] == "reserved":
                self.reserved_units += result["quantity"]
        if self.answered == self.taps:
            # The engine's CPU up to the last answer, not up to this task's next turn.
            self.stop_clocks()
            self.done.set_result(None)

    def stop_clocks(self) -> None:
        self.cpu_end = total_cpu_seconds(self.cpu_pids)
        self.others_end = cpu_by_process(self.others)

    def latencies_ms(self) -> list[float]:
        return [
            (answered - sent) * 1000
            for sent, answered in zip(self.sent_at, self.answered_at, strict=True)
            if answered is not None
        ]


async def burst(
    load: Load, sale: str, at_ms: float, clock: str, cpu_pids: list[int], *,
    others: dict[str, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Every viewer taps once at `at_ms` (the server's clock when `clock` is "server").
    The CPU of `cpu_pids` (the server) is measured over the burst, and so are the `others`'
    and this process's: on a machine the load shares, the sum says how busy its cores were."""
    offset_ms, rtt_ms = await server_clock_offset(load) if clock == "server" else (0.0, 0.0)
    conns = load.conns
    frames = [
        client_frame(OP_BINARY, MSGPACK.encode({"type": "grab", "sale": sale, "id": f"b{i}"}))
        for i in range(len(conns))
    ]
    others = others or {}
    tally = Tally(len(conns), cpu_pids, asyncio.get_running_loop().create_future(), others)
    load.on_answer = tally.on_answer
    start_s = (at_ms - offset_ms) / 1000  # the sale's start on this machine's clock
    await asyncio.sleep(max(0.0, start_s - time.time()))
    while time.time() < start_s:  # a loop's timer may fire up to a millisecond early
        pass
    late_ms = (time.time() - start_s) * 1000
    cpu_start = total_cpu_seconds(cpu_pids)
    others_start = cpu_by_process(others)
    first_tap = time.perf_counter()
    for index, conn in enumerate(conns):
        tally.sent_at[index] = time.perf_counter()
        conn.send_frame(frames[index])
    send_ms = (time.perf_counter() - first_tap) * 1000
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(tally.done), ANSWER_TIMEOUT_S)
    if not tally.done.done():
        tally.stop_clocks()
    await asyncio.sleep(DUPLICATE_GRACE_S)
    load.on_answer = None
    window_s = max(tally.last_answer_at - first_tap, 0.0)
    unanswered = tally.taps - tally.answered
    return {
        "event": "burst",
        "attempts": tally.taps,
        "answered": tally.answered,
        "duplicates": tally.duplicates,
        "statuses": dict(tally.statuses),
        "errors": dict(tally.errors) | ({"timeout": unanswered} if unanswered else {}),
        "reserved_units": tally.reserved_units,
        "window_s": window_s,
        "all_answered_ms": round(late_ms + window_s * 1000, 1),
        "latency_ms": percentiles(tally.latencies_ms()),
        "send_ms": round(send_ms, 1),
        "first_tap_late_ms": round(late_ms, 1),
        "clock_offset_ms": round(offset_ms, 1),
        "clock_rtt_ms": round(rtt_ms, 1),
        "cpu_s": tally.cpu_end - cpu_start,
        "others_cpu_s": {
            name: tally.others_end[name] - others_start[name] for name in others_start
        },
        "answer_hex": load.last_ack.hex(),
    }
