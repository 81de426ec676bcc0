"""Which comments a busy room shows: a per-room display-rate budget, sans-I/O.

Policy (docs/protocol.md, "Comment sampling"):
- host and moderator comments are always shown and do not spend the budget;
- viewer comments spend a token bucket refilled at `display_rate` per second, holding at
  most one second's worth, so a quiet room shows everything and a burst is smoothed;
- when a tick has more viewer comments than tokens, the kept ones are spread evenly
  over the tick's arrivals (every n-th), so the feed stays representative of the tick;
- a viewer always gets their own comment in the `ack` to their post, sampled or not;
- every tick frame says how many comments it left out (`sampled_out`), so clients and
  the benchmark can account for every comment.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.core.identity import Role
from engine.store.roomlog import Entry

_PRIVILEGED = frozenset({Role.HOST.value, Role.MODERATOR.value})


def is_privileged(entry: Entry) -> bool:
    return entry.data.get("role") in _PRIVILEGED


def spread(count: int, keep: int) -> list[int]:
    """`keep` indices spread evenly over range(count)."""
    if keep >= count:
        return list(range(count))
    if keep <= 0:
        return []
    return [(i * count) // keep for i in range(keep)]


class CommentSampler:
    __slots__ = ("_stamp", "_tokens", "rate")

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._stamp = now

    def set_rate(self, rate: int) -> None:
        self.rate = rate
        self._tokens = min(self._tokens, float(rate))

    def select(self, entries: Sequence[Entry], now: float) -> tuple[list[Entry], int]:
        """Entries to broadcast this tick (in log order) and how many comments were left out.
        Non-comment entries (deletions, pins, state changes) are never left out."""
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(float(self.rate), self._tokens + elapsed * self.rate)
        candidates = [i for i, e in enumerate(entries) if e.is_comment and not is_privileged(e)]
        budget = int(self._tokens)
        if len(candidates) <= budget:
            self._tokens -= len(candidates)
            return list(entries), 0
        kept_candidates = {candidates[i] for i in spread(len(candidates), budget)}
        self._tokens -= budget
        dropped = set(candidates) - kept_candidates
        return [e for i, e in enumerate(entries) if i not in dropped], len(dropped)
