"""Live polls in Redis: the host opens a poll (a question, 2-6 options, a duration),
viewers vote once each (or change their vote until it closes, if the host allows), and the
poll closes when the host says or at its end (the sweeper). Each change is one Lua script:
`lua/poll_open.lua`, `lua/poll_vote.lua`, `lua/poll_close.lua`.

Keys (engine/store/keys.py `feature`, all under the room's hash tag):

    lc:{room}:f:polls:seq            counter of poll ids (q1, q2, ...)
    lc:{room}:f:polls:<id>           hash: question, options (JSON), state, opened_at,
                                     ends_at, closed_at, changeable, total, c0..c5 (counts)
    lc:{room}:f:polls:<id>:voters    hash: user -> the option index they voted for
    lc:{room}:f:polls:open           sorted set: open poll id -> ends_at (ms)
    lc:{room}:f:polls:all            list of poll ids, newest first
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct
from redis.asyncio import Redis

from engine.core.errors import ConflictError, NotFoundError
from engine.core.fields import invalid_field
from engine.store import keys
from engine.store.redis_client import due_by_room, text, texts
from engine.store.scripts import Scripts

NAME = "polls"
POLL_ID_RE = re.compile(r"q[0-9]{1,9}")
MAX_QUESTION = 200
MAX_OPTION = 80
MIN_OPTIONS, MAX_OPTIONS = 2, 6
MIN_DURATION_S, MAX_DURATION_S, DEFAULT_DURATION_S = 10, 3600, 60
MAX_LISTED = 50  # polls a listing returns, newest first


def poll_key(room: str, *parts: str) -> str:
    return keys.feature(room, NAME, *parts)


def open_polls_key(room: str) -> str:
    """The room's open polls, scored by their end (the sweep's index)."""
    return poll_key(room, "open")


def check_poll_id(value: Any) -> str:
    if not isinstance(value, str) or not POLL_ID_RE.fullmatch(value):
        raise invalid_field("poll", "a poll id such as 'q1'")
    return value


def not_found(poll_id: str) -> NotFoundError:
    return NotFoundError(f"no poll {poll_id!r} in this room", code="poll_not_found")


@dataclass(frozen=True, slots=True)
class Poll:
    id: str
    question: str
    options: tuple[str, ...]
    state: str  # "open" | "closed"
    opened_at: int
    ends_at: int
    closed_at: int | None
    changeable: bool
    votes: tuple[int, ...]
    total: int

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Poll:
        fields = {text(k): text(v) for k, v in raw.items()}
        options = tuple(orjson.loads(fields["options"]))
        closed = fields.get("closed_at")
        return cls(
            id=fields["id"], question=fields["question"], options=options,
            state=fields["state"], opened_at=int(fields["opened_at"]),
            ends_at=int(fields["ends_at"]), closed_at=int(closed) if closed else None,
            changeable=fields["changeable"] == "1",
            votes=tuple(int(fields[f"c{i}"]) for i in range(len(options))),
            total=int(fields["total"]),
        )  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "question": self.question, "options": list(self.options),
            "state": self.state, "opened_at": self.opened_at, "ends_at": self.ends_at,
            "closed_at": self.closed_at, "changeable": self.changeable,
            "votes": list(self.votes), "total": self.total,
        }  # fmt: skip

    def results(self) -> dict[str, Any]:
        """What a tick carries of an open poll: its counts and state."""
        return {"votes": list(self.votes), "total": self.total, "state": self.state}


class PollTerms(Struct, frozen=True, forbid_unknown_fields=False):
    """The body that opens a poll (docs/polls.md § HTTP); options are trimmed."""

    question: Annotated[str, Meta(min_length=1, max_length=MAX_QUESTION)]
    options: Annotated[list[str], Meta(min_length=MIN_OPTIONS, max_length=MAX_OPTIONS)]
    duration_s: Annotated[int, Meta(ge=MIN_DURATION_S, le=MAX_DURATION_S)] = DEFAULT_DURATION_S
    changeable: bool = False

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise invalid_field("question", f"a string of 1-{MAX_QUESTION} characters")
        for index, option in enumerate(self.options):
            if not option.strip() or len(option) > MAX_OPTION:
                raise invalid_field(f"options[{index}]", f"a string of 1-{MAX_OPTION} characters")
        if len({option.strip() for option in self.options}) != len(self.options):
            raise invalid_field("options", "options must differ")

    def cleaned(self) -> tuple[str, list[str]]:
        """The question and the options, trimmed."""
        return self.question.strip(), [option.strip() for option in self.options]


class Ballot(Struct, frozen=True):
    """The body of a vote over HTTP (the `vote` frame carries the same field)."""

    option: Annotated[int, Meta(ge=0, le=MAX_OPTIONS - 1)]


class PollStore:
    def __init__(self, redis: Redis, scripts: Scripts, log_maxlen: int) -> None:
        self.redis = redis
        self.log_maxlen = log_maxlen
        # Looked up at each call: the node rebuilds its scripts for the bus's pub/sub flavour
        # when it starts (engine/store/scripts.py `use`).
        self.scripts = scripts

    async def open(self, room: str, terms: PollTerms, *, at_ms: int | None = None) -> Poll:
        question, options = terms.cleaned()
        duration_s, changeable = terms.duration_s, terms.changeable
        poll_id = f"q{await self.redis.incr(poll_key(room, 'seq'))}"
        result = await self.scripts.all["poll_open"](
            self.redis,
            [poll_key(room, poll_id), open_polls_key(room), poll_key(room, "all"),
             keys.room_stream(room)],
            [poll_id, "" if at_ms is None else at_ms, duration_s * 1000, self.log_maxlen,
             keys.room_bus(room), question, orjson.dumps(options), "1" if changeable else "0"],
        )  # fmt: skip
        if result[0] == b"err":
            raise ConflictError(f"poll {poll_id!r} exists", code="poll_exists")
        return await self.get(room, poll_id)

    async def get(self, room: str, poll_id: str) -> Poll:
        raw = await self.redis.hgetall(poll_key(room, check_poll_id(poll_id)))
        if not raw:
            raise not_found(poll_id)
        return Poll.from_hash(raw)

    async def list(self, room: str, *, open_only: bool = False) -> list[Poll]:
        """The room's polls, newest first (the open ones only, if asked)."""
        if open_only:
            ids = texts(await self.redis.zrange(open_polls_key(room), 0, -1))
        else:
            ids = texts(await self.redis.lrange(poll_key(room, "all"), 0, MAX_LISTED - 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for poll_id in ids:
                pipe.hgetall(poll_key(room, poll_id))
            raws = await pipe.execute()
        polls = [Poll.from_hash(raw) for raw in raws if raw]
        return sorted(polls, key=lambda p: -p.opened_at) if open_only else polls

    async def vote(self, room: str, poll_id: str, user: str, option: Any,
                   *, at_ms: int | None = None) -> dict[str, Any]:  # fmt: skip
        """One user's vote: {poll, option, changed}."""
        check_poll_id(poll_id)
        if not isinstance(option, int) or isinstance(option, bool) or not 0 <= option < 10:
            raise invalid_field("option", "the index of one of the poll's options")
        result = await self.scripts.all["poll_vote"](
            self.redis, [poll_key(room, poll_id), poll_key(room, poll_id, "voters")],
            ["" if at_ms is None else at_ms, user, option],
        )  # fmt: skip
        if result[0] == b"err":
            code = text(result[1])
            if code == "poll_not_found":
                raise not_found(poll_id)
            if code == "invalid_option":
                raise invalid_field("option", "the index of one of the poll's options")
            if code == "already_voted":
                raise ConflictError("you already voted in this poll", code=code)
            raise ConflictError("the poll is closed", code="poll_closed")
        return {"poll": poll_id, "option": option, "changed": bool(result[1])}

    async def close(self, room: str, poll_id: str, *, due_only: bool = False,
                    at_ms: int | None = None) -> Poll | None:  # fmt: skip
        """Close a poll (the host's: now; the sweeper's: only once due). The closed poll, or
        None when the sweeper found it not due or already closed."""
        check_poll_id(poll_id)
        result = await self.scripts.all["poll_close"](
            self.redis,
            [poll_key(room, poll_id), open_polls_key(room), keys.room_stream(room)],
            [poll_id, "" if at_ms is None else at_ms, self.log_maxlen, keys.room_bus(room),
             "due" if due_only else ""],
        )  # fmt: skip
        if result[0] == b"err":
            code = text(result[1])
            if code == "poll_not_found":
                raise not_found(poll_id)
            if due_only:
                return None
            raise ConflictError("the poll is closed", code="poll_closed")
        return await self.get(room, poll_id)

    async def voters(self, room: str, poll_id: str) -> dict[str, int]:
        raw = await self.redis.hgetall(poll_key(room, poll_id, "voters"))
        return {text(user): int(option) for user, option in raw.items()}

    async def sweep(self, rooms: Sequence[str], now: int) -> int:
        """Close every open poll whose end has passed (the sweeper's pass)."""
        closed = 0
        for room, due in await due_by_room(self.redis, open_polls_key, rooms, now):
            for poll_id in due:
                if await self.close(room, poll_id, due_only=True) is not None:
                    closed += 1
        return closed
