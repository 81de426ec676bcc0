"""The audit's poll checks: every poll's counts are its voters' choices (one vote per user,
changed votes moved, never lost or doubled), and no open poll is past its end for long."""

from __future__ import annotations

from collections import Counter
from typing import Any

from redis.asyncio import Redis

from engine.features.polls.store import PollStore
from engine.store.scripts import Scripts

OVERDUE_MS = 60_000  # the sweeper closes polls within a second; a minute is a fault


async def audit_polls(redis: Redis, report: Any, room: str, snap: Any) -> None:
    store = PollStore(redis, Scripts(), 0)
    polls = await store.list(room)
    for poll in polls:
        voters = await store.voters(room, poll.id)
        chosen = Counter(voters.values())
        counted = {index: n for index, n in enumerate(poll.votes) if n}
        problems = []
        if dict(chosen) != counted or poll.total != len(voters):
            problems.append(f"counts {list(poll.votes)} (total {poll.total}) but voters chose "
                            f"{dict(sorted(chosen.items()))} ({len(voters)} voters)")  # fmt: skip
        if any(not 0 <= option < len(poll.options) for option in voters.values()):
            problems.append("a vote for an option the poll does not have")
        report.add(f"poll {poll.id}: counts are its voters' choices", problems,
                   f"{poll.total} votes")  # fmt: skip
