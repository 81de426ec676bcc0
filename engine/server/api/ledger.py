"""The books' routes for the room's host: the day's reconciliation with the payment provider,
and fixing one of its exceptions (docs/ledger.md § Reconciliation). Both need the engine's
ledger (`ledger_disabled` without one) and a payment provider (`payments_disabled`)."""

from __future__ import annotations

import datetime
import re
from typing import Any

import asyncpg
from starlette.routing import Route

from engine.core.errors import ConflictError
from engine.core.fields import invalid_field
from engine.ledger.reconcile import LEDGER_DISABLED
from engine.ledger.reconcile_day import reconcile
from engine.ledger.remedies import FixTerms, Remedies
from engine.server.api.base import HOSTS, Call, route

_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _pool(call: Call) -> asyncpg.Pool:
    ledger = call.node.ledger
    if ledger is None or ledger.pool is None:
        raise ConflictError("this engine keeps no books (no ledger database)",
                            code=LEDGER_DISABLED)  # fmt: skip
    return ledger.pool


def _day(call: Call) -> datetime.date:
    """`?date=YYYY-MM-DD`, a UTC day; today's (UTC) when absent."""
    raw = call.request.query_params.get("date")
    if raw is None:
        return datetime.datetime.now(datetime.UTC).date()
    try:
        if not _DAY_RE.fullmatch(raw):
            raise ValueError(raw)
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise invalid_field("date", "a day such as '2026-12-07' (UTC)") from None


@route("/api/rooms/{room}/reconciliation", ["GET"], roles=HOSTS)
async def reconciliation(call: Call) -> Any:
    """The room's exceptions of the day (docs/ledger.md § Reconciliation: the --json shape)."""
    pool = _pool(call)
    remedies = Remedies(call.node.redis, pool, call.node.payments)
    report = await reconcile(call.node.redis, pool, remedies.provider(), _day(call), call.room)
    return report.to_wire()


@route("/api/rooms/{room}/reconciliation/{id}/fix", ["POST"], roles=HOSTS)
async def fix(call: Call) -> Any:
    """Apply one exception's remedy, once: `{"fixed", "id", "adjustment"}`."""
    assert call.claims is not None
    pool = _pool(call)
    terms = await call.decode(FixTerms)
    remedies = Remedies(call.node.redis, pool, call.node.payments)
    return await remedies.fix(str(call.request.path_params["id"]), who=call.claims.user,
                              why=terms.why, room=call.room)  # fmt: skip


ROUTES: list[Route] = [reconciliation, fix]
