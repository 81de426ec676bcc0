"""`livecart bench grab`, `bench coupons`, `bench checkout`, `bench auction` and
`bench group-buy` run end to end and report their contract fields (small numbers: this
checks each benchmark's behaviour and accounting, not the machine's speed)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson

LATENCY = {"p50", "p95", "p99"}


def bench(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "bench", *args, "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = orjson.loads(result.stdout)
    return report


def test_bench_grab_never_oversells() -> None:
    report = bench("grab", "--viewers", "60", "--stock", "20", "--attempts", "300")
    contract = {"attempts", "reserved", "sold_out", "limit_reached", "errors", "oversell",
                "grabs_per_second", "latency_ms", "raw_evalsha_per_second", "ratio_to_raw",
                "audit_ok"}  # fmt: skip
    assert set(report) >= contract
    assert (report["reserved"], report["oversell"], report["errors"]) == (20, 0, 0)
    assert report["reserved"] + report["sold_out"] + report["limit_reached"] == 300
    assert report["sale_counters"]["reserved"] == 20
    assert report["audit_ok"] is True
    assert set(report["latency_ms"]) == LATENCY
    # The second baseline and the engine's CPU, in the same run; no burst section.
    assert report["raw_ws_echo"]["answered"] == 300
    assert report["raw_ws_echo_per_second"] > 0
    assert report["ratio_to_raw_echo"] > 0
    assert report["engine_cpu_us_per_grab"] > 0
    assert (report["engine_workers"], report["viewers_per_worker"]) == (1, [60])
    assert "burst" not in report


def test_bench_grab_compares_metrics_on_and_off() -> None:
    report = bench("grab", "--viewers", "40", "--stock", "10", "--attempts", "200",
                   "--compare-metrics", "1")  # fmt: skip
    assert report["rounds"] == 1
    for side in ("with_metrics", "without_metrics"):
        figures = report[side]
        assert (figures["oversell"], figures["audit_ok"]) == (0, True)
        assert len(figures["ratio_to_raw"]) == 1
        assert figures["grabs_per_second"][0] > 0
    assert report["cost_ratio"] == round(
        report["median_ratio_without"] / report["median_ratio_with"], 3)  # fmt: skip


def test_bench_coupons_issues_exactly_the_drop() -> None:
    report = bench("coupons", "--viewers", "80", "--coupons", "25")
    assert (report["claimed"], report["sold_out"], report["over_issued"]) == (25, 55, 0)
    assert report["errors"] == 0
    assert report["drop"] == {"quantity": 25, "claimed": 25, "remaining": 0}
    assert report["audit_ok"] is True
    assert set(report["latency_ms"]) == LATENCY


def test_bench_checkout_pays_every_order() -> None:
    report = bench("checkout", "--orders", "30", "--concurrency", "5")
    assert set(report) >= {"orders", "paid", "failed", "orders_per_second", "latency_ms",
                           "audit_ok"}  # fmt: skip
    assert (report["orders"], report["paid"], report["failed"]) == (30, 30, 0)
    assert report["coupons_used"] == 15
    assert report["orders_per_second"] > 0
    assert report["audit_ok"] is True
    checks = {c["name"]: c for c in report["audit"]["checks"]}
    assert checks["orders: stock sold matches paid order lines"]["detail"].startswith("30 units")


def test_bench_auction_ends_at_the_highest_valid_bid() -> None:
    report = bench("auction", "--bidders", "8", "--engines", "2", "--seconds", "5",
                   "--think-ms", "100")  # fmt: skip
    assert report["bids_accepted"] > 8
    assert report["bids_sent"] == (report["bids_accepted"] + report["bids_too_low"]
                                   + report["bids_after_end"]
                                   + report["bids_rate_limited"])  # fmt: skip
    assert report["bids_logged"] == report["bids_accepted"]
    assert (report["price"], report["winner"]) == (report["highest_valid_bid"],
                                                   report["highest_bidder"])  # fmt: skip
    assert report["match"] is report["replay_ok"] is report["audit_ok"] is True
    assert report["same_on_every_process"] is True
    assert report["winner_offer"]["price"] == report["price"]
    assert set(report["latency_ms"]) == LATENCY


def test_bench_group_buy_completes_one_team_and_refunds_the_other() -> None:
    report = bench("group-buy", "--team-size", "3", "--window-s", "6")
    assert report["a_completed"] is report["b_failed"] is report["b_refunded"] is True
    assert report["audit_ok"] is True
    a, b = report["team_a"], report["team_b"]
    assert (a["state"], a["paid"], [o["state"] for o in a["orders"]]) == (
        "completed", 3, ["paid"] * 3)  # fmt: skip
    assert (b["state"], b["paid"], [o["state"] for o in b["orders"]]) == (
        "failed", 1, ["refunded", "cancelled"])  # fmt: skip
    refunded = b["orders"][0]
    assert refunded["refunded"] == refunded["refunded_at_provider"] == refunded["total"]
