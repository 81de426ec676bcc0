"""Share links and referral attribution (issue 9; in progress)."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.comments import Author


class Referrals:
    def __init__(self, redis: Redis, secret: str) -> None:
        self.redis = redis
        self.secret = secret

    async def on_join(self, room: str, author: Author, ref: str) -> None:
        """A viewer joined through a share link carrying `ref`."""
