"""engine/insights/report_html.py: the post-live report renders the figures, escapes host strings,
survives empty/degenerate data, and opens in Chromium with no errors and no network.
The screenshot goes to tests/artifacts/report/ (gitignored)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ViewportSize

from engine.insights.report_html import (
    CSP,
    MINUTE_MS,
    Plot,
    compact,
    cumulative_gmv,
    money,
    nice_range,
    render,
)
from engine.insights.show_metrics import SecondView, second_rows
from tests.conftest import capture, needs_chromium, watch_page

ARTIFACTS = Path(__file__).parent / "artifacts" / "report"
LAPTOP: ViewportSize = {"width": 1366, "height": 768}
START = 1_767_297_600_000  # 2026-01-01 20:00:00 UTC
MINUTE = 60_000
MALICIOUS = "<script>alert(1)</script>"


def sample(minutes: int = 10) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A 10-minute show with two pins, a flash sale, a coupon drop and a giveaway."""
    rows = [
        {"minute": START + i * MINUTE, "online_avg": 40.0 + i * 5.5, "online_max": 48 + i * 6,
         "views": 30 + i, "new_viewers": 10, "comments": 12 + (i % 4) * 3, "likes": 50 + i * 7,
         "shares": 1, "impressions": 80, "clicks": 20, "grab_attempts": 9, "reservations": 5,
         "orders": 4, "paid_orders": 3, "gmv": 12_345 if i != 6 else 0,
         "refunded": 5_000 if i == 7 else 0, "coupon_claims": 2, "coupon_redemptions": 1,
         "giveaway_entries": 3 if i == 8 else 0, "auction_bids": 0}
        for i in range(minutes)
    ]  # fmt: skip
    markers = [
        {"t": START + 30_000, "kind": "pin", "label": "Denim jacket"},
        {"t": START + 2 * MINUTE, "kind": "flash_sale", "label": "DJ-M flash sale"},
        {"t": START + 4 * MINUTE + 5_000, "kind": "coupon_drop", "label": "5 off"},
        {"t": START + 6 * MINUTE, "kind": "pin", "label": "Leather boots"},
        {"t": START + 8 * MINUTE, "kind": "giveaway", "label": "Scarf giveaway"},
    ]
    summary: dict[str, Any] = {
        "room": "r1", "title": "Friday drop", "state": "ended", "currency": "USD",
        "generated_at": START + 11 * MINUTE, "started_at": START,
        "ended_at": START + 10 * MINUTE, "duration_s": 600,
        "unique_viewers": 1_234, "new_viewers": 800, "returning_viewers": 434, "views": 2_000,
        "peak_concurrent": 102, "average_watch_s": 185.4, "comments": 210, "likes": 815,
        "shares": 10, "product_impressions": 800, "product_clicks": 200, "grab_attempts": 90,
        "grab_results": {"reserved": 50, "sold_out": 30, "limit_reached": 10},
        "reservations": 50, "orders": 40, "paid_orders": 30, "paid_buyers": 28,
        "gmv": 123_450, "gmv_by_currency": {"USD": 123_450}, "refunds": 1, "refunded": 5_000,
        "coupon_drops": 1, "coupon_claims": 20, "coupon_redemptions": 8,
        "coupon_redemption_rate": 0.4, "giveaway_entries": 3, "auction_bids": 0,
        "conversion": 0.024311, "click_to_order_rate": 0.2, "average_order_value": 4_115,
        "gmv_per_thousand_views": 61_725, "referral_gmv": 12_345, "referral_gmv_share": 0.1,
        "funnel": {"viewers": 1_234, "product_clicks": 200, "grab_attempts": 90,
                   "reservations": 50, "orders": 40, "paid": 30},
        "flash_sales": [
            {"sale": "s1", "product": "p1", "sku": "DJ-M", "title": "Denim jacket M",
             "allotment": 1_000, "sold": 1_000, "reserved": 0, "started_at": START + 2 * MINUTE,
             "sold_out_after_ms": 3_200, "sell_through": "1,000 units in 3.2 s"},
            {"sale": "s2", "product": "p2", "sku": "LB-42", "title": "Leather boots",
             "allotment": 20, "sold": 7, "reserved": 2, "started_at": START + 6 * MINUTE,
             "sold_out_after_ms": None, "sell_through": None},
        ],
        "products": [
            {"id": "p1", "title": "Denim jacket", "impressions": 500, "clicks": 150,
             "grab_attempts": 70, "reservations": 40, "orders": 33, "units_sold": 1_000,
             "gmv": 100_000},
            {"id": "p2", "title": "Leather boots", "impressions": 300, "clicks": 50,
             "grab_attempts": 20, "reservations": 10, "orders": 7, "units_sold": 7,
             "gmv": 23_450},
        ],
    }  # fmt: skip
    return summary, rows, markers


