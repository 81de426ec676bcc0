"""loadtests/report.py: the run's report page renders a whole result (verdict, SLOs, audit,
per-second charts with the show's events, phases) and an older result without the newer
keys, opens in Chromium at laptop and phone sizes without errors or requests, and a real
`livecart loadtest` writes it. Screenshots go to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, Page, ViewportSize

from loadtests import report
from tests.conftest import capture, needs_chromium, watch_page

ARTIFACTS = Path(__file__).parent / "artifacts"
ROOT = Path(__file__).resolve().parent.parent
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
MALICIOUS = "<script>alert(1)</script>"
KINDS = ("HTTP token", "WS connect", "WS join", "WS like", "WS comment", "WS grab",
         "HTTP checkout", "HTTP payment", "HTTP pay", "WS claim")  # fmt: skip
EVENTS = [
    {"t": 0.2, "label": "pin product p1"},
    {"t": 1.0, "label": "host comment"},
    {"t": 12.0, "label": "coupon drop d1: 60 coupons, opens in 3 s"},
    {"t": 18.0, "label": "sale s1 announced: 60 units, starts in 5 s"},
    {"t": 23.0, "label": "sale s1 starts"},
    {"t": 24.1, "label": "sale s1 sold out"},
    {"t": 40.0, "label": "pin product p2"},
    {"t": 41.0, "label": "sale s2 announced"},
]
CHARTS = 5 + len(KINDS)
PHASES = [("ramp", 0, 10), ("warm", 10, 23), ("flash sale", 23, 35), ("steady", 35, 55),
          ("stop", 55, 60)]  # fmt: skip


def _rate(kind: str, t: int) -> int:
    """A plausible per-second count of `kind` at second `t` of a 300-viewer flash sale."""
    viewers = min(300, 30 * (t + 1))
    if kind in {"HTTP token", "WS connect", "WS join"}:
        return 30 if t < 10 else (2 if kind != "HTTP token" and t in {31, 32} else 0)
    if kind == "WS like":
        return viewers // 4 + (t * 7) % 11
    if kind == "WS comment":
        return viewers // 10 + (t * 3) % 5
    if kind == "WS grab":
        return {23: 290, 24: 180, 25: 40, 26: 8}.get(t, 0)
    if kind in {"HTTP checkout", "HTTP payment", "HTTP pay"}:
        return 6 if 25 <= t <= 34 else 0
    return 55 if kind == "WS claim" and t == 15 else 0


def _latency(kind: str, t: int) -> dict[str, float]:
    base = {"WS grab": 35.0, "HTTP pay": 22.0, "HTTP checkout": 14.0, "WS connect": 9.0}.get(
        kind, 4.0
    )
    if kind == "WS grab" and t == 23:
        base = 120.0
    wobble = 1 + 0.3 * math.sin(t / 3)
    return {"p50": round(base * wobble, 1), "p95": round(base * 2.4 * wobble, 1),
            "p99": round(base * 4.1 * wobble, 1)}  # fmt: skip


def full_result(rows: int = 60) -> dict[str, Any]:
    """A run's result in the shape of docs/loadtesting.md (older keys and the newer ones)."""
    timeline = []
    for t in range(rows):
        requests = {k: n for k in KINDS if (n := _rate(k, t))}
        failures = {"WS grab": 3} if t == 23 else ({"WS connect": 2} if t == 31 else {})
        timeline.append({
            "t": t, "requests": requests, "failures": failures,
            "latency_ms": {k: _latency(k, t) for k in requests},
            "pushes": min(300, 30 * (t + 1)) * (12 if t < 55 else 1),
            "push_latency_ms": {"p50": 18.0 + t % 7, "p95": 60.0 + (t % 9) * 4,
                                "p99": 110.0 + (90 if 23 <= t <= 25 else 0)},
            "viewers": min(300, 30 * (t + 1)) - (14 if t in {31, 32} else 0) if t < 57 else 0,
        })  # fmt: skip
    phases = []
    for name, start, end in PHASES:
        inside = [r for r in timeline if start <= r["t"] < end]
        kinds = sorted({k for r in inside for k in r["requests"]})
        phases.append({
            "name": name, "start_s": start, "end_s": end,
            "requests": {k: sum(r["requests"].get(k, 0) for r in inside) for k in kinds},
            "failures": {k: n for k in kinds
                         if (n := sum(r["failures"].get(k, 0) for r in inside))},
            "latency_ms": {k: _latency(k, start) for k in kinds},
        })  # fmt: skip
    by_type = {k: {"count": sum(r["requests"].get(k, 0) for r in timeline),
                   "failures": sum(r["failures"].get(k, 0) for r in timeline),
                   **_latency(k, 23)} for k in KINDS}  # fmt: skip
    by_type["PUSH stock"] = {"count": 90_000, "failures": 0, "p50": 20.0, "p95": 70.0, "p99": 190}
    requests = sum(v["count"] for k, v in by_type.items() if not k.startswith("PUSH"))
    failures = sum(v["failures"] for k, v in by_type.items() if not k.startswith("PUSH"))
    return {
        "scenario": "flash-sale", "room": "load-3f9a1c22", "users": 300, "duration_s": 60.0,
        "generator": "asyncio", "host": "http://127.0.0.1:41234", "seed": 1234,
        "requests": requests, "failures": failures,
        "failure_ratio": round(failures / requests, 4), "viewers_joined": 300,
        "by_type": by_type, "push_latency_ms": {"p50": 21.0, "p95": 88.0, "p99": 200.0},
        "oversell": 0, "double_used_coupons": 0, "audit_ok": True,
        "report_html": "/tmp/livecart-flash-sale-x/report.html",
        "show_report_html": "/tmp/livecart-flash-sale-x/show/report.html",
        "ok": False, "problems": ["SLO grab.p99<250ms missed: 492 ms"],
        "slos": [
            {"slo": "join.p99<1000ms", "value": 36.9, "unit": "ms", "ok": True},
            {"slo": "grab.p99<250ms", "value": 492.0, "unit": "ms", "ok": False},
            {"slo": "push.p99<500ms", "value": 200.0, "unit": "ms", "ok": True},
            {"slo": "failure_ratio<=0.01", "value": 0.0011, "unit": "", "ok": True},
            {"slo": "claim.p99<250ms", "value": None, "unit": "ms", "ok": True},
        ],
        "phases": phases,
        "timeline": {"interval_s": 1, "rows": timeline},
        "events": EVENTS,
        "close_codes": {"1000 normal": 286, "1001 going_away": 14},
        "show": [{"at_s": 0.2, "action": "pin", "pinned": "p1"}],
        "audit": {"room": "load-3f9a1c22", "ok": True, "checks": [
            {"name": "room exists", "ok": True, "detail": "yes"},
            {"name": "sale s1: stock adds up", "ok": True,
             "detail": "0 available + 21 reserved + 39 sold = 60"},
            {"name": "orders: GMV equal both ways", "ok": True,
             "detail": "net GMV USD 370500 by orders = by payments"},
        ]},
        "statuses": {"join": {"joined": 300}, "grab": {"reserved": 60, "sold_out": 458},
                     "pay": {"paid": 39}},
        "errors": {"WS grab": {"timeout": 3}, "WS connect": {"handshake_503": 2}},
        "processes": 2, "engine_cpu_percent": 61.5, "generator_cpu_percent": 48.2,
    }  # fmt: skip


