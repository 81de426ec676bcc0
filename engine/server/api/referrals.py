"""Share-link routes (engine/social/referrals.py, docs/social.md): a signed-in user gets their
link; anyone reads the invite leaderboard; hosts and moderators see what sharers brought."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.core.fields import invalid_field
from engine.server.api.base import MODERATORS, SIGNED_IN, Call, route
from engine.store.meter import Metric

DEFAULT_LIMIT, MAX_LIMIT = 10, 100


def _limit(call: Call) -> int:
    raw = call.request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LIMIT):
        raise invalid_field("limit", f"an integer between 1 and {MAX_LIMIT}")
    return int(raw)


@route("/api/rooms/{room}/share", ["POST"], roles=SIGNED_IN)
async def share(call: Call) -> Any:
    assert call.claims is not None
    await call.node.rooms.get(call.room)
    link = await call.node.referrals.share(call.room, call.claims.user, call.claims.name)
    call.node.meter.count(call.room, Metric.SHARES)
    return link


@route("/api/rooms/{room}/referrals/leaderboard", ["GET"])
async def leaderboard(call: Call) -> Any:
    await call.load_room()
    return {"leaders": await call.node.referrals.leaderboard(call.room, _limit(call))}


@route("/api/rooms/{room}/referrals", ["GET"], roles=MODERATORS)
async def referrals(call: Call) -> Any:
    await call.node.rooms.get(call.room)
    return await call.node.referrals.report(call.room, _limit(call))


ROUTES: list[Route] = [share, leaderboard, referrals]
