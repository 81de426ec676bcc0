"""engine.realtime.sampling: which comments a busy room shows, with an injected clock."""

from __future__ import annotations

import itertools

import pytest

from engine.realtime.sampling import CommentSampler, is_privileged, spread
from engine.store.roomlog import Entry

_ids = itertools.count(1)


def comment(role: str = "viewer") -> Entry:
    return Entry(id=f"{next(_ids)}-0", kind="comment", ref="", data={"role": role, "text": "t"})


def event(kind: str = "comment_deleted") -> Entry:
    return Entry(id=f"{next(_ids)}-0", kind=kind, ref="1-0", data={})


def comments(n: int, role: str = "viewer") -> list[Entry]:
    return [comment(role) for _ in range(n)]


def check_accounting(entries: list[Entry], kept: list[Entry], sampled_out: int) -> None:
    """Kept entries are a sub-sequence in log order; sampled_out counts exactly the rest."""
    positions = [entries.index(e) for e in kept]
    assert positions == sorted(positions)
    dropped = [e for e in entries if e not in kept]
    assert sampled_out == len(dropped)
    assert all(e.is_comment and not is_privileged(e) for e in dropped)


# ---- spread -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "keep", "expected"),
    [
        (9, 3, [0, 3, 6]),
        (10, 4, [0, 2, 5, 7]),
        (5, 5, [0, 1, 2, 3, 4]),
        (3, 10, [0, 1, 2]),
        (5, 0, []),
        (5, -1, []),
        (0, 0, []),
        (1, 1, [0]),
        (100, 1, [0]),
    ],
)
def test_spread(count: int, keep: int, expected: list[int]) -> None:
    assert spread(count, keep) == expected


@pytest.mark.parametrize(("count", "keep"), [(1000, 7), (97, 13), (20, 19), (3, 2)])
def test_spread_is_even_and_distinct(count: int, keep: int) -> None:
    picked = spread(count, keep)
    assert len(set(picked)) == keep
    assert picked == sorted(picked)
    assert all(0 <= i < count for i in picked)
    gaps = {b - a for a, b in itertools.pairwise([*picked, picked[0] + count])}
    assert max(gaps) - min(gaps) <= 1


# ---- CommentSampler ---------------------------------------------------------------------


def test_is_privileged() -> None:
    assert is_privileged(comment("host"))
    assert is_privileged(comment("moderator"))
    assert not is_privileged(comment("viewer"))
    assert not is_privileged(Entry("1-0", "comment", "", {}))


def test_quiet_room_keeps_everything() -> None:
    sampler = CommentSampler(rate=8, now=0.0)
    for tick in range(1, 200):
        entries = comments(1)
        kept, sampled_out = sampler.select(entries, now=tick * 0.125)
        assert (kept, sampled_out) == (entries, 0)


def test_first_burst_keeps_one_seconds_worth_spread_evenly() -> None:
    sampler = CommentSampler(rate=10, now=0.0)
    entries = comments(100)
    kept, sampled_out = sampler.select(entries, now=0.0)
    assert kept == [entries[i] for i in range(0, 100, 10)]
    assert sampled_out == 90
    # The budget is spent: a second tick at the same instant keeps no viewer comment.
    more = comments(5)
    assert sampler.select(more, now=0.0) == ([], 5)


def test_sustained_burst_keeps_rate_per_second() -> None:
    rate, tick_s, ticks = 8, 0.125, 80  # 10 simulated seconds, one token per tick
    sampler = CommentSampler(rate=rate, now=0.0)
    shown = total_out = 0
    for tick in range(ticks + 1):  # a burst from t=0 to t=10
        entries = comments(50)
        kept, sampled_out = sampler.select(entries, now=tick * tick_s)
        check_accounting(entries, kept, sampled_out)
        shown += len(kept)
        total_out += sampled_out
    # The initial one-second budget plus `rate` per simulated second.
    assert shown == rate + rate * ticks * tick_s
    assert shown + total_out == 50 * (ticks + 1)


def test_burst_with_uneven_ticks_stays_near_rate() -> None:
    sampler = CommentSampler(rate=20, now=0.0)
    now, shown = 0.0, 0
    for step in range(300):
        now += (0.07, 0.1, 0.13)[step % 3]  # 30 s in total
        entries = comments(30)
        kept, sampled_out = sampler.select(entries, now)
        check_accounting(entries, kept, sampled_out)
        shown += len(kept)
    assert 20 * 30 <= shown <= 20 * 31
    assert now == pytest.approx(30.0)


def test_privileged_comments_are_never_dropped_and_spend_nothing() -> None:
    sampler = CommentSampler(rate=2, now=0.0)
    hosts = comments(50, "host") + comments(50, "moderator")
    assert sampler.select(hosts, now=0.0) == (hosts, 0)
    viewers = comments(2)
    assert sampler.select(viewers, now=0.0) == (viewers, 0)  # budget untouched by hosts
    # With the budget spent, privileged comments still all go out.
    mixed = [comment("host"), comment(), comment("moderator"), comment()]
    kept, sampled_out = sampler.select(mixed, now=0.0)
    assert kept == [mixed[0], mixed[2]]
    assert sampled_out == 2


def test_non_comment_entries_are_never_dropped() -> None:
    sampler = CommentSampler(rate=1, now=0.0)
    sampler.select(comments(1), now=0.0)  # spend the only token
    entries = [
        comment(),
        event("comment_deleted"),
        comment(),
        event("room_state"),
        event("comment_pinned"),
        comment(),
        event("room_updated"),
    ]
    kept, sampled_out = sampler.select(entries, now=0.0)
    assert kept == [entries[1], entries[3], entries[4], entries[6]]
    assert sampled_out == 3


def test_set_rate_lowers_the_budget_at_once() -> None:
    sampler = CommentSampler(rate=100, now=0.0)
    sampler.set_rate(3)
    assert sampler.rate == 3
    entries = comments(9)
    kept, sampled_out = sampler.select(entries, now=0.0)
    assert kept == [entries[0], entries[3], entries[6]]
    assert sampled_out == 6


def test_set_rate_higher_refills_at_the_new_rate() -> None:
    sampler = CommentSampler(rate=2, now=0.0)
    assert sampler.select(comments(2), now=0.0)[1] == 0
    sampler.set_rate(40)  # tokens do not jump up...
    assert sampler.select(comments(1), now=0.0) == ([], 1)
    entries = comments(40)
    kept, _ = sampler.select(entries, now=0.5)  # ...but refill at 40/s
    assert len(kept) == 20


def test_clock_going_backwards_does_not_refill() -> None:
    sampler = CommentSampler(rate=4, now=10.0)
    sampler.select(comments(4), now=10.0)
    assert sampler.select(comments(3), now=5.0) == ([], 3)


def test_empty_tick() -> None:
    sampler = CommentSampler(rate=4, now=0.0)
    assert sampler.select([], now=1.0) == ([], 0)
