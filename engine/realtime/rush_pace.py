"""How a room's ticks behave while a flash sale (or a coupon drop) is being rushed.

A tick goes to every viewer of the room: at 5,000 viewers one tick is 5,000 socket writes,
as many as the answers to 5,000 taps, and they compete for the one core that answers them.
Two rules keep the answers first (docs/protocol.md § Ticks during a rush):

- **Answers before ticks.** While grabs or claims of the room wait for their answers on
  this process, its next tick waits for them, at most `TICK_HOLD_MS` after the previous
  one; then one tick carries everything that changed meanwhile. In `livecart bench grab
  --burst --viewers 5000 --stock 1000` a tick to 5,000 viewers cost 60-70 ms of the
  engine's one core, and two fell inside the rush: holding them cut engine CPU per
  answered grab from 70-90 to 50-65 µs (docs/architecture.md).
- **A rushed sale's counters at most twice a second** (`StockPace`). During a rush a sale's
  counters change at every poll (`sync_ms`), so every tick would carry them; while it is
  being grabbed on this process its counters go out at most once per `RUSH_STOCK_MS`. A
  change of its `state` (live, sold out, ended) goes in the next tick, and outside a rush
  every change does. The grab's answer is what a buyer goes by; the counters are for
  display.
"""

from __future__ import annotations

from typing import Any

RUSH_STOCK_MS = 500  # a rushed sale's counters in ticks: at most twice a second
RUSH_QUIET_S = 1.0  # a sale not grabbed on this process for this long is not rushed
TICK_HOLD_MS = 500  # the longest a tick waits for the room's pending answers


def tick_waits(answering: bool, since_tick_s: float) -> bool:
    """Whether the room's tick waits this turn: its grabs or claims wait for answers on
    this process (`answering`), and its previous tick went less than TICK_HOLD_MS ago."""
    return answering and since_tick_s < TICK_HOLD_MS / 1000


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
