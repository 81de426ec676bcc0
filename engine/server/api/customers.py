"""Customer routes: a shop's buyers across its shows, their RFM scores and tiers, and one
buyer's drill down (engine/ledger/customers.py, docs/ledger.md § Customers and RFM).

Host only: the shop is the room's host, and the host of any of its rooms sees the shop's
customers (spend and orders are the shop's business, not its moderators'). Both read the
books, so an engine without a ledger answers `409 ledger_disabled`; PostgreSQL out of
reach is `503 unavailable`, as Redis is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import msgspec
from msgspec import Meta, Struct
from starlette.routing import Route

from engine.commerce.tiers import Tier
from engine.core.clock import now_ms
from engine.core.errors import ConflictError, NotFoundError, UnavailableError
from engine.core.fields import invalid_field, refused_field
from engine.ledger.customers import Customers, customers, history
from engine.ledger.viewers import copy_room
from engine.server.api.base import HOSTS, Call, route
from engine.store.keys import check_user_id

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
MAX_EPOCH_MS = 2**53


class CustomersQuery(Struct, frozen=True, kw_only=True):
    """The list's query string: `?tier=&limit=&as_of=` (docs/api.md § Customers)."""

    tier: Tier | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    as_of: Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS)] | None = None  # ms; default now


def _query(call: Call) -> CustomersQuery:
    """The query string through its schema: strings converted (`strict=False`), a refused
    value `invalid_field` naming its parameter, as a body's field would be."""
    params = dict(call.request.query_params)
    try:
        return msgspec.convert(params, CustomersQuery, strict=False)
    except msgspec.ValidationError as refusal:
        field, why = refused_field(refusal)
        raise invalid_field(field or "query", why) from None


def ledger_pool(call: Call) -> asyncpg.Pool:
    """The books' connection pool, or `409 ledger_disabled` on an engine that keeps none."""
    ledger = call.node.ledger
    if ledger is None or ledger.pool is None:
        raise ConflictError(
            "this engine keeps no books (no ledger): customers and tiers need them",
            code="ledger_disabled",
        )
    return ledger.pool


@asynccontextmanager
async def ledger_errors() -> AsyncIterator[None]:
    """PostgreSQL out of reach is `503 unavailable` (retry), as Redis is."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise UnavailableError(f"the ledger is unavailable; retry ({type(exc).__name__})") \
            from exc  # fmt: skip


async def _customers(call: Call, as_of: int | None) -> Customers:
    """The room's shop's customers; its watch time copied first, so this show counts now."""
    pool = ledger_pool(call)
    room = await call.load_room()
    now = now_ms()
    async with ledger_errors():
        await copy_room(call.node.redis, pool, room.id, at_ms=now)
        return await customers(pool, room.host, as_of=now if as_of is None else as_of)


@route("/api/rooms/{room}/customers", ["GET"], roles=HOSTS)
async def list_customers(call: Call) -> Any:
    """People per tier, and the customers (of one tier with `tier`), buyers first."""
    query = _query(call)
    found = await _customers(call, query.as_of)
    chosen = [p for p in found.profiles if query.tier is None or p.tier is query.tier]
    return {
        "shop": found.shop, "as_of": found.as_of, "currency": found.currency,
        "tiers": found.counts(), "total": len(chosen),
        "customers": [profile.to_wire() for profile in chosen[: query.limit]],
    }  # fmt: skip


@route("/api/rooms/{room}/customers/{user}", ["GET"], roles=HOSTS)
async def get_customer(call: Call) -> Any:
    """One person's profile, scores and tier, with their orders and shows in the shop."""
    user = check_user_id(call.request.path_params["user"])
    query = _query(call)
    found = await _customers(call, query.as_of)
    profile = found.get(user)
    if profile is None:
        raise NotFoundError(f"{user!r} has neither bought from nor watched this shop",
                            code="customer_not_found")  # fmt: skip
    pool = ledger_pool(call)
    async with ledger_errors():
        seen = await history(pool, found.shop, user, as_of=found.as_of)
    return {"shop": found.shop, "as_of": found.as_of, "currency": found.currency,
            "customer": profile.to_wire(), **seen}  # fmt: skip


ROUTES: list[Route] = [list_customers, get_customer]
