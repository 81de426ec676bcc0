"""Live auctions, a feature on the seam (engine/core/feature.py): the host auctions one lot
at a time on the server's clock, viewers bid (`bid` frame or HTTP) with optional proxy
maxima, and the winner buys the lot through the usual checkout. docs/auctions.md documents
it: the rules (`rules.py`, sans-I/O), the store and its Lua, and the audit."""

from __future__ import annotations

from typing import Any

from engine.core.feature import Feature, Frame
from engine.features.auctions.api import ROUTES
from engine.features.auctions.audit import audit_auctions
from engine.features.auctions.frames import Bid, handle_bid
from engine.features.auctions.store import NAME, AuctionStore
from engine.features.auctions.view import AuctionsView


def _service(node: Any) -> AuctionStore:
    return AuctionStore(
        node.redis, node.scripts, node.sales, node.stock, log_maxlen=node.settings.stream_maxlen,
        payment_window_ms=node.settings.payment_window_s * 1000, meter=node.meter,
    )  # fmt: skip


async def _sweep(store: AuctionStore, rooms: list[str], now: int) -> int:
    return await store.sweep(rooms, now)


BID_FRAME = Frame(
    Bid,
    handle_bid,
    signed_in=False,  # the handler refuses anonymous viewers in its own words
    ack_without_id=True,  # every bid is answered, as before the seam
    # A bid refused because another landed first, or the clock ran out, is the normal end
    # of a race in a contested auction, not a misbehaving client.
    race_lost=frozenset({"bid_too_low", "auction_closed"}),
)

FEATURE = Feature(
    name=NAME,
    service=_service,
    routes=ROUTES,
    frames=(BID_FRAME,),
    entry_kinds=("auction_",),
    room_view=AuctionsView,
    sweep=_sweep,
    audit=audit_auctions,
)
