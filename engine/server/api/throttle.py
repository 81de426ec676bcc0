"""A rate limit on viewers' HTTP writes (bids, claims, giveaway entries, team joins,
checkouts, share links...): each room and user takes tokens from one bucket at the rate
and burst of a WebSocket connection's frames (`Limits.messages_per_second`,
`message_burst`), so a loop over HTTP is held to what the socket allows. Hosts and
moderators are not limited. Per engine process, like the socket's limit.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from engine.core.errors import RateLimitedError
from engine.core.settings import Limits
from engine.realtime.protocol import ConnectionGuard

# Callers remembered at once; beyond, the longest idle are forgotten (a forgotten caller
# starts again with a full bucket, as a new connection would).
MAX_CALLERS = 100_000


class CallerRate:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.buckets: OrderedDict[tuple[str, str], ConnectionGuard] = OrderedDict()

    def admit(self, room: str, user: str, now: float | None = None) -> None:
        """Take a token for one write of `user` in `room`, or raise `rate_limited`."""
        now = time.monotonic() if now is None else now
        key = (room, user)
        bucket = self.buckets.pop(key, None)
        if bucket is None:
            bucket = ConnectionGuard(self.limits, now)
            while len(self.buckets) >= MAX_CALLERS:
                self.buckets.popitem(last=False)
        self.buckets[key] = bucket  # the most recently used last
        if not bucket.admit(now):
            retry_after_ms = bucket.retry_after_ms()
            raise RateLimitedError(
                "too many requests; slow down",
                code="rate_limited",
                details={"retry_after_ms": retry_after_ms},
            )


def retry_after_header(error: RateLimitedError) -> str:
    """Whole seconds for `Retry-After`, rounded up from `details.retry_after_ms`."""
    return str(max(1, math.ceil(int(error.details.get("retry_after_ms", 1000)) / 1000)))
