"""Comment-to-buy settings: the host turns it on and sets the buy keyword and product
keywords (docs/comment-to-buy.md). Buying itself happens in comments over the WebSocket."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.server.api.base import HOSTS, Call, route


@route("/api/rooms/{room}/comment-to-buy", ["GET"], roles=HOSTS)
async def get_comment_buy(call: Call) -> Any:
    await call.node.rooms.get(call.room)
    return (await call.node.comment_buy.load_config(call.room)).to_wire()


@route("/api/rooms/{room}/comment-to-buy", ["PUT"], roles=HOSTS)
async def put_comment_buy(call: Call) -> Any:
    """Replace the settings: enabled, keyword, keywords (product keyword -> product id)."""
    await call.node.rooms.get(call.room)
    return (await call.node.comment_buy.save_config(call.room, await call.json())).to_wire()


ROUTES: list[Route] = [get_comment_buy, put_comment_buy]
