"""What one process shows of a room's giveaways: the open ones, for welcomes. They are read
again before the next welcome after a `giveaway_opened` entry (so `entrants_count` may be
behind: `GET …/giveaways/{g}` has the live count), and a `giveaway_closed` entry ends one.
Ticks carry nothing of them: viewers follow the entries. Either entry also makes this
process read the room's open keywords again (GiveawayStore.keywords)."""

from __future__ import annotations

from typing import Any

from engine.core.feature import WelcomeListView
from engine.features.giveaways.model import GiveawayState
from engine.features.giveaways.store import GiveawayStore


class GiveawaysView(WelcomeListView):
    def __init__(self, store: GiveawayStore, room: str) -> None:
        super().__init__(room)
        self.store = store

    async def read(self) -> list[dict[str, Any]]:
        giveaways = await self.store.list(self.room)
        return [g.to_wire() for g in giveaways if g.state is GiveawayState.OPEN]

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "giveaway_opened":
            self.stale = True
        elif kind == "giveaway_closed":
            self.items.pop(ref, None)
        if kind in {"giveaway_opened", "giveaway_closed"}:
            # Opened or closed on any process: this one's comments read the keywords anew
            # before this entry's tick tells a viewer of the change.
            self.store.keywords.forget(self.room)
