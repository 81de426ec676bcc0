"""`livecart loadtest`: every scenario runs end to end (small: 30 users, seconds) against a
local engine and its verdict is good; an engine broken on purpose (the stock check
skipped) is caught as an oversell. These check the load test's behaviour, not speed."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from engine.store.redis_server import free_port
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


async def test_the_asyncio_generator_runs_the_same_show_and_keeps_the_books(
    tmp_path: Path, ledger_url: str
) -> None:
    """The full show with a ledger: the audit's "ledger matches Redis" holds at the end,
    and what the ledger holds adds up to the show's own report."""
    env = {"LIVECART_LEDGER": "on", "DATABASE_URL": ledger_url}
    code, verdict = await asyncio.to_thread(
        loadtest, "full-show", tmp_path, "--generator", "asyncio", env=env
    )
    assert code == 0, verdict["problems"]
    assert verdict["audit_ok"] is True
    checks = {check["name"]: check for check in verdict["audit"]["checks"]}
    ledger_check = checks["ledger matches Redis"]
    assert ledger_check["ok"], ledger_check["detail"]
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
    connection = await asyncpg.connect(ledger_url)
    try:
        paid = await connection.fetchrow(
            "SELECT count(*) AS orders, coalesce(sum(total), 0) AS gmv FROM orders"
            " WHERE room = $1 AND paid_at_ms IS NOT NULL", verdict["room"],
        )  # fmt: skip
        created = await connection.fetchval(
            "SELECT count(*) FROM order_events WHERE room = $1 AND type = 'order_created'",
            verdict["room"],
        )
    finally:
        await connection.close()
    assert paid is not None
    assert paid["orders"] == summary["paid_orders"]
    assert paid["gmv"] == summary["gmv"]
    assert created == summary["orders"]


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


# ---- SLOs, stages, seed, close codes, distributed locust (docs/loadtesting.md) --------------

NEW_KEYS = {"slos", "phases", "timeline", "events", "close_codes", "seed"}
ROW_KEYS = {"t", "requests", "failures", "latency_ms", "pushes", "push_latency_ms", "viewers"}


def cli(*args: str, timeout: float = 120) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "loadtest", *args, "--json"],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return result.returncode, orjson.loads(result.stdout) if result.stdout else {}, result.stderr


def check_new_keys(judged: dict[str, Any]) -> None:
    assert set(judged) >= NEW_KEYS | CONTRACT
    rows = judged["timeline"]["rows"]
    assert judged["timeline"]["interval_s"] == 1
    assert [row["t"] for row in rows] == list(range(len(rows)))
    assert len(rows) >= judged["duration_s"]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert not any(kind.startswith("PUSH") or kind == "push" for kind in row["requests"])
    assert sum(sum(row["requests"].values()) for row in rows) == judged["requests"]
    assert sum(row["pushes"] for row in rows) == sum(
        r["count"] for name, r in judged["by_type"].items() if name.startswith("PUSH ")
    )
    assert max(row["viewers"] for row in rows) == judged["users"]
    for phase in judged["phases"]:
        assert set(phase) == {"name", "start_s", "end_s", "requests", "failures", "latency_ms"}
        assert set(phase["latency_ms"]) == set(phase["requests"])
    assert sum(sum(p["requests"].values()) for p in judged["phases"]) == judged["requests"]
    assert judged["events"]
    assert all(set(e) == {"t", "label"} for e in judged["events"])
    assert judged["events"][0]["label"].startswith("product ")


def test_an_impossible_slo_fails_the_verdict_and_names_it(tmp_path: Path) -> None:
    code, judged, _ = cli(
        "opening-rush", "--generator", "asyncio", "--users", "4", "--spawn-rate", "8",
        "--duration", "4", "--processes", "1", "--out", str(tmp_path),
        "--slo", "join.p99<0.001ms", "--slo", "join.p99<30s",
    )  # fmt: skip
    assert code == 1, judged
    assert judged["ok"] is False
    assert judged["audit_ok"] is True  # only the SLO is broken
    [impossible, generous] = judged["slos"]
    assert impossible["slo"] == "join.p99<0.001ms"
    assert impossible["ok"] is False
    assert impossible["value"] > 0.001
    assert impossible["unit"] == "ms"
    assert generous == {"slo": "join.p99<30s", "value": generous["value"], "unit": "s",
                        "ok": True}  # fmt: skip
    assert judged["problems"] == [f"SLO join.p99<0.001ms breached ({impossible['value']}ms)"]
    assert orjson.loads((tmp_path / "verdict.json").read_bytes()) == judged
    check_new_keys(judged)
    assert judged["seed"] is None


