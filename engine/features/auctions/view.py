"""What one process shows of a room's auctions: the open ones, as their API objects, for
welcomes. Bids move them in place from their `auction_bid` entries; an opening reloads the
list before the next welcome, a close drops the auction. Ticks carry nothing of their own:
viewers follow an auction through its `auction_*` entries."""

from __future__ import annotations

from typing import Any

from engine.core.feature import WelcomeListView
from engine.features.auctions.store import AuctionState, AuctionStore

# What an `auction_bid` entry changes in an auction's object.
_BID_FIELDS = ("price", "leader", "leader_name", "bids", "min_bid", "ends_at")


class AuctionsView(WelcomeListView):
    def __init__(self, store: AuctionStore, room: str) -> None:
        super().__init__(room)
        self.store = store

    async def read(self) -> list[dict[str, Any]]:
        auctions = await self.store.list(self.room)
        return [a.to_wire() for a in auctions if a.state is AuctionState.OPEN]

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "auction_opened":
            self.stale = True
        elif kind == "auction_bid" and ref in self.items:
            self.items[ref].update({k: data[k] for k in _BID_FIELDS if k in data})
        elif kind == "auction_closed":
            self.items.pop(ref, None)
