"""Poll routes: the host opens and closes polls; readers list and read them; a signed-in
viewer votes (as with the `vote` frame). docs/polls.md has the bodies and the errors."""

from __future__ import annotations

from typing import Any, cast

from starlette.routing import Route

from engine.features.polls.store import NAME, Ballot, PollStore, PollTerms, check_poll_id
from engine.server.api.base import HOSTS, SIGNED_IN, Call, route


def polls_of(call: Call) -> PollStore:
    return cast(PollStore, call.node.service(NAME))


def _poll_id(call: Call) -> str:
    return check_poll_id(call.request.path_params["poll"])


@route("/api/rooms/{room}/polls", ["GET"])
async def list_polls(call: Call) -> Any:
    await call.load_room()
    return {"polls": [poll.to_wire() for poll in await polls_of(call).list(call.room)]}


@route("/api/rooms/{room}/polls", ["POST"], roles=HOSTS, status=201)
async def open_poll(call: Call) -> Any:
    """Open a poll: question, options (2-6), duration_s (10-3600, default 60), changeable."""
    await call.load_room()
    poll = await polls_of(call).open(call.room, await call.decode(PollTerms))
    call.node.meter.mark(call.room, NAME, f"Poll: {poll.question}")
    return poll.to_wire()


@route("/api/rooms/{room}/polls/{poll}", ["GET"])
async def get_poll(call: Call) -> Any:
    await call.load_room()
    return (await polls_of(call).get(call.room, _poll_id(call))).to_wire()


@route("/api/rooms/{room}/polls/{poll}/close", ["POST"], roles=HOSTS)
async def close_poll(call: Call) -> Any:
    closed = await polls_of(call).close(call.room, _poll_id(call))
    assert closed is not None  # the host's close either closes or raises
    return closed.to_wire()


@route("/api/rooms/{room}/polls/{poll}/votes", ["POST"], roles=SIGNED_IN)
async def vote(call: Call) -> Any:
    ballot = await call.decode(Ballot)
    assert call.claims is not None
    return await polls_of(call).vote(call.room, _poll_id(call), call.claims.user, ballot.option)


ROUTES: list[Route] = [list_polls, open_poll, get_poll, close_poll, vote]
