"""What one process shows of a room's giveaways: the open ones, for welcomes. They are read
again before the next welcome after a `giveaway_opened` entry (so `entrants_count` may be
behind: `GET …/giveaways/{g}` has the live count), and a `giveaway_closed` entry ends one.
Ticks carry nothing of them: viewers follow the entries."""

from __future__ import annotations

from typing import Any

from engine.features.giveaways.model import GiveawayState
from engine.features.giveaways.store import GiveawayStore


class GiveawaysView:
    def __init__(self, store: GiveawayStore, room: str) -> None:
        self.store = store
        self.room = room
        self.open: dict[str, dict[str, Any]] = {}  # id -> the giveaway's API object
        self.stale = True  # read the open giveaways before the next welcome

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "giveaway_opened":
            self.stale = True
        elif kind == "giveaway_closed":
            self.open.pop(ref, None)

    async def refresh(self) -> None:
        if self.stale:
            self.stale = False
            giveaways = await self.store.list(self.room)
            self.open = {g.id: g.to_wire() for g in giveaways if g.state is GiveawayState.OPEN}

    async def poll(self) -> None:
        """Nothing to read between welcomes: the entries carry every change viewers see."""

    def welcome(self) -> list[dict[str, Any]]:
        return list(self.open.values())

    def take_changes(self) -> None:
        return None
