"""What one process shows of a room's auctions: the open ones, as their API objects, for
welcomes. Bids move them in place from their `auction_bid` entries; an opening reloads the
list before the next welcome, a close drops the auction. Ticks carry nothing of their own:
viewers follow an auction through its `auction_*` entries."""

from __future__ import annotations

from typing import Any

from engine.features.auctions.store import AuctionState, AuctionStore

# What an `auction_bid` entry changes in an auction's object.
_BID_FIELDS = ("price", "leader", "leader_name", "bids", "min_bid", "ends_at")


class AuctionsView:
    def __init__(self, store: AuctionStore, room: str) -> None:
        self.store = store
        self.room = room
        self.open: dict[str, dict[str, Any]] = {}
        self.stale = True  # read the open auctions before the next welcome

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "auction_opened":
            self.stale = True
        elif kind == "auction_bid" and ref in self.open:
            self.open[ref].update({k: data[k] for k in _BID_FIELDS if k in data})
        elif kind == "auction_closed":
            self.open.pop(ref, None)

    async def refresh(self) -> None:
        if self.stale:
            self.stale = False
            auctions = await self.store.list(self.room)
            self.open = {a.id: a.to_wire() for a in auctions if a.state is AuctionState.OPEN}

    async def poll(self) -> None:
        """Nothing to read: the room log's entries keep the open auctions current."""

    def welcome(self) -> list[dict[str, Any]]:
        return list(self.open.values())

    def take_changes(self) -> None:
        return None
