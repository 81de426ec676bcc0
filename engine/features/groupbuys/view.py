"""What one process shows of a room's group buys: every deal with its teams, for welcomes
(a joining viewer sees them without asking the HTTP API). Ticks carry nothing of them: the
room log's entries (`groupbuy_opened`, `team_*`) tell pages of each change, and mark the
list to be read again before the next welcome."""

from __future__ import annotations

from typing import Any

from engine.features.groupbuys.store import GroupBuys


class GroupBuysView:
    def __init__(self, store: GroupBuys, room: str) -> None:
        self.store = store
        self.room = room
        self.deals: list[dict[str, Any]] = []
        self.stale = True  # read the deals before the next welcome

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "groupbuy_opened" or kind.startswith("team_"):
            self.stale = True

    async def refresh(self) -> None:
        if self.stale:
            self.stale = False
            deals = await self.store.list(self.room)
            self.deals = [await self.store.deal_wire(self.room, deal) for deal in deals]

    async def poll(self) -> None:
        """Nothing to read once per sync: the deals are read only before a welcome."""

    def welcome(self) -> list[dict[str, Any]]:
        return self.deals

    def take_changes(self) -> None:
        return None