def test_generous_slos_and_stages_pass(tmp_path: Path) -> None:
    (tmp_path / "slos").write_text("# generous\njoin.p99<30s\nrequests.failure_ratio<=1%\n")
    (tmp_path / "stages").write_text("ramp 3 2s as warm\nspike 6 2s\nhold 2s\n")
    code, judged, _ = cli(
        "opening-rush", "--generator", "asyncio", "--processes", "2", "--seed", "5",
        "--out", str(tmp_path / "out"), "--slo-file", str(tmp_path / "slos"),
        "--stages", str(tmp_path / "stages"), "--slo", "like.max<30s",
    )  # fmt: skip
    assert code == 0, judged["problems"]
    assert [s["slo"] for s in judged["slos"] if s["ok"]] == [
        "like.max<30s", "join.p99<30s", "requests.failure_ratio<=1%"]  # fmt: skip
    assert (judged["users"], judged["duration_s"], judged["seed"]) == (6, 6.0, 5)
    assert [(p["name"], p["start_s"], p["end_s"]) for p in judged["phases"]] == [
        ("warm", 0.0, 2.0), ("spike", 2.0, 4.0), ("hold", 4.0, 6.0)]  # fmt: skip
    assert judged["phases"][1]["requests"]["join"] >= 3  # the spike's viewers joined in it
    check_new_keys(judged)
    # After the spike, its viewers left: the last seconds have the warm-up's 3.
    assert judged["timeline"]["rows"][5]["viewers"] == 3
    assert judged["close_codes"] == {}  # leaving is not a close the engine sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "grab.p99 < fast"], "SLO 'grab.p99 < fast': expected"),
        (["--slo", "grabs.p99<1s"], "unknown metric 'grabs'"),
        (["--slo-file", "/nonexistent/slos"], "cannot read /nonexistent/slos"),
        (["--stages", "/nonexistent/stages"], "cannot read /nonexistent/stages"),
        (["--generator", "asyncio", "--locust-master"], "--locust-master is for the locust"),
    ],
)
def test_invalid_slos_and_stages_exit_2(args: list[str], message: str) -> None:
    code, judged, stderr = cli("opening-rush", *args, timeout=60)
    assert (code, judged) == (2, {})
    assert message in stderr


def test_a_locust_master_with_a_separate_worker_gives_the_verdict(tmp_path: Path) -> None:
    port = str(free_port())
    err = tmp_path / "master.err"
    with err.open("wb") as stderr:
        master = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "loadtest", "flash-sale", "--users", "6",
             "--spawn-rate", "10", "--duration", "14", "--locust-master", "--expect-workers",
             "1", "--master-port", port, "--seed", "3", "--slo", "grab.p99<30s", "--out",
             str(tmp_path / "out"), "--json"],
            stdout=subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    worker = None
    try:
        for _ in range(600):  # the master prints what to run on the workers
            line = next((ln for ln in err.read_text().splitlines() if "loadtest-worker" in ln), "")
            if line or master.poll() is not None:
                break
            time.sleep(0.1)
        token = line.partition("LIVECART_HOST_TOKEN=")[2].split()[0]
        room = line.partition("--room ")[2].split()[0]
        assert line.split("--master-port ")[1].split()[0] == port
        worker = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "loadtest-worker", "flash-sale", "--room", room,
             "--master-host", "127.0.0.1", "--master-port", port, "--seed", "3"],
            env={**os.environ, "LIVECART_HOST_TOKEN": token},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = master.communicate(timeout=150)
        assert worker.wait(timeout=30) == 0
    finally:
        for process in (master, worker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert master.returncode == 0, err.read_text()[-3000:]
    judged = orjson.loads(out)
    assert judged["ok"] is True
    assert judged["audit_ok"] is True
    assert judged["generator"] == "locust"
    assert judged["room"] == room
    assert judged["viewers_joined"] == 6
    assert judged["statuses"]["grab"]["reserved"] == 5  # the sale's 5 units, via the worker
    assert judged["slos"] == [{"slo": "grab.p99<30s", "value": judged["slos"][0]["value"],
                               "unit": "s", "ok": True}]  # fmt: skip
    assert [p["name"] for p in judged["phases"]] == ["ramp", "hold"]
    assert judged["phases"][1]["requests"]["grab"] >= 5
    assert any(e["label"].startswith("flash sale ") for e in judged["events"])
    assert judged["seed"] == 3
    check_new_keys(judged)
