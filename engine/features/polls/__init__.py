"""Live polls, the first feature built through the seam (engine/core/feature.py): the host
opens a poll, viewers vote once (`vote` frame or HTTP), results go out coalesced per tick,
and the poll closes on the host's word or at its end. docs/polls.md documents it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from msgspec import Meta

from engine.core.errors import ConflictError, NotFoundError
from engine.core.feature import Feature, Frame, FrameCall
from engine.features.polls.api import ROUTES
from engine.features.polls.audit import audit_polls
from engine.features.polls.store import MAX_OPTIONS, NAME, POLL_ID_RE, PollStore
from engine.features.polls.view import PollsView
from engine.realtime.protocol import ClientFrame, RequestId
from engine.store.scripts import Scripts


def _service(node: Any) -> PollStore:
    return PollStore(node.redis, node.scripts, node.settings.stream_maxlen)


class Vote(ClientFrame, tag="vote", frozen=True):
    """A viewer's vote: the index of one of the poll's options (docs/polls.md)."""

    poll: Annotated[str, Meta(pattern=rf"^{POLL_ID_RE.pattern}\Z")]
    option: Annotated[int, Meta(ge=0, le=MAX_OPTIONS - 1)]
    id: RequestId | None = None


async def _vote(store: PollStore, call: FrameCall) -> dict[str, Any]:
    vote: Vote = call.message
    return await store.vote(call.room, vote.poll, call.author.user, vote.option)


async def _sweep(store: PollStore, rooms: list[str], now: int) -> int:
    return await store.sweep(rooms, now)


async def _report(redis: Any, room: str) -> list[dict[str, Any]]:
    """The post-live report's `polls`: every poll of the show with its final counts."""
    return [poll.to_wire() for poll in await PollStore(redis, Scripts(), 0).list(room)]


FEATURE = Feature(
    name=NAME,
    service=_service,
    routes=ROUTES,
    frames=(Frame(Vote, _vote),),
    entry_kinds=("poll_",),
    room_view=PollsView,
    sweep=_sweep,
    audit=audit_polls,
    report=_report,
    errors={
        "poll_not_found": NotFoundError,
        "poll_closed": ConflictError,
        "already_voted": ConflictError,
        "poll_exists": ConflictError,
    },
    web=Path(__file__).resolve().parent / "static",
)
