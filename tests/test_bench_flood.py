"""`livecart bench flood` runs end to end: flooders are cut off at their error budget and
connect again, fresh viewers keep joining, and every figure is reported (small numbers:
this checks behaviour and accounting, not the machine's speed)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from engine.core.settings import Limits

CONTRACT = {
    "flooders", "seconds", "idle_join_ms", "join_ms", "joins_under_flood", "joins_failed",
    "ratio_to_idle", "rss_idle_mib", "rss_peak_mib", "rss_growth_mib", "frames_sent",
    "closed_3502", "connect_failures", "most_received", "connections",
}  # fmt: skip


def test_bench_flood_cuts_every_flooder_off_at_its_budget() -> None:
    argv = [sys.executable, "-m", "engine.cli", "bench", "flood", "--flooders", "3",
            "--seconds", "3", "--probes", "2", "--json"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = orjson.loads(done.stdout)
    assert set(result) == CONTRACT
    assert result["flooders"] == 3
    assert result["closed_3502"] >= 3  # each flooder was cut off at least once
    # Error frames stop at the budget (+ the one that spends it); a tick or two may come too.
    assert Limits().max_errors + 1 <= result["most_received"] <= Limits().max_errors + 10
    assert result["joins_under_flood"] > 0
    assert set(result["join_ms"]) == {"p50", "max"}
    assert result["frames_sent"] > 0
