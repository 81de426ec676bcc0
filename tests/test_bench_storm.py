"""`livecart bench storm` runs end to end: a killed engine's viewers all come back through
its handshake limit, which sheds some of them, and resume without losing or repeating
anything (small numbers: this checks behaviour and accounting, not the machine's speed)."""

from __future__ import annotations

import subprocess
import sys

import orjson

CONTRACT = {
    "viewers", "handshakes_per_s", "join_seconds", "resumed", "recovery_seconds",
    "resume_seconds", "rate_bound_seconds", "ratio_to_join", "shed_handshakes", "missed",
    "gaps", "duplicates", "healthz_ms",
}  # fmt: skip


def test_bench_storm_brings_every_viewer_back_through_the_limit() -> None:
    # 60 viewers against 5 handshakes/s (a burst of 10): the crowd cannot all be let in at
    # once, so the restarted engine must shed some with 503 + Retry-After.
    argv = [sys.executable, "-m", "engine.cli", "bench", "storm", "--viewers", "60",
            "--handshakes-per-s", "5", "--outage-s", "1", "--comments", "3", "--json"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = orjson.loads(done.stdout)
    assert set(result) == CONTRACT
    assert result["resumed"] == 60
    assert (result["missed"], result["duplicates"], result["gaps"]) == (0, 0, 0)
    assert result["shed_handshakes"] > 0
    assert result["rate_bound_seconds"] == 10.0  # (60 - 10) / 5
    assert set(result["healthz_ms"]) == {"p50", "p95", "p99"}
