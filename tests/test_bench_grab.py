"""`livecart bench grab --burst` and `--workers`: every tap answered exactly once, nothing
oversold, the baselines and the engine's CPU measured in the same run (small numbers:
behaviour and accounting, not the machine's speed); and the /proc readings they use."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest

from engine import cli
from engine.bench.grab import machine_figures
from engine.bench.rush import Tally
from engine.bench.stats import connections_per_process, cpu_seconds, process_tree
from tests.test_bench_commerce import LATENCY, bench

BURST = {"taps", "answered", "duplicates", "all_answered_ms", "latency_ms", "statuses",
         "error_codes", "oversell", "audit_ok", "engine_cpu_us_per_grab",
         "raw_ws_echo_all_answered_ms", "raw_ws_echo_latency_ms", "cpu_ms", "cores",
         "cores_busy"}  # fmt: skip


def check_burst(report: dict[str, object], viewers: int, stock: int) -> dict[str, object]:
    burst = report["burst"]
    assert isinstance(burst, dict)
    assert set(burst) >= BURST
    assert burst["taps"] == burst["answered"] == report["attempts"] == viewers
    assert (burst["duplicates"], burst["error_codes"]) == (0, {})
    assert burst["statuses"] == {"reserved": stock, "sold_out": viewers - stock}
    assert (burst["oversell"], burst["audit_ok"]) == (0, True)
    assert (report["oversell"], report["audit_ok"], report["reserved"]) == (0, True, stock)
    assert set(burst["latency_ms"]) == LATENCY
    # The last answer came after every tap's own round trip.
    assert burst["all_answered_ms"] >= burst["latency_ms"]["p99"] > 0
    assert burst["engine_cpu_us_per_grab"] == report["engine_cpu_us_per_grab"] > 0
    echo = report["raw_ws_echo"]
    assert isinstance(echo, dict)
    assert echo["answered"] == viewers
    assert echo["all_answered_ms"] == burst["raw_ws_echo_all_answered_ms"] > 0
    # /proc counts CPU time in 10 ms ticks: a few dozen echoes may cost less than one.
    assert isinstance(echo["cpu_us_per_answer"], float)
    assert echo["cpu_us_per_answer"] >= 0
    # The machine's share: the engine's CPU as above, the embedded Redis's and the load's.
    cpu_ms = burst["cpu_ms"]
    assert isinstance(cpu_ms, dict)
    assert set(cpu_ms) == {"engine", "redis", "load"}
    assert all(ms > 0 for ms in cpu_ms.values())
    assert burst["cores"] == os.cpu_count()
    assert 0 < burst["cores_busy"] <= 1.5  # about <= 1: the clocks and the window are read apart
    return burst


def test_a_burst_answers_every_tap_once() -> None:
    report = bench("grab", "--burst", "--viewers", "60", "--stock", "20")
    check_burst(report, 60, 20)
    assert report["raw_ws_echo_per_second"] > 0
    assert report["ratio_to_raw_echo"] > 0
    assert report["ratio_to_raw"] > 0
    assert (report["engine_workers"], report["viewers_per_worker"]) == (1, [60])


def test_a_burst_spreads_over_two_workers() -> None:
    report = bench("grab", "--burst", "--viewers", "60", "--stock", "20", "--workers", "2")
    check_burst(report, 60, 20)
    assert report["engine_workers"] == 2
    spread = report["viewers_per_worker"]
    assert sum(spread) == 60
    assert len(spread) == 2
    assert min(spread) > 0  # the kernel's hash over 60 connections: never all on one


@pytest.mark.parametrize("args", [("--workers", "0"), ("--workers", "two")])
def test_workers_are_validated(args: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["bench", "grab", *args])
    assert exited.value.code == 2
    assert "argument --workers: must be a whole number" in capsys.readouterr().err


def test_burst_defaults() -> None:
    args = cli.build_parser().parse_args(["bench", "grab"])
    assert (args.burst, args.workers) == (False, 1)
    assert cli.build_parser().parse_args(["bench", "grab", "--burst"]).burst is True


async def test_a_second_answer_to_a_tap_is_a_duplicate() -> None:
    tally = Tally(2, [os.getpid()], asyncio.get_running_loop().create_future())
    sold_out = {"type": "ack", "result": {"status": "sold_out"}}
    tally.on_answer(0, {"type": "ack", "result": {"status": "reserved", "quantity": 1}})
    tally.on_answer(0, sold_out)
    assert not tally.done.done()
    tally.on_answer(1, {"type": "error", "code": "rate_limited"})
    assert tally.done.done()
    tally.on_answer(1, sold_out)
    assert (tally.answered, tally.duplicates, tally.reserved_units) == (2, 2, 1)
    assert (dict(tally.statuses), dict(tally.errors)) == ({"reserved": 1}, {"rate_limited": 1})
    assert len(tally.latencies_ms()) == 2
    assert tally.cpu_end > 0
    assert set(tally.others_end) == {"load"}  # no other process named: this one's own CPU


def test_machine_figures_weigh_every_process_against_the_cores() -> None:
    rush = {"cpu_s": 0.3, "others_cpu_s": {"redis": 0.05, "load": 0.1}, "window_s": 0.25}
    figures = machine_figures(rush)
    assert figures["cpu_ms"] == {"engine": 300.0, "redis": 50.0, "load": 100.0}
    assert figures["cores_busy"] == round(0.45 / ((os.cpu_count() or 1) * 0.25), 3)


def test_cpu_seconds_count_every_thread_finely() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.thread_time() + 0.02
    while time.thread_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.02


def test_process_tree_and_connections_per_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_tree(os.getpid())[0] == os.getpid()
        assert child.pid in process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            assert connections_per_process([os.getpid()], port) == [3]
        finally:
            for sock in clients + accepted:
                sock.close()
