"""The engine's wall clock in epoch milliseconds (sale windows, deadlines, ticks' `t`).
Scripts that decide on time read Redis's clock instead (engine/store/lua/_now.lua)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
