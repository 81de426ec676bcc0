"""loadtests/stats.py: the asyncio generator's statistics and how processes' stats merge."""

from __future__ import annotations

import pytest

from loadtests import stats
from loadtests.stats import Stats, merge_samples


def test_stats_record_merge_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = Stats(), Stats()
    for ms in range(1, 101):
        one.record("WS", "grab", float(ms))
    one.record("WS", "grab", 500.0, "timeout")
    one.status("grab", "reserved")
    two.record("WS", "grab", 7.0, "rate_limited")
    two.record("HTTP", "token", 3.0)
    two.pushes("comment", 1000.0, [990.0, 980.0])
    two.status("grab", "reserved")
    two.status("grab", "sold_out")
    one.viewers = one.viewers_peak = 3
    two.viewers = two.viewers_peak = 2

    # Through JSON, as the generator processes hand them over.
    back = Stats.from_json(one.to_json())
    assert back.series[("WS", "grab")].count == 101
    assert back.series[("WS", "grab")].errors == {"timeout": 1}

    merged = Stats.merge([back, Stats.from_json(two.to_json())])
    grab = merged.series[("WS", "grab")]
    assert (grab.count, grab.failures, grab.errors) == (102, 2, {"timeout": 1, "rate_limited": 1})
    assert merged.statuses == {"grab": {"reserved": 2, "sold_out": 1}}
    assert (merged.processes, merged.viewers, merged.viewers_peak) == (2, 5, 5)

    summary = merged.summary()
    assert summary["requests"] == 103  # client calls; PUSH are not requests
    assert summary["failures"] == 2
    assert set(summary["by_type"]) == {"WS grab", "HTTP token", "PUSH comment"}
    assert summary["by_type"]["WS grab"] == {"count": 102, "failures": 2, "p50": 50.0,
                                             "p95": 96.0, "p99": 100.0, "max": 500.0}  # fmt: skip
    assert summary["push_latency_ms"] == {"p50": 10.0, "p95": 20.0, "p99": 20.0}
    assert summary["errors"]["WS grab"] == {"timeout": 1, "rate_limited": 1}

    # Every name a generator reports is one of the shared REQUESTS.
    with pytest.raises(AssertionError):
        one.record("WS", "grabbed", 1.0)

    # Reservoirs stay bounded and merge in proportion to what each part saw.
    monkeypatch.setattr(stats, "RESERVOIR", 50)
    big = Stats()
    for ms in range(1000):
        big.record("PUSH", "stock", float(ms))
    kept = big.series[("PUSH", "stock")]
    assert (kept.count, len(kept.samples)) == (1000, 50)
    mixed = merge_samples([(900, [1.0] * 50), (100, [2.0] * 50)], cap=50)
    assert (mixed.count(1.0), mixed.count(2.0)) == (45, 5)
