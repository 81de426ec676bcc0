"""Risk rules for orders: per-user and per-device order limits, a per-room blocklist of
users and devices, and a value above which an order is flagged for manual review.

The limits and the blocklist are enforced inside the checkout script (engine/lua/
checkout.lua), so concurrent checkouts cannot slip past them; this module holds the
thresholds and manages the blocklist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from msgspec import Struct
from redis.asyncio import Redis

from engine.core.fields import invalid_field
from engine.core.identity import DEVICE_RE
from engine.store import keys
from engine.store.keys import USER_ID_RE
from engine.store.redis_client import texts

BLOCK_KINDS = {"user": "u", "device": "d"}


@dataclass(frozen=True, slots=True)
class RiskRules:
    max_orders_per_user: int = 5
    max_orders_per_device: int = 10
    # Orders whose total (minor units) is at least this are flagged for review.
    review_threshold: int = 100_000

    def needs_review(self, total: int) -> bool:
        return total >= self.review_threshold


class BlockEntry(Struct, frozen=True):
    """A user or a device that may not order in the room (the blocklist routes' body)."""

    kind: Literal["user", "device"]
    id: str

    def __post_init__(self) -> None:
        if self.kind == "user" and not USER_ID_RE.fullmatch(self.id):
            raise invalid_field("id", "1-64 characters of A-Z, a-z, 0-9 and _ . : @ -")
        if self.kind == "device" and not DEVICE_RE.fullmatch(self.id):
            raise invalid_field("id", "8-48 characters of A-Z, a-z, 0-9, '_' and '-'")

    def key(self) -> str:
        """The entry as the checkout script looks it up: "u:<user>" or "d:<device>"."""
        return f"{BLOCK_KINDS[self.kind]}:{self.id}"


class Blocklist:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, room: str, entry: BlockEntry) -> dict[str, list[str]]:
        await self.redis.sadd(keys.blocklist(room), entry.key())
        return await self.list(room)

    async def remove(self, room: str, entry: BlockEntry) -> dict[str, list[str]]:
        await self.redis.srem(keys.blocklist(room), entry.key())
        return await self.list(room)

    async def list(self, room: str) -> dict[str, list[str]]:
        entries = texts(await self.redis.smembers(keys.blocklist(room)))
        return {
            "users": [e[2:] for e in entries if e.startswith("u:")],
            "devices": [e[2:] for e in entries if e.startswith("d:")],
        }
