"""A bid as it arrives: the `bid` frame (docs/protocol.md § `bid`) and the body of the bid
route (docs/api.md § Auctions), decoded and validated by one rule set: an amount in minor
units, and an optional proxy `max` of at least the amount."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from engine.core.errors import ForbiddenError
from engine.core.feature import FrameCall
from engine.core.fields import invalid_field
from engine.features.auctions.rules import MAX_PRICE
from engine.features.auctions.store import AUCTION_ID_RE, AuctionStore
from engine.realtime.protocol import ClientFrame, RequestId

MAX_BID = MAX_PRICE

# Patterns end in `\Z`: msgspec searches them, and `$` would let a final newline through.
AuctionId = Annotated[str, Meta(pattern=rf"^{AUCTION_ID_RE.pattern}\Z")]
Amount = Annotated[int, Meta(ge=1, le=MAX_BID)]


def check_max(amount: int, max_amount: int | None) -> None:
    """A proxy maximum below the amount bid is refused (a rule across the two fields)."""
    if max_amount is not None and max_amount < amount:
        raise invalid_field("max", f"must be between the amount and {MAX_BID}")


class Bid(ClientFrame, tag="bid", frozen=True):
    """Bid `amount` (minor units) on an auction, with an optional proxy `max`."""

    auction: AuctionId
    amount: Amount
    max: Amount | None = None
    id: RequestId | None = None

    def __post_init__(self) -> None:
        check_max(self.amount, self.max)


class BidBody(Struct, frozen=True, forbid_unknown_fields=False):
    """The body of `POST …/auctions/{auction}/bids`: the frame's fields but the auction."""

    amount: Amount
    max: Amount | None = None

    def __post_init__(self) -> None:
        check_max(self.amount, self.max)


async def handle_bid(store: AuctionStore, call: FrameCall) -> dict[str, Any]:
    """A `bid` frame: the bid's answer for the ack."""
    if not call.author.role.can_comment:  # its own words (docs/protocol.md § `bid`)
        raise ForbiddenError("sign in to bid", code="forbidden")
    bid: Bid = call.message
    return await store.bid(call.room, bid.auction, call.author, bid.amount, bid.max)
