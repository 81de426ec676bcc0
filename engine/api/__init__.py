"""The JSON HTTP API (docs/api.md), one module per area."""

from __future__ import annotations

from starlette.routing import Route

from engine.api import (
    auctions,
    audit,
    catalog,
    comment_buy,
    coupons,
    dashboard,
    giveaways,
    moderation,
    orders,
    payments,
    rooms,
    sales,
)
from engine.api.base import OrjsonResponse, node_of

ROUTES: list[Route] = [
    *rooms.ROUTES, *moderation.ROUTES, *catalog.ROUTES, *sales.ROUTES, *coupons.ROUTES,
    *orders.ROUTES, *payments.ROUTES, *audit.ROUTES, *dashboard.ROUTES,
    *giveaways.ROUTES, *auctions.ROUTES, *comment_buy.ROUTES,
]  # fmt: skip

__all__ = ["ROUTES", "OrjsonResponse", "node_of"]
