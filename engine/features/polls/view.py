"""What one process shows of a room's polls: the open polls for welcomes, and their counts
in ticks. Votes land on any process, so the counts are read from Redis once per sync
interval (one round trip for the room's open polls) and go out in the next tick only when
they changed: results coalesced like likes, whatever the vote rate."""

from __future__ import annotations

from typing import Any

from engine.features.polls.store import Poll, PollStore


class PollsView:
    def __init__(self, store: PollStore, room: str) -> None:
        self.store = store
        self.room = room
        self.open: dict[str, Poll] = {}
        self.shown: dict[str, dict[str, Any]] = {}  # results last put in a tick
        self.changes: dict[str, dict[str, Any]] = {}
        self.stale = True  # read the open polls before the next welcome

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        if kind == "poll_opened":
            self.stale = True
            # What every viewer has been shown of it: the counts it opened with.
            self.shown[ref] = {"votes": data["votes"], "total": data["total"], "state": "open"}
        elif kind == "poll_closed":
            self.open.pop(ref, None)
            self.shown.pop(ref, None)
            self.changes.pop(ref, None)  # the entry carries the final counts

    async def refresh(self) -> None:
        if self.stale:
            await self._read()

    async def poll(self) -> None:
        if self.stale or self.open:  # one read either way: nothing to read otherwise
            await self._read()

    async def _read(self) -> None:
        """The room's open polls, and the results that changed since they were shown."""
        self.stale = False
        polls = await self.store.list(self.room, open_only=True)
        self.open = {poll.id: poll for poll in polls}
        for poll in polls:
            results = poll.results()
            shown = self.shown.setdefault(poll.id, results)
            if results != shown:
                self.shown[poll.id] = self.changes[poll.id] = results

    def welcome(self) -> list[dict[str, Any]]:
        return [poll.to_wire() for poll in self.open.values()]

    def take_changes(self) -> dict[str, dict[str, Any]] | None:
        changes, self.changes = self.changes, {}
        return changes or None
