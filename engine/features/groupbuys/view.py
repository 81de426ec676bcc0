"""What one process shows of a room's group buys: every deal with its teams, for welcomes
(a joining viewer sees them without asking the HTTP API). Ticks carry nothing of them: the
room log's entries (`groupbuy_opened`, `team_*`) tell pages of each change, and mark the
list to be read again before the next welcome."""

from __future__ import annotations

from typing import Any

from engine.core.feature import WelcomeListView
from engine.features.groupbuys.store import GroupBuys


class GroupBuysView(WelcomeListView):
    def __init__(self, store: GroupBuys, room: str) -> None:
        super().__init__(room)
        self.store = store

    async def read(self) -> list[dict[str, Any]]:
        deals = await self.store.list(self.room)
        return [await self.store.deal_wire(self.room, deal) for deal in deals]

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "groupbuy_opened" or kind.startswith("team_"):
            self.stale = True