def chart(page: str, key: str) -> str:
    match = re.search(rf'<figure id="{key}">.*?</figure>', page, re.S)
    assert match, key
    return match.group(0)


# ---- formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123_450, "USD", "$1,234.50"),
        (123_450, "EUR", "1,234.50 EUR"),
        (123_450, "eur", "1,234.50 EUR"),
        (123_450, "JPY", "123,450 JPY"),
        (9_900, "KRW", "9,900 KRW"),
        (5, "USD", "$0.05"),
        (-5_000, "USD", "-$50.00"),
        (0, None, "0.00"),
        (10**15, "USD", "$10,000,000,000,000.00"),
    ],
)
def test_money_formatting(amount: int, currency: str | None, text: str) -> None:
    assert money(amount, currency) == text


def test_compact_axis_labels_and_nice_ranges() -> None:
    assert [compact(v) for v in (0, 950, 12_500, 3_000_000, 1.2e9, 0.25)] == [
        "0", "950", "12.5k", "3M", "1.2B", "0.25",
    ]  # fmt: skip
    assert nice_range(0, 0) == (0, 4, 1)  # all zeros: still a range
    assert nice_range(0, 97) == (0, 100, 25)
    low, high, step = nice_range(-50, 120)
    assert low <= -50
    assert high >= 120
    assert step > 0


def test_cumulative_gmv_is_a_running_net_sum() -> None:
    _, rows, _ = sample(3)
    rows[1]["refunded"] = 20_000
    assert cumulative_gmv(rows) == [12_345, 4_690, 17_035]


def test_cumulative_gmv_is_flat_until_the_first_paid_order() -> None:
    # A sale at minute 3: the first order is paid 40 s into it, nothing was sold before.
    summary, rows, markers = sample(6)
    for i, row in enumerate(rows):
        row.update(gmv=0 if i < 3 else 10_000, refunded=0)
    paid_at = START + 3 * MINUTE + 40_000
    summary["first_paid_at"] = paid_at
    svg = chart(render(summary, rows, markers), "gmv")
    line = re.search(r'<polyline[^>]* points="([^"]+)"', svg)
    assert line
    points = [tuple(map(float, p.split(","))) for p in line.group(1).split()]
    plot = Plot(START, START + 6 * MINUTE, *nice_range(0, 30_000)[:2])
    zero = round(plot.y(0), 1)
    first_up = next(i for i, (_, y) in enumerate(points) if y != zero)
    assert points[0] == (round(plot.x(START), 1), zero)  # starts at 0, at the show's start
    assert all(y == zero for _, y in points[:first_up])
    # The rise leaves 0 at the first paid order, not before it.
    assert points[first_up - 1][0] == round(plot.x(paid_at), 1)
    assert points[-1] == (round(plot.x(START + 6 * MINUTE), 1), round(plot.y(30_000), 1))
    assert max(x for x, _ in points) <= plot.x(START + 6 * MINUTE)
    assert MINUTE == MINUTE_MS


# ---- content -----------------------------------------------------------------------------------


def test_report_shows_the_formatted_figures() -> None:
    summary, rows, markers = sample()
    page = render(summary, rows, markers)
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Friday drop — post-live report</title>" in page
    for text in ("Friday drop", "r1", "ended", "2026-01-01 20:00:00 UTC",
                 "2026-01-01 20:10:00 UTC", "10m 00s", "1,234", "102", "3m 05s", "210", "815",
                 "$1,234.50", "2.43%", "$41.15", "$617.25", "40.00%", "10.00%", "800 / 434",
                 "Denim jacket M", "1,000 units in 3.2 s", "$1,000.00", "$234.50",
                 "Scarf giveaway", "16.21%"):  # fmt: skip
        assert text in page, text
    sales = re.search(r'<table id="flash-sales">.*?</table>', page, re.S)
    assert sales
    assert sales.group(0).count("—") == 3
    assert "<script" not in page
    # Nothing to fetch: no product has an image (the policy names the schemes it allows).
    assert "http" not in page.replace(CSP, "").replace("http-equiv", "")
    assert "<img" not in page


def test_every_chart_is_well_formed_svg_with_a_title_and_desc() -> None:
    page = render(*sample())
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 4
    for svg in svgs:
        root = ET.fromstring(svg)
        tags = [child.tag for child in root]
        assert tags[:2] == ["title", "desc"]
        assert root.get("role") == "img"
        assert root.get("aria-labelledby")


