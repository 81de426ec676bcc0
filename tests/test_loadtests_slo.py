"""loadtests/slo.py (SLO and stage parsing, SLO evaluation), the per-second timeline of
loadtests/stats.py, seeded viewers' choices (scenarios.Dice) and close-code names."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.scenarios import rehearse
from loadtests.slo import (
    Slo,
    SpecError,
    evaluate,
    locust_tick,
    parse_slo,
    parse_slo_lines,
    parse_stages,
    peak_users,
    stages_from_json,
    total_s,
    users_at,
)
from loadtests.stats import Timeline, close_codes

# ---- SLOs ------------------------------------------------------------------------------------


def test_slos_parse() -> None:
    assert parse_slo("grab.p99<250ms") == Slo("grab.p99<250ms", "grab", "p99", "<", 250.0, "ms")
    assert parse_slo(" join.max <= 1.5s ") == Slo("join.max <= 1.5s", "join", "max", "<=", 1.5, "s")
    assert parse_slo("push.p95<400") == Slo("push.p95<400", "push", "p95", "<", 400.0, "ms")
    assert parse_slo("requests.failure_ratio<1%").unit == "%"
    assert parse_slo("checkout.failure_ratio<=0.01").unit == ""
    assert parse_slo("comment.rate>=2").stat == "rate"
    assert parse_slo("push_stock.p99>0ms").metric == "push_stock"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grab.p99 250ms", "expected <metric>.<stat><op><number><unit>"),
        ("grab<250ms", "expected"),
        ("grab.p99<-1ms", "expected"),
        ("grab.p99=<250ms", "expected"),
        ("grabs.p99<250ms", "unknown metric 'grabs'"),
        ("grab.p90<250ms", "unknown stat 'p90'"),
        ("grab.p99<25%", "a latency is in ms or s"),
        ("grab.failure_ratio<5ms", "failure_ratio is a ratio"),
        ("grab.rate>5s", "rate is per second"),
        ("requests.p99<1s", "failure_ratio and rate only"),
    ],
)
def test_invalid_slos_say_why(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_slo(text)


def test_an_slo_file_skips_comments_and_blank_lines() -> None:
    text = "# the show's promises\n\ngrab.p99<250ms  # tap to answer\n  join.p95 < 1s\n"
    assert [s.text for s in parse_slo_lines(text)] == ["grab.p99<250ms", "join.p95 < 1s"]
    with pytest.raises(SpecError, match="unknown metric"):
        parse_slo_lines("grab.p99<250ms\nnope.p99<1ms\n")


FIGURES: dict[str, Any] = {
    "requests": 200,
    "failures": 3,
    "by_type": {
        "WS grab": {"count": 100, "failures": 2, "p50": 20.0, "p95": 80.0, "p99": 240.0,
                    "max": 900.0},
        "HTTP token": {"count": 100, "failures": 1, "p50": 5.0, "p95": 9.0, "p99": 12.0,
                       "max": 30.0},
        "PUSH comment": {"count": 50, "failures": 0, "p50": 40.0, "p95": 90.0, "p99": 120.0,
                         "max": 150.0},
        "PUSH stock": {"count": 10, "failures": 0, "p50": 60.0, "p95": 70.0, "p99": 300.0,
                       "max": 310.0},
    },
    "push_latency_ms": {"p50": 45.0, "p95": 95.0, "p99": 200.0},
}  # fmt: skip


def judge(*texts: str) -> list[tuple[Any, bool]]:
    return [(r["value"], r["ok"]) for r in evaluate([parse_slo(t) for t in texts], FIGURES, 10.0)]


def test_slos_are_judged_in_their_units() -> None:
    assert judge("grab.p99<250ms", "grab.p99<0.2s", "grab.max<=900ms") == [
        (240.0, True), (0.24, False), (900.0, True)]  # fmt: skip
    assert judge("grab.failure_ratio<1%", "grab.failure_ratio<=0.02", "token.p50>5") == [
        (2.0, False), (0.02, True), (5.0, False)]  # fmt: skip
    assert judge("requests.failure_ratio<2%", "requests.rate>=20", "grab.rate>10") == [
        (1.5, True), (20.0, True), (10.0, False)]  # fmt: skip
    # push: every PUSH sample (the verdict's push_latency_ms); push_<name>: one PUSH row.
    assert judge("push.p99<250ms", "push_stock.p99<250ms", "push.max<300ms") == [
        (200.0, True), (300.0, False), (310.0, False)]  # fmt: skip


def test_an_slo_on_what_never_happened_is_breached() -> None:
    results = evaluate([parse_slo("claim.p99<250ms")], FIGURES, 10.0)
    assert results == [{"slo": "claim.p99<250ms", "value": None, "unit": "ms", "ok": False}]


# ---- stages ----------------------------------------------------------------------------------


def test_stages_from_lines() -> None:
    stages = parse_stages(
        "# warm up, then the flash-sale spike\n"
        "ramp 100 10s as warmup\nhold 20\nspike 300 5s\nsoak 30s\nramp 0 5s\n"
    )
    assert [(s.name, s.phase, s.users, s.start_s, s.end_s) for s in stages] == [
        ("warmup", "ramp", 100, 0.0, 10.0),
        ("hold", "hold", 100, 10.0, 30.0),
        ("spike", "spike", 300, 30.0, 35.0),
        ("soak", "soak", 100, 35.0, 65.0),  # back to the users before the spike
        ("ramp", "ramp", 0, 65.0, 70.0),
    ]
    assert (peak_users(stages), total_s(stages)) == (300, 70.0)
    assert [users_at(stages, t) for t in (0, 5, 10, 29.9, 30, 34.9, 35, 67.5, 70)] == [
        0, 50, 100, 100, 300, 300, 100, 50, None]  # fmt: skip


def test_locust_is_told_the_stages_users_and_rates() -> None:
    stages = parse_stages("ramp 100 10s\nhold 5s\nspike 300 5s\nramp 0 20s\n")
    assert [locust_tick(stages, t) for t in (0, 9.9, 10, 15, 19.9, 20, 40)] == [
        (100, 10.0), (100, 10.0), (100, 300.0), (300, 300.0), (300, 300.0), (0, 5.0),
        None]  # fmt: skip


def test_stages_from_json_and_back() -> None:
    text = '[{"phase": "ramp", "users": 10, "seconds": 4}, {"phase": "ramp", "users": 20, ' \
           '"seconds": 2.5}, {"phase": "hold", "seconds": 3, "name": "top"}]'  # fmt: skip
    stages = parse_stages(text)
    assert [(s.name, s.users, s.end_s) for s in stages] == [
        ("ramp", 10, 4.0), ("ramp-2", 20, 6.5), ("top", 20, 9.5)]  # fmt: skip
    assert stages_from_json([s.to_json() for s in stages]) == stages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no stage"),
        ("# nothing\n", "no stage"),
        ("walk 10 5s", "phase 'walk' is not one of"),
        ("ramp 5s", "ramp needs users"),
        ("hold 10 5s", "hold keeps the current users"),
        ("ramp 10 0s", "seconds must be a number > 0"),
        ("ramp ten 5s", "expected <phase> \\[<users>\\] <seconds>"),
        ("ramp 10 5s 7", "expected"),
        ('[{"phase": "spike", "users": -1, "seconds": 1}]', "spike needs users"),
        ('[{"phase": "hold"}]', "seconds must be a number"),
        ("[1, 2]", "a JSON list of objects"),
        ("[{", "invalid JSON"),
    ],
)
def test_invalid_stages_say_why(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_stages(text)


# ---- seed ------------------------------------------------------------------------------------


def test_a_seed_repeats_the_viewers_choices() -> None:
    first, again = rehearse("full-show", 42), rehearse("full-show", 42)
    assert first == again
    assert rehearse("full-show", 43) != first
    assert first[0] != first[1]  # viewers differ from one another within a run
    assert rehearse("full-show", None) != rehearse("full-show", None)  # unseeded: fresh


# ---- timeline, phases, close codes -------------------------------------------------------------


def test_the_timeline_has_a_row_per_second_and_phases() -> None:
    start = 1_000.0
    timeline = Timeline()
    for ms in (10.0, 20.0, 30.0):
        timeline.record("WS", "grab", ms, at=start + 0.2)
    timeline.record("WS", "grab", 500.0, failed=True, at=start + 2.5)
    timeline.record("HTTP", "token", 4.0, at=start + 0.1)
    timeline.record("PUSH", "comment", 90.0, at=start + 2.1)
    timeline.sample_viewers("a", 3, at=start + 1)
    timeline.sample_viewers("b", 2, at=start + 1)
    other = Timeline.from_json(timeline.to_json())  # as a process hands it over
    merged = Timeline()
    merged.add(timeline)
    merged.add(other)
    rows = merged.rows(start, 3.0)
    assert [r["t"] for r in rows] == [0, 1, 2]
    assert rows[0]["requests"] == {"grab": 6, "token": 2}  # pushes are not requests
    assert rows[0]["latency_ms"]["grab"] == {"p50": 20.0, "p95": 30.0, "p99": 30.0}
    assert (rows[1]["viewers"], rows[1]["requests"], rows[1]["pushes"]) == (5, {}, 0)
    assert rows[2]["failures"] == {"grab": 2}
    assert (rows[2]["pushes"], rows[2]["push_latency_ms"]["p99"]) == (2, 90.0)
    phases = merged.phases(start, [("ramp", 0.0, 1.5), ("hold", 1.5, 3.0)])
    assert [(p["name"], p["requests"], p["failures"]) for p in phases] == [
        ("ramp", {"grab": 6, "token": 2}, {"grab": 0, "token": 0}),
        ("hold", {"grab": 2}, {"grab": 2}),
    ]
    assert phases[1]["latency_ms"] == {"grab": {"p50": 500.0, "p95": 500.0, "p99": 500.0}}


def test_close_codes_are_named() -> None:
    assert close_codes({"1001": 2, "1006": 1, "3001": 4, "4999": 1}) == {
        "1001 going_away": 2, "1006 abnormal": 1, "3001 slow_consumer": 4,
        "4999 unknown": 1}  # fmt: skip
