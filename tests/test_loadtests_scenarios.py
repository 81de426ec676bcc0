"""loadtests/scenarios.py: the comment pacer (sans-I/O) and the host's timelines."""

from __future__ import annotations

import pytest

from loadtests.scenarios import PLANS, SCENARIOS, CommentPacer, Share, timeline

LIMITS = {"comment_rate_max": 3, "comment_rate_window_ms": 10_000, "slow_mode_ms": 0}


def test_the_pacer_waits_out_a_full_window() -> None:
    pacer = CommentPacer.from_limits(LIMITS)
    for at in (0.0, 1000.0, 2000.0):
        assert pacer.wait_ms(at) == 0.0
        pacer.accepted(at)
    # Three in the window that began at 0: the fourth waits for the window to end.
    assert pacer.wait_ms(2500.0) == 7500.0
    assert pacer.wait_ms(10_000.0) == 0.0
    pacer.accepted(10_000.0)  # opens a new window
    assert (pacer.window_start_ms, pacer.in_window) == (10_000.0, 1)
    assert pacer.wait_ms(10_001.0) == 0.0


def test_the_pacer_keeps_slow_mode_between_comments() -> None:
    pacer = CommentPacer.from_limits({**LIMITS, "comment_rate_max": 0, "slow_mode_ms": 5000})
    assert pacer.wait_ms(0.0) == 0.0
    pacer.accepted(100.0)
    assert pacer.wait_ms(1100.0) == 4000.0
    assert pacer.wait_ms(5100.0) == 0.0


def test_without_limits_the_pacer_never_waits() -> None:
    pacer = CommentPacer.from_limits({})
    for at in range(0, 1000, 10):
        pacer.accepted(float(at))
        assert pacer.wait_ms(float(at)) == 0.0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_has_a_plan_and_a_timeline(scenario: str) -> None:
    steps = timeline(scenario, users=1000, spawn_rate=100, duration_s=120)
    assert scenario in PLANS
    assert [s.at_s for s in steps] == sorted(s.at_s for s in steps)
    for step in steps:
        assert step.action in {"pin", "comment", "sale", "drop"}
        if step.action == "sale":
            # demand exceeds supply in a flash sale: fewer units than viewers
            assert step.params["allotment"] <= 1000


def test_sales_start_after_everyone_has_joined() -> None:
    steps = timeline("flash-sale", users=2000, spawn_rate=500, duration_s=60)
    sale = next(s for s in steps if s.action == "sale")
    assert sale.at_s >= 2000 / 500
    assert sale.params["allotment"] == 400


@pytest.mark.parametrize(
    ("ratio", "cases", "taken"),
    [(0.5, 1, 1), (0.5, 6, 3), (0.6, 5, 3), (0.8, 10, 8), (1.0, 7, 7), (0.0, 9, 0), (0.2, 4, 1)],
)
def test_a_share_takes_its_ratio_evenly(ratio: float, cases: int, taken: int) -> None:
    share = Share(ratio)
    assert sum(share.take() for _ in range(cases)) == taken


def test_a_half_share_alternates_starting_with_a_take() -> None:
    share = Share(0.5)
    assert [share.take() for _ in range(6)] == [True, False, True, False, True, False]
