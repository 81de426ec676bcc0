"""The JSON HTTP API for hosts and moderators (docs/api.md), one module per area."""

from __future__ import annotations

from starlette.routing import Route

from engine.api import catalog, moderation, rooms, sales
from engine.api.base import OrjsonResponse, node_of

ROUTES: list[Route] = [*rooms.ROUTES, *moderation.ROUTES, *catalog.ROUTES, *sales.ROUTES]

__all__ = ["ROUTES", "OrjsonResponse", "node_of"]