def old_result() -> dict[str, Any]:
    """A result recorded before the newer keys: no slos, phases, timeline, events,
    close_codes or seed (today's asyncio verdict)."""
    result = full_result()
    for key in (*report.NEW_KEYS, "host"):
        result.pop(key)
    result.update(ok=True, problems=[])
    result["show"] = [
        {"at_s": 0.18, "action": "pin", "pinned": "p1"},
        {"at_s": 3.01, "action": "sale", "sale": "s1", "starts_at": 1, "units": 5},
    ]
    return result


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg id=\"chart-.*?</svg>", page, re.S)]


# ---- the page's content -------------------------------------------------------------------------


def test_a_full_result_renders_every_section() -> None:
    page = report.render(full_result())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "http-equiv" not in page
    assert 'class="verdict fail"' in page
    assert "SLO grab.p99&lt;250ms missed: 492 ms" in page
    assert 'id="missing-keys"' not in page  # every key is there
    slos = re.search(r'<table id="slos">.*?</table>', page, re.S)
    assert slos
    assert slos.group(0).count("<tr>") == 1 + 5
    assert "&lt; 250ms" in slos.group(0)
    assert "492 ms" in slos.group(0)
    assert "no data" in slos.group(0)  # a null measurement says so
    assert slos.group(0).count("✗ fail") == 1
    for text in ("http://127.0.0.1:41234", "load-3f9a1c22", "flash-sale", "1234", "asyncio",
                 "1001 going_away", "sale s1 starts", "flash sale",
                 "GMV equal both ways"):  # fmt: skip
        assert text in page, text
    charts = svgs(page)
    # requests, failures, pushes, viewers, push latency and one latency chart per kind
    assert len(charts) == CHARTS
    for svg in charts:
        assert [child.tag for child in svg][:2] == ["title", "desc"]
    throughput = next(s for s in charts if s.get("id") == "chart-throughput")
    series = {g.get("data-series"): int(g.get("data-points") or 0)
              for g in throughput.iter("g") if g.get("data-series")}  # fmt: skip
    assert set(series) == set(KINDS)
    assert series["WS like"] == 60
    assert series["WS grab"] == 6  # 4 busy seconds and the quiet one on each side
    failed = next(s for s in charts if s.get("id") == "chart-failures")
    assert {g.get("data-series") for g in failed.iter("g") if g.get("data-series")} == {
        "WS grab",
        "WS connect",
    }
    assert len([g for g in throughput.iter("g") if g.get("class") == "event"]) == len(EVENTS)
    assert len([r for r in throughput.iter("rect") if r.get("class") == "phase"]) == 5
    assert page.count('<li data-event="') == len(EVENTS)
    phases = re.search(r'<table id="phases">.*?</table>', page, re.S)
    assert phases
    assert phases.group(0).count('class="phase-start"') == len(PHASES)


