"""The audit over HTTP, for hosts: the same report as `livecart audit ROOM`, plus the
figures a load test's verdict needs, for deployments whose Redis the tester cannot reach."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.insights.audit import audit_room
from engine.server.api.base import HOSTS, Call, route


@route("/api/rooms/{room}/audit", ["GET"], roles=HOSTS)
async def audit(call: Call) -> Any:
    """`{room, ok, checks: [{name, ok, detail}], oversell, double_used_coupons}`."""
    report = await audit_room(call.node.redis, call.room)
    return {**report.to_wire(), **report.figures}


ROUTES: list[Route] = [audit]
