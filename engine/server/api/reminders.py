"""Reminder routes (engine/social/reminders.py, docs/social.md): a signed-in user subscribes to a
room's reminders, reads or cancels their subscription; hosts and moderators see the
subscriber count and each reminder event."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.core.clock import now_ms
from engine.server.api.base import MODERATORS, SIGNED_IN, Call, route


@route("/api/rooms/{room}/reminders", ["POST"], roles=SIGNED_IN)
async def subscribe(call: Call) -> Any:
    assert call.claims is not None
    await call.node.rooms.get(call.room)
    return await call.node.reminders.subscribe(call.room, call.claims.user, now_ms())


@route("/api/rooms/{room}/reminders", ["DELETE"], roles=SIGNED_IN)
async def unsubscribe(call: Call) -> Any:
    assert call.claims is not None
    await call.node.reminders.unsubscribe(call.room, call.claims.user)


@route("/api/rooms/{room}/reminders/me", ["GET"], roles=SIGNED_IN)
async def my_subscription(call: Call) -> Any:
    assert call.claims is not None
    return await call.node.reminders.subscription(call.room, call.claims.user)


@route("/api/rooms/{room}/reminders", ["GET"], roles=MODERATORS)
async def reminders(call: Call) -> Any:
    await call.node.rooms.get(call.room)
    return await call.node.reminders.status(call.room)


ROUTES: list[Route] = [subscribe, unsubscribe, my_subscription, reminders]
