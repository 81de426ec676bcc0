"""How often a sale's stock goes out in ticks while it is being grabbed.

A tick's `stock` goes to every viewer of the room. During a flash sale's rush the counters
change at every poll (`sync_ms`), so every tick would carry them: at 5,000 viewers that is
5,000 more sends each 100 ms, as many as the grab answers themselves, competing with them
for the one core that answers the rush. While a sale is being grabbed on this process its
counters go out at most once per `RUSH_STOCK_MS`; a change of its `state` (live, sold out,
ended) still goes out in the next tick, and outside a rush every change does, as before
(docs/protocol.md § Sale stock in ticks). The grab's answer is what a buyer goes by; the
counters are for display.
"""

from __future__ import annotations

from typing import Any

RUSH_STOCK_MS = 500  # a rushed sale's counters in ticks: at most twice a second
RUSH_QUIET_S = 1.0  # a sale not grabbed on this process for this long is not rushed


class StockPace:
    """Whether a sale's changed stock goes in the next tick (pure; the clock is passed in)."""

    __slots__ = ("_sent_at",)

    def __init__(self) -> None:
        self._sent_at: dict[str, float] = {}  # sale id -> when its stock last went out (s)

    def due(self, sale_id: str, stock: dict[str, Any], shown: dict[str, Any] | None,
            rushed: bool, now: float) -> bool:  # fmt: skip
        """`stock` differs from what was last `shown`: send it now, or wait (rushed)?"""
        if (
            not rushed
            or shown is None
            or stock["state"] != shown["state"]
            or now - self._sent_at.get(sale_id, -1e9) >= RUSH_STOCK_MS / 1000
        ):
            self._sent_at[sale_id] = now
            return True
        return False

    def forget(self, sale_id: str) -> None:
        self._sent_at.pop(sale_id, None)
