"""What the realtime path uses of the process: a narrow interface, so the hub, the
storefront and the gateway depend on the services they call, not on everything
engine/server/node.py wires (`Node` provides it; mypy checks that it does)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

from redis.asyncio import Redis

from engine.commerce.catalog import Catalog
from engine.commerce.coupons import Coupons
from engine.commerce.sales import SaleStore
from engine.commerce.stock import Stock
from engine.core.feature import Feature
from engine.core.identity import Author
from engine.core.settings import Settings
from engine.rooms.access import Access
from engine.rooms.auth import Claims
from engine.rooms.comments import CommentService
from engine.rooms.moderation import Moderation
from engine.rooms.presence import Presence
from engine.rooms.rooms import RoomSettings
from engine.rooms.watchtime import WatchTime
from engine.social.referrals import Referrals
from engine.store.meter import Meter
from engine.store.roomlog import RoomLog


class RoomServices(Protocol):
    """The services a room's hub and storefront, and the gateway, call."""

    settings: Settings
    redis: Redis
    meter: Meter
    room_log: RoomLog
    comments: CommentService
    moderation: Moderation
    access: Access
    presence: Presence
    watchtime: WatchTime
    catalog: Catalog
    sales: SaleStore
    stock: Stock
    coupons: Coupons
    referrals: Referrals
    features: tuple[Feature, ...]  # engine/core/feature.py
    feature_services: dict[str, Any]

    async def verify_token(self, token: str, room: str) -> Claims: ...

    async def after_comment(self, room: str, author: Author, comment: str) -> None: ...


def wire_limits(settings: Settings, room_settings: RoomSettings) -> dict[str, Any]:
    """The limits a `welcome` reports (docs/protocol.md § Limits, marked ✱), with the
    room's settings except who may join."""
    limits = settings.limits
    return {
        "max_frame_bytes": limits.max_frame_bytes,
        "messages_per_second": limits.messages_per_second,
        "message_burst": limits.message_burst,
        "max_likes_per_frame": limits.max_likes_per_frame,
        "tick_ms": settings.tick_ms,
        **{k: v for k, v in asdict(room_settings).items() if k != "allow_anonymous"},
    }
