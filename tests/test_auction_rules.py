"""engine.features.auctions.rules: increments, minimum bids, proxy bidding, replay and runner-up,
sans-I/O (tests/test_auctions.py checks the Lua script against these same rules)."""

from __future__ import annotations

import pytest

from engine.features.auctions.rules import (
    DEFAULT_INCREMENTS,
    Bid,
    BidOutcome,
    BidTooLow,
    Standing,
    apply_bid,
    check_increments,
    replay,
    runner_up,
    step,
)

TABLE = ((0, 100), (5_000, 250), (10_000, 500))


def opening(start: int = 1_000) -> Standing:
    return Standing.opening(start, TABLE)


def test_step_uses_the_last_row_at_or_below_the_price() -> None:
    assert [step(p, TABLE) for p in (0, 4_999, 5_000, 9_999, 10_000, 10**6)] == [
        100, 100, 250, 250, 500, 500,
    ]  # fmt: skip
    assert step(123, DEFAULT_INCREMENTS) == 100


def test_first_bid_at_least_the_start_then_price_plus_increment() -> None:
    s = opening()
    assert s.min_bid == 1_000
    with pytest.raises(BidTooLow) as low:
        apply_bid(s, "ann", 999)
    assert low.value.min_bid == 1_000
    s, outcome = apply_bid(s, "ann", 1_000)
    assert (outcome, s.price, s.leader, s.bids) == (BidOutcome.LEADING, 1_000, "ann", 1)
    assert s.min_bid == 1_100
    with pytest.raises(BidTooLow):
        apply_bid(s, "bob", 1_099)
    s, outcome = apply_bid(s, "bob", 1_100)
    assert (outcome, s.price, s.leader) == (BidOutcome.LEADING, 1_100, "bob")
    s, _ = apply_bid(s, "ann", 5_000)
    assert s.min_bid == 5_250  # the 5,000 row applies from there


def test_proxy_defends_and_raises_the_price_to_the_challengers_max_plus_a_step() -> None:
    s, _ = apply_bid(opening(), "ann", 1_000, 3_000)  # ann will pay up to 30.00
    assert (s.price, s.leader, s.leader_max) == (1_000, "ann", 3_000)
    s, outcome = apply_bid(s, "bob", 1_500)
    assert (outcome, s.price, s.leader) == (BidOutcome.OUTBID, 1_600, "ann")
    s, outcome = apply_bid(s, "bob", 2_950)  # the answer is capped at ann's max
    assert (outcome, s.price, s.leader) == (BidOutcome.OUTBID, 3_000, "ann")
    s, outcome = apply_bid(s, "bob", 3_100)
    assert (outcome, s.price, s.leader) == (BidOutcome.LEADING, 3_100, "bob")


def test_a_higher_max_takes_the_lead_just_above_the_old_max() -> None:
    s, _ = apply_bid(opening(), "ann", 1_000, 2_000)
    s, outcome = apply_bid(s, "bob", 1_100, 9_000)
    assert (outcome, s.price, s.leader, s.leader_max) == (BidOutcome.LEADING, 2_100, "bob", 9_000)


def test_equal_maxima_the_earlier_bid_wins() -> None:
    s, _ = apply_bid(opening(), "ann", 1_000, 2_000)
    s, outcome = apply_bid(s, "bob", 2_000)
    assert (outcome, s.price, s.leader) == (BidOutcome.OUTBID, 2_000, "ann")


def test_the_leader_raising_their_max_does_not_move_the_price() -> None:
    s, _ = apply_bid(opening(), "ann", 1_000)
    s, outcome = apply_bid(s, "ann", 1_100, 5_000)
    assert (outcome, s.price, s.leader_max, s.bids) == (BidOutcome.RAISED, 1_000, 5_000, 2)


def test_replay_and_runner_up() -> None:
    bids = [Bid("ann", 1_000, 1_000, 1), Bid("bob", 1_100, 4_000, 2), Bid("cat", 1_200, 2_500, 3),
            Bid("ann", 2_700, 2_700, 4)]  # fmt: skip
    s = replay(1_000, TABLE, bids)
    assert (s.leader, s.price) == ("bob", 2_800)
    assert runner_up(bids, {"bob"}) == ("ann", 2_700)
    assert runner_up(bids, {"bob", "ann"}) == ("cat", 2_500)
    assert runner_up(bids, {"bob", "ann", "cat"}) is None
    with pytest.raises(BidTooLow):
        replay(1_000, TABLE, [*bids, Bid("dan", 2_800, 2_800, 5)])  # an invalid log


def test_runner_up_ties_go_to_the_earlier_bidder() -> None:
    bids = [Bid("ann", 1_000, 2_000, 1), Bid("bob", 2_000, 2_000, 2), Bid("cat", 2_100, 3_000, 3)]
    assert runner_up(bids, {"cat"}) == ("ann", 2_000)


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ([], "1-20"),
        ([[5, 100]], "start at 0"),
        ([[0, 100], [0, 200]], "rise"),
        ([[0, 0]], "step 1"),
        ([[0, 100, 3]], "two integers"),
        ([[0, True]], "two integers"),
        ("100", "1-20"),
    ],
)
def test_bad_increment_tables(table: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_increments(table)


def test_good_increment_table() -> None:
    assert check_increments([[0, 50], [1_000, 100]]) == ((0, 50), (1_000, 100))
