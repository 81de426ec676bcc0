"""Jittered exponential backoff of the SDK."""

from __future__ import annotations

import random

import pytest

from clients.backoff import Backoff


def test_delays_are_full_jitter_under_a_growing_ceiling() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0, rng=random.Random(7))
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    delays = [backoff.next_delay() for _ in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule


def test_jitter_spreads_a_reconnection_storm() -> None:
    first_delays = [
        Backoff(base_s=1.0, rng=random.Random(seed)).next_delay() for seed in range(500)
    ]
    # Uniform over [0, 1]: each tenth of the window gets some of the 500 clients.
    buckets = {int(d * 10) for d in first_delays}
    assert buckets == set(range(10))


def test_reset_starts_over_and_attempts_can_run_out() -> None:
    backoff = Backoff(base_s=1.0, cap_s=100.0, max_attempts=2, rng=random.Random(1))
    backoff.next_delay()
    backoff.next_delay()
    with pytest.raises(StopIteration):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0