def test_an_older_result_renders_and_says_what_it_lacks() -> None:
    page = report.render(old_result())
    assert 'class="verdict pass"' in page
    notice = re.search(r'<p class="notice" id="missing-keys">.*?</p>', page, re.S)
    assert notice
    for key in report.NEW_KEYS:
        assert f"<code>{key}</code>" in notice.group(0), key
    for key in ("slos", "phases", "timeline", "close_codes", "events"):
        assert f'data-missing="{key}"' in page, key
    assert "Per-second charts: not in this run" in page
    assert "not recorded (older run)" in page  # the seed
    assert "<path" not in page  # no chart lines without a timeline
    # The host steps it played stand in for the events, numbered.
    assert page.count('<li data-event="') == 2
    assert "sale (sale s1, units 5)" in page
    assert "WS grab" in page  # the totals are still there


@pytest.mark.parametrize(
    "result",
    [
        {},
        {
            "ok": None,
            "slos": None,
            "phases": "x",
            "timeline": {"rows": None},
            "events": [{}],
            "close_codes": [],
            "seed": None,
            "by_type": {"WS x": None},
        },
        {
            "timeline": {"interval_s": 1, "rows": [{"t": 0, "requests": {}, "viewers": 0}]},
            "slos": [{"slo": "nonsense"}],
            "phases": [{"name": "p"}],
            "events": [],
        },
        {
            "timeline": {
                "rows": [
                    {
                        "t": 0,
                        "latency_ms": {"WS grab": {"p99": float("nan")}},
                        "requests": {"WS grab": 1},
                        "viewers": 1,
                    }
                ]
            }
        },
    ],
    ids=["empty", "wrong-types", "one-quiet-second", "nan"],
)
def test_degenerate_results_render(result: dict[str, Any]) -> None:
    page = report.render(result)
    for svg in svgs(page):
        ET.fromstring(ET.tostring(svg))
    lowered = page.lower()
    assert "nan" not in lowered.replace("nanosecond", "")
    assert "inf" not in re.sub(r"info", "", lowered)
    assert "verdict" in page


def test_a_long_run_is_drawn_in_buckets() -> None:
    result = full_result(rows=3600)
    page = report.render(result)
    throughput = next(s for s in svgs(page) if s.get("id") == "chart-throughput")
    points = {g.get("data-series"): int(g.get("data-points") or 0)
              for g in throughput.iter("g") if g.get("data-series")}  # fmt: skip
    assert 0 < points["WS like"] <= report.MAX_POINTS
    assert "each point 6 s" in page


def test_crowded_events_keep_their_badges_apart() -> None:
    result = full_result()
    result["events"] = [{"t": 23.0 + i * 0.05, "label": f"step {i}"} for i in range(6)]
    throughput = next(s for s in svgs(report.render(result)) if s.get("id") == "chart-throughput")
    badges = [(float(c.get("cx") or 0), float(c.get("cy") or 0)) for c in throughput.iter("circle")
              if c.get("r") == "8"]  # fmt: skip
    assert len(badges) == 6
    for i, (x1, y1) in enumerate(badges):
        for x2, y2 in badges[i + 1 :]:
            assert math.hypot(x1 - x2, y1 - y2) >= 16, badges
    assert all(x <= report.W for x, _ in badges)


def test_strings_from_the_result_are_escaped() -> None:
    result = full_result()
    result["room"] = MALICIOUS
    result["problems"] = [MALICIOUS]
    result["events"][0]["label"] = MALICIOUS
    result["slos"][0]["slo"] = MALICIOUS
    result["audit"]["checks"][0]["detail"] = MALICIOUS
    result["timeline"]["rows"][3]["requests"][MALICIOUS] = 3
    page = report.render(result)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 6


# ---- in a browser ---------------------------------------------------------------------------


async def open_page(browser: Browser, path: Path, viewport: ViewportSize,
                    shot: Path) -> tuple[Page, list[str], list[str]]:  # fmt: skip
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors, requests = watch_page(page)
    await page.goto(path.as_uri())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await capture(page, shot, full_page=True)
    return page, errors, requests


