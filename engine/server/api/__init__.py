"""The JSON HTTP API (docs/api.md), one module per area."""

from __future__ import annotations

from starlette.routing import Route

from engine.server.api import (
    audit,
    catalog,
    comment_buy,
    coupons,
    dashboard,
    giveaways,
    groupbuys,
    moderation,
    orders,
    payments,
    referrals,
    reminders,
    reports,
    rooms,
    sales,
)
from engine.server.api.base import OrjsonResponse, node_of

ROUTES: list[Route] = [
    *rooms.ROUTES, *moderation.ROUTES, *catalog.ROUTES, *sales.ROUTES, *coupons.ROUTES,
    *orders.ROUTES, *payments.ROUTES, *audit.ROUTES, *dashboard.ROUTES,
    *giveaways.ROUTES, *groupbuys.ROUTES, *referrals.ROUTES,
    *reminders.ROUTES, *comment_buy.ROUTES, *reports.ROUTES,
]  # fmt: skip

__all__ = ["ROUTES", "OrjsonResponse", "node_of"]
