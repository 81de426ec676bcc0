"""Comment-to-buy settings: the host turns it on and sets the buy keyword and product
keywords (docs/comment-to-buy.md). Buying itself happens in comments over the WebSocket."""

from __future__ import annotations

from typing import Any, cast

from starlette.routing import Route

from engine.features.comment_buy.store import NAME, CommentToBuy
from engine.features.comment_buy.syntax import CommentBuySettings
from engine.server.api.base import HOSTS, Call, route


def comment_buy_of(call: Call) -> CommentToBuy:
    return cast(CommentToBuy, call.node.service(NAME))


@route("/api/rooms/{room}/comment-to-buy", ["GET"], roles=HOSTS)
async def get_comment_buy(call: Call) -> Any:
    await call.load_room()
    return (await comment_buy_of(call).load_config(call.room)).to_wire()


@route("/api/rooms/{room}/comment-to-buy", ["PUT"], roles=HOSTS)
async def put_comment_buy(call: Call) -> Any:
    """Replace the settings: enabled, keyword, keywords (product keyword -> product id)."""
    await call.load_room()
    settings = await call.decode(CommentBuySettings)
    return (await comment_buy_of(call).save_config(call.room, settings)).to_wire()


ROUTES: list[Route] = [get_comment_buy, put_comment_buy]