def test_markers_are_drawn_once_each_in_the_online_chart() -> None:
    summary, rows, markers = sample()
    page = render(summary, rows, markers)
    online = chart(page, "online")
    assert online.count("data-kind=") == len(markers) == 5
    assert online.count('data-kind="pin"') == 2
    for kind in ("flash_sale", "coupon_drop", "giveaway"):
        assert online.count(f'data-kind="{kind}"') == 1
    assert 'data-legend="auction"' in online  # the legend lists every kind
    assert page.count("data-kind=") == 5  # no markers on the other charts
    assert page.count("<tr>") == 1 + 2 + 1 + 2 + 1 + 5  # heads and rows of the three tables


def test_host_strings_are_escaped() -> None:
    summary, rows, markers = sample()
    summary["title"] = MALICIOUS
    summary["room"] = MALICIOUS
    summary["products"][0]["title"] = MALICIOUS
    summary["flash_sales"][0]["title"] = MALICIOUS
    markers[0]["label"] = MALICIOUS
    markers[1]["kind"] = '"><script>alert(1)</script>'
    page = render(summary, rows, markers)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 6


def test_empty_minutes_say_no_data_yet() -> None:
    summary, _, _ = sample()
    page = render(summary, [], [])
    assert page.count("No data yet") == 3
    assert "<polyline" not in page
    assert 'id="chart-funnel"' in page  # the funnel comes from the summary


def test_an_empty_summary_renders() -> None:
    page = render({}, [], [])
    assert "Untitled show" in page
    assert "No data yet" in page
    assert "%" not in chart(page, "funnel").split("</desc>")[1].replace("—", "")


@pytest.mark.parametrize(
    "change",
    ["single", "zeros", "huge"],
)
def test_degenerate_minutes_render_without_nan(change: str) -> None:
    summary, rows, markers = sample()
    if change == "single":
        rows = rows[:1]
    elif change == "zeros":
        rows = [{key: 0 if key != "minute" else row["minute"] for key in row} for row in rows]
        summary["funnel"] = dict.fromkeys(summary["funnel"], 0)
    else:
        for row in rows:
            row.update(online_avg=4.5e9, online_max=5 * 10**9, gmv=10**15, likes=10**12)
        summary["gmv"] = 10**16
    page = render(summary, rows, markers)
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ET.fromstring(svg)
    assert "nan" not in page.lower().replace("denim", "")
    assert "inf" not in page.lower()
    if change == "single":
        assert "<circle" in chart(page, "online")  # one point still shows
    if change == "huge":
        assert "$100,000,000,000,000.00" in page
        assert "B<" in chart(page, "online")


def card(page: str, label: str) -> str:
    match = re.search(rf'<div class="label">{re.escape(label)}</div><div class="value">([^<]*)<',
                      page)  # fmt: skip
    assert match, label
    return match.group(1)


def test_a_rate_with_nothing_to_divide_by_shows_a_dash() -> None:
    """As the console's dashboard: 0 clicks, claims, viewers, orders, views or GMV make the
    figure divided by them "—", not "0.00%"; summary.json still says 0 (docs/metrics.md)."""
    summary, rows, markers = sample()
    page = render(summary, rows, markers)
    shown = {label: card(page, label) for label in ("Conversion", "Click → order",
             "Coupon redemption", "Referral share of GMV", "Average order value",
             "GMV per 1,000 views")}  # fmt: skip
    assert shown == {"Conversion": "2.43%", "Click → order": "20.00%",
                     "Coupon redemption": "40.00%", "Referral share of GMV": "10.00%",
                     "Average order value": "$41.15", "GMV per 1,000 views": "$617.25"}  # fmt: skip
    summary.update(unique_viewers=0, product_clicks=0, coupon_claims=0, gmv=0, paid_orders=0,
                   views=0, conversion=0.0, click_to_order_rate=0.0, average_order_value=0,
                   coupon_redemption_rate=0.0, referral_gmv_share=0.0,
                   gmv_per_thousand_views=0)  # fmt: skip
    page = render(summary, rows, markers)
    assert {label: card(page, label) for label in shown} == dict.fromkeys(shown, "—")
    # A real 0 % (claims, none redeemed) is still 0 %.
    summary.update(coupon_claims=5, coupon_redemption_rate=0.0)
    assert card(render(summary, rows, markers), "Coupon redemption") == "0.00%"


def test_a_product_s_first_image_is_its_thumbnail() -> None:
    summary, rows, markers = sample()
    summary["products"][0]["image"] = "/images/" + "a" * 64 + ".png"
    summary["products"][1]["image"] = 'https://cdn.example/b.jpg?x=1&y="2"'
    summary["products"].append({"id": "p3", "title": "No picture", "image": None})
    summary["products"].append({"id": "p4", "title": "Bad", "image": "javascript:alert(1)"})
    served = render(summary, rows, markers, origin="http://shop.example:8080")
    thumbs = re.findall(r'<span class="thumb">(.*?)</span>', served)
    assert thumbs == [
        '<img src="http://shop.example:8080/images/' + "a" * 64 + '.png" alt="" loading="lazy" '
        'decoding="async" width="40" height="40">',
        '<img src="https://cdn.example/b.jpg?x=1&amp;y=&quot;2&quot;" alt="" loading="lazy" '
        'decoding="async" width="40" height="40">',
        "",  # an empty box: the placeholder
        "",
    ]
    # Written to a file (`livecart report`), the page keeps the same-origin path.
    assert 'src="/images/' in render(summary, rows, markers)
    page = render(summary, rows, markers)
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "img-src 'self' https: http:" in CSP
    assert "default-src 'none'" in CSP


