"""The garbage collector's pace in an engine process (engine/core/collector.py): set by the
engine's entry point, in a process of its own (a test process keeps its own pace)."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.core.collector import ENGINE_THRESHOLDS

PROBE = """
import gc, json
from engine.cli.serve import run_engine
from engine.core.settings import Settings

async def main() -> int:
    return 0

before = gc.get_threshold()
assert run_engine(Settings(), main()) == 0
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count()}))
"""


def test_an_engine_process_runs_at_the_engine_pace_with_its_imports_frozen() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    seen = json.loads(done.stdout)
    assert seen["before"] == [700, 10, 10]  # CPython's default, until the engine starts
    assert seen["after"] == list(ENGINE_THRESHOLDS)
    assert seen["frozen"] > 10_000  # the imported engine, out of every collection's walk
