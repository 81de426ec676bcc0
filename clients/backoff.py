"""Jittered exponential backoff ("full jitter"): after the n-th failure wait a uniformly
random time in [0, min(cap, base * 2**n)]. Randomness spreads a reconnection storm
(thousands of viewers dropped at once) over the whole window instead of synchronising it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_s: float = 0.25
    cap_s: float = 15.0
    max_attempts: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Delay before the next attempt; raises StopIteration when attempts are used up."""
        if self.max_attempts is not None and self.attempt >= self.max_attempts:
            raise StopIteration("reconnect attempts exhausted")
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