# ---- in a browser ------------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_report_opens_in_chromium_without_errors_or_network(
    browser: Browser, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    path.write_text(render(*sample()), encoding="utf-8")
    context = await browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    errors, requests = watch_page(page)
    try:
        await page.goto(path.as_uri())
        charts = page.locator("svg[role=img]")
        assert await charts.count() == 4
        for i in range(4):
            chart_svg = charts.nth(i)
            assert await chart_svg.is_visible()
            box = await chart_svg.bounding_box()
            assert box
            assert box["width"] > 0
            assert box["height"] > 0
        markers = page.locator("#chart-online [data-kind]")
        assert await markers.count() == 5
        assert await page.locator("h1").inner_text() == "Friday drop"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await capture(page, ARTIFACTS / "report.png", full_page=True)
    finally:
        await context.close()
    assert errors == [], f"console errors: {errors}"
    assert requests == [path.as_uri()]


# ---- a short show, per second ------------------------------------------------------------------


def test_second_rows_count_each_second_and_drop_what_is_outside() -> None:
    rows = second_rows(
        START + 200, START + 2_900,
        comments=[START + 300, START + 999, START + 1_000, START - 1, START + 3_000],
        reservations=[START + 2_500], orders=[START + 2_600],
        paid=[(START + 2_800, 4_600), (START + 2_900, 5_600 - 1_000)],
    )  # fmt: skip
    assert [row["second"] for row in rows] == [START, START + 1_000, START + 2_000]
    assert [row["comments"] for row in rows] == [2, 1, 0]
    assert [(r["reservations"], r["orders"], r["paid_orders"], r["gmv"]) for r in rows] == [
        (0, 0, 0, 0), (0, 0, 0, 0), (1, 1, 2, 9_200)]  # fmt: skip


def short_show() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], SecondView]:
    """A 3-minute show: comments all along, a flash sale's rush at 60 s, its payments after."""
    summary, rows, markers = sample(3)
    summary.update(started_at=START, ended_at=START + 3 * MINUTE, duration_s=180)
    markers = [m for m in markers if m["t"] < START + 3 * MINUTE]
    seconds = second_rows(
        START, START + 3 * MINUTE,
        comments=[START + i * 700 for i in range(250)],
        reservations=[START + 60_000 + i * 40 for i in range(50)],
        orders=[START + 75_000 + i * 500 for i in range(40)],
        paid=[(START + 90_000 + i * 600, 3_000) for i in range(30)],
    )  # fmt: skip
    return summary, rows, markers, SecondView(START, START + 3 * MINUTE, seconds, START + 5_000)


def test_a_short_show_is_drawn_per_second() -> None:
    summary, rows, markers, view = short_show()
    page = render(summary, rows, markers, view)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 5
    for svg in svgs:
        ET.fromstring(svg)
    commerce = chart(page, "commerce")
    sums = dict(re.findall(r'data-series="([^"]+)" data-sum="([^"]+)"', commerce))
    assert sums == {"Reservations / s": "50", "Orders / s": "40", "Paid orders / s": "30"}
    assert commerce.count("data-kind=") == len(markers)  # the moments on the rush too
    engagement = chart(page, "engagement")
    assert 'data-series="Comments / s" data-sum="250"' in engagement
    assert "stroke-dasharray" in engagement  # likes: a minute's average, dashed
    assert "comments before 20:00:05 are not in it" in engagement
    assert re.search(r">20:0\d:\d\d</text>", chart(page, "gmv"))  # clock ticks with seconds
    assert "GMV (USD): max 900" in chart(page, "gmv")  # 30 x $30.00
    assert "Comments and likes per minute" not in page


@pytest.mark.browser
@needs_chromium
async def test_a_short_show_opens_in_chromium(browser: Browser, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render(*short_show()), encoding="utf-8")
    page = await browser.new_page(viewport=LAPTOP)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        await page.goto(path.as_uri())
        assert await page.locator("svg[role=img]").count() == 5
        assert await page.locator("#chart-commerce polyline").count() == 3
        assert await page.locator("#chart-commerce polyline").first.is_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await capture(page, ARTIFACTS / "report-per-second.png", full_page=True)
    finally:
        await page.close()
    assert errors == []
