"""The audit over HTTP, for hosts: the same report as `livecart audit ROOM`, plus the
figures a load test's verdict needs, for deployments whose Redis the tester cannot reach."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.insights.audit import audit_room
from engine.ledger.compare import compare_room
from engine.server.api.base import HOSTS, Call, route


@route("/api/rooms/{room}/audit", ["GET"], roles=HOSTS)
async def audit(call: Call) -> Any:
    """`{room, ok, checks: [{name, ok, detail}], oversell, double_used_coupons}`; with a
    ledger, the check "ledger matches Redis" too, once the ledger has caught up."""
    report = await audit_room(call.node.redis, call.room)
    ledger = call.node.ledger
    if ledger is not None and ledger.pool is not None:
        problems, fine = await compare_room(call.node.redis, ledger.pool, call.room)
        report.add("ledger matches Redis", problems, fine)
    return {**report.to_wire(), **report.figures}


ROUTES: list[Route] = [audit]
