"""Auction routes: the host opens, ends and re-offers auctions; anyone reads them; a
signed-in viewer bids (also possible over the WebSocket, `bid` frames)."""

from __future__ import annotations

from typing import Any, cast

from starlette.routing import Route

from engine.features.auctions.frames import BidBody
from engine.features.auctions.store import NAME, AuctionStore, AuctionTerms, check_auction_id
from engine.server.api.base import HOSTS, SIGNED_IN, Call, route
from engine.store.meter import MarkerKind


def auctions_of(call: Call) -> AuctionStore:
    return cast(AuctionStore, call.node.service(NAME))


def _auction_id(call: Call) -> str:
    return check_auction_id(call.request.path_params["auction"])


@route("/api/rooms/{room}/auctions", ["GET"])
async def list_auctions(call: Call) -> Any:
    await call.load_room()
    return {"auctions": [a.to_wire() for a in await auctions_of(call).list(call.room)]}


@route("/api/rooms/{room}/auctions", ["POST"], roles=HOSTS, status=201)
async def open_auction(call: Call) -> Any:
    """Open an auction: sku, start_price, duration_s, mode, extend_s, increments."""
    await call.node.rooms.get(call.room)
    auction = await auctions_of(call).create(call.room, await call.decode(AuctionTerms))
    call.node.meter.mark(call.room, MarkerKind.AUCTION, f"Auction: {auction.title}")
    return auction.to_wire()


@route("/api/rooms/{room}/auctions/{auction}", ["GET"])
async def get_auction(call: Call) -> Any:
    return (await auctions_of(call).get(call.room, _auction_id(call))).to_wire()


@route("/api/rooms/{room}/auctions/{auction}/bids", ["POST"], roles=SIGNED_IN)
async def place_bid(call: Call) -> Any:
    body = await call.decode(BidBody)
    return await auctions_of(call).bid(
        call.room, _auction_id(call), call.author(), body.amount, body.max
    )


@route("/api/rooms/{room}/auctions/{auction}/close", ["POST"], roles=HOSTS)
async def close_auction(call: Call) -> Any:
    """End the auction now (its leader wins)."""
    return (await auctions_of(call).close(call.room, _auction_id(call), now=True)).to_wire()


@route("/api/rooms/{room}/auctions/{auction}/offer", ["POST"], roles=HOSTS)
async def offer_runner_up(call: Call) -> Any:
    """Second chance: offer the lot to the runner-up once the last offer lapsed."""
    return (await auctions_of(call).offer_runner_up(call.room, _auction_id(call))).to_wire()


ROUTES: list[Route] = [
    list_auctions, open_auction, get_auction, place_bid, close_auction, offer_runner_up,
]  # fmt: skip