async def no_horizontal_scroll(page: Page) -> None:
    """Nothing but the tables' own scrollers is wider than the window."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= await page.evaluate("window.innerWidth"), width


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize(("viewport", "name"), [(DESKTOP, "desktop"), (PHONE, "phone")])
async def test_the_report_opens_in_chromium(browser: Browser, tmp_path: Path,
                                            viewport: ViewportSize, name: str) -> None:  # fmt: skip
    path = tmp_path / report.FILE_NAME
    path.write_text(report.render(full_result()), encoding="utf-8")
    shot = ARTIFACTS / f"loadtest-report-{name}.png"
    page, errors, requests = await open_page(browser, path, viewport, shot)
    try:
        verdict = page.locator("#verdict")
        assert await verdict.is_visible()
        assert "FAIL" in await verdict.inner_text()
        assert "grab.p99<250ms missed" in await page.locator("#reasons").inner_text()
        assert await page.locator("#slos tbody tr").count() == 5
        assert await page.locator("#slos").is_visible()
        charts = page.locator("svg[id^=chart-]")
        assert await charts.count() == CHARTS
        for i in range(await charts.count()):
            box = await charts.nth(i).bounding_box()
            assert box
            assert box["width"] > 200
            assert box["height"] > 100
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= viewport["width"]
        lines = page.locator("#chart-throughput g.series path")
        assert await lines.count() == len(KINDS)
        assert await lines.first.is_visible()
        markers = page.locator("#chart-throughput g.event")
        assert await markers.count() == len(EVENTS)
        assert await markers.first.is_visible()
        assert await page.locator("#events li").count() == len(EVENTS)
        await no_horizontal_scroll(page)
        # What a reader sees first, and at the charts (docs/loadtesting.md shows these).
        await capture(page, ARTIFACTS / f"loadtest-report-{name}-top.png")
        await page.evaluate("document.getElementById('throughput').scrollIntoView()")
        await capture(page, ARTIFACTS / f"loadtest-report-{name}-charts.png")
        # Readable: the charts' smallest text is at least 8 CSS px high on screen.
        smallest = await page.evaluate(
            "Math.min(...[...document.querySelectorAll('#chart-throughput text')]"
            ".map(t => t.getBoundingClientRect().height).filter(h => h > 0))"
        )
        assert smallest >= 8, smallest
    finally:
        await page.context.close()
    assert errors == [], f"console errors: {errors}"
    assert requests == [path.as_uri()]


@pytest.mark.browser
@needs_chromium
async def test_an_older_result_opens_in_chromium(browser: Browser, tmp_path: Path) -> None:
    path = tmp_path / report.FILE_NAME
    path.write_text(report.render(old_result()), encoding="utf-8")
    page, errors, requests = await open_page(
        browser, path, PHONE, ARTIFACTS / "loadtest-report-older-phone.png"
    )
    try:
        assert "PASS" in await page.locator("#verdict").inner_text()
        notice = page.locator("#missing-keys")
        assert await notice.is_visible()
        assert "timeline" in await notice.inner_text()
        assert await page.locator("[data-empty]").count() == 0
        assert await page.locator("[data-missing=timeline]").is_visible()
        assert await page.locator("svg[id^=chart-]").count() == 0
        assert await page.locator("#events li").count() == 2
        await no_horizontal_scroll(page)
    finally:
        await page.context.close()
    assert errors == []
    assert requests == [path.as_uri()]


# ---- a real run -------------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_a_real_loadtest_writes_the_report(browser: Browser, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", "loadtest", "flash-sale", "--generator", "asyncio",
        "--users", "10", "--spawn-rate", "10", "--duration", "10", "--processes", "1",
        "--out", str(out), "--json",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(180):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    verdict = orjson.loads(stdout)
    path = out / report.FILE_NAME
    assert path.exists(), stderr.decode()
    assert f"run report {path}" in stderr.decode()
    page, errors, requests = await open_page(
        browser, path, DESKTOP, ARTIFACTS / "loadtest-report-real.png"
    )
    try:
        assert "PASS" in await page.locator("#verdict").inner_text()
        assert verdict["room"] in await page.locator("#target").inner_text()
        assert await page.locator("#audit tbody tr").count() == len(verdict["audit"]["checks"])
        rows = page.locator("#by-type tbody tr")
        assert await rows.count() == len(verdict["by_type"])
        # The show's steps (or events) are listed and marked on the charts if there are any.
        assert await page.locator("#events li").count() >= 1
    finally:
        await page.context.close()
    assert errors == [], f"console errors: {errors}"
    assert requests == [path.as_uri()]
