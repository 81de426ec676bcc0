"""The JSON HTTP API (docs/api.md), one module per area."""

from __future__ import annotations

from starlette.routing import Route

from engine.server.api import (
    audit,
    catalog,
    coupons,
    customers,
    dashboard,
    images,
    ledger,
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
    *customers.ROUTES,
    *referrals.ROUTES, *reminders.ROUTES, *reports.ROUTES, *images.ROUTES,
    *ledger.ROUTES,
]  # fmt: skip

__all__ = ["ROUTES", "OrjsonResponse", "node_of"]
