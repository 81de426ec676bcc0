"""`livecart loadtest`: every scenario runs end to end (small: 30 users, seconds) against a
local engine and its verdict is good; an engine broken on purpose (the stock check
skipped) is caught as an oversell. These check the load test's behaviour, not speed."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtests.run import nest_outcomes, verdict
from tests.conftest import OVERSELL_HOOK

CONTRACT = {
    "scenario", "room", "users", "duration_s", "requests", "failures", "by_type",
    "push_latency_ms", "oversell", "double_used_coupons", "audit_ok", "report_html",
}  # fmt: skip
SMOKE = {  # scenario: (duration s, request types that must have happened)
    "opening-rush": (10, {"WS join", "WS comment", "WS like", "PUSH comment"}),
    "comment-storm": (10, {"WS comment", "WS like", "PUSH comment"}),
    "flash-sale": (20, {"WS grab", "HTTP checkout", "HTTP pay", "PUSH announcement"}),
    "coupon-rain": (13, {"WS claim", "PUSH announcement"}),
    "checkout-wave": (12, {"WS grab", "HTTP checkout", "HTTP payment", "HTTP pay"}),
    "full-show": (
        30,
        {"WS comment", "WS grab", "WS claim", "WS click", "HTTP checkout", "HTTP pay"},
    ),
}


def loadtest(scenario: str, tmp_path: Path, *args: str,
             env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    duration, _ = SMOKE[scenario]
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "loadtest", scenario, "--users", "30",
         "--spawn-rate", "30", "--duration", str(duration), "--out", str(tmp_path), "--json",
         *args],
        capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.stdout, result.stderr[-3000:]
    return result.returncode, orjson.loads(result.stdout)


@pytest.mark.parametrize("scenario", sorted(SMOKE))
def test_every_scenario_runs_a_good_show(scenario: str, tmp_path: Path) -> None:
    code, verdict = loadtest(scenario, tmp_path)
    assert set(verdict) >= CONTRACT
    assert verdict["ok"], verdict["problems"]
    assert code == 0
    assert (verdict["oversell"], verdict["double_used_coupons"]) == (0, 0)
    assert verdict["audit_ok"] is True
    assert verdict["failures"] <= 0.01 * verdict["requests"]
    happened = {name for name, row in verdict["by_type"].items() if row["count"] > 0}
    assert happened >= SMOKE[scenario][1]
    assert Path(verdict["report_html"]).stat().st_size > 0
    assert list(tmp_path.glob("stats*.csv"))


def test_the_asyncio_generator_runs_the_same_show(tmp_path: Path) -> None:
    code, verdict = loadtest("full-show", tmp_path, "--generator", "asyncio")
    assert code == 0, verdict["problems"]
    assert verdict["audit_ok"] is True
    # The show's own post-live report is written beside the load report.
    show = tmp_path / "show"
    assert verdict["show_report_html"] == str(show / "report.html")
    assert sorted(p.name for p in show.iterdir()) == [
        "metrics.csv", "orders.csv", "report.html", "summary.json"]  # fmt: skip
    summary = verdict["show_summary"]
    assert summary == orjson.loads((show / "summary.json").read_bytes())
    assert summary["unique_viewers"] >= verdict["viewers_joined"] > 0
    assert summary["paid_orders"] == summary["funnel"]["paid"] > 0
    assert summary["grab_attempts"] >= summary["reservations"] > 0
    assert summary["product_clicks"] > 0
    happened = {name for name, row in verdict["by_type"].items() if row["count"] > 0}
    assert happened >= SMOKE["full-show"][1]


@pytest.mark.parametrize("generator", ["locust", "asyncio"])
def test_an_overselling_engine_fails_the_verdict(generator: str, tmp_path: Path) -> None:
    code, verdict = loadtest("flash-sale", tmp_path, "--generator", generator,
                             env={"PYTHONPATH": str(OVERSELL_HOOK)})  # fmt: skip
    assert code == 1
    assert verdict["ok"] is False
    assert verdict["oversell"] > 0
    assert verdict["audit_ok"] is False
    assert any("oversell" in problem for problem in verdict["problems"])


def test_a_load_test_that_cannot_run_exits_2_not_1(tmp_path: Path) -> None:
    # Nothing listens on port 1: the run cannot start, which is not a bad verdict.
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "loadtest", "opening-rush", "--host",
         "http://127.0.0.1:1", "--room", "r1", "--host-token", "t", "--out", str(tmp_path),
         "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "could not run" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host-token", "t"], "--host-token is for an existing deployment"),
        (["--host", "http://127.0.0.1:1"], "--host needs --room"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "loadtest", "opening-rush", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


def test_locust_answers_nest_as_statuses() -> None:
    outcomes = {"grab:reserved": 4, "grab:sold_out": 9, "pay:paid": 3}
    assert nest_outcomes(outcomes) == {"grab": {"reserved": 4, "sold_out": 9}, "pay": {"paid": 3}}


def judge(requests: int, failures: int, joined: int, users: int = 10) -> dict[str, Any]:
    args = argparse.Namespace(scenario="opening-rush", users=users, duration=1.0,
                              generator="locust", max_failure_ratio=0.01)  # fmt: skip
    audit = {"room": "r", "ok": True, "checks": [], "oversell": 0, "double_used_coupons": 0}
    figures = {"requests": requests, "failures": failures, "by_type": {}, "push_latency_ms": {},
               "statuses": {"join": {"joined": joined}}}  # fmt: skip
    return verdict(args, "r", {"figures": figures, "audit": audit, "show": [], "report": "",
                               "show_report": {"html": "", "summary": {}}})  # fmt: skip


def test_the_verdict_counts_viewers_that_never_joined() -> None:
    assert judge(1000, 0, joined=10)["ok"] is True
    # Few failed requests, but a tenth of the room never got in: not a good show.
    judged = judge(1000, 1, joined=9)
    assert judged["problems"] == ["only 9 of 10 viewers joined"]
    assert (judged["ok"], judged["viewers_joined"]) == (False, 9)


def test_a_run_without_requests_is_one_problem() -> None:
    judged = judge(0, 0, joined=10)
    assert judged["problems"] == ["no requests were made"]
    assert judged["ok"] is False
