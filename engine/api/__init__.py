"""The JSON HTTP API (docs/api.md), one module per area."""

from __future__ import annotations

from starlette.routing import Route

from engine.api import (
    audit,
    catalog,
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
    *giveaways.ROUTES,
]  # fmt: skip

__all__ = ["ROUTES", "OrjsonResponse", "node_of"]
