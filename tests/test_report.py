"""The post-live report (engine/insights/report.py, `livecart report`, GET .../report): a scripted
show with known events, and every figure in summary.json equal to what the script did,
counted by hand in the comments below."""

from __future__ import annotations

import csv
import io
import re
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from playwright.async_api import Browser

from clients import HostClient, ShopperClient
from engine import cli
from engine.core.clock import now_ms
from engine.insights.report_html import figures
from engine.insights.show_metrics import MINUTE_COLUMNS, SHORT_SHOW_S, sell_through_text
from engine.server.app import Engine
from tests.conftest import (
    ADDRESS,
    EngineFactory,
    RoomFactory,
    ViewerFactory,
    capture,
    needs_chromium,
    poll,
    token,
)
from tests.test_api_catalog import JACKET
from tests.test_api_orders import CONTACT
from tests.test_customers import new_room
from tests.test_images import PNG

ARTIFACTS = Path(__file__).parent / "artifacts" / "report"


async def get_file(host: HostClient, room: str, name: str) -> bytes:
    path = f"/api/rooms/{room}/report" + ("" if name == "report.html" else f"/{name}")
    response = await host.http.get(path)
    assert response.status_code == 200, response.text
    return response.content


async def summary_of(host: HostClient, room: str) -> dict[str, Any]:
    summary: dict[str, Any] = orjson.loads(await get_file(host, room, "summary.json"))
    return summary


async def pay(shopper: ShopperClient, reservation: str, coupons: list[str] | None = None) -> str:
    order = await shopper.checkout([reservation], address=ADDRESS, contact=CONTACT,
                                   coupons=coupons or [])  # fmt: skip
    payment = await shopper.start_payment(order["id"])
    assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    order_id: str = order["id"]
    return order_id


async def play_show(engine: Engine, room_factory: RoomFactory,
                    viewer_factory: ViewerFactory) -> tuple[str, dict[str, str]]:  # fmt: skip
    """The script. Users are fresh names, so "new to the host" is known exactly."""
    tag = secrets.token_hex(3)
    ana, bob, cy, dan = (f"{name}-{tag}" for name in ("ana", "bob", "cy", "dan"))
    earlier = await room_factory()  # dan watched an earlier show of the same host
    await (await viewer_factory(earlier, user=dan)).close()

    room = await room_factory()
    host = HostClient(engine.base_url, room, token(room, "host", "host-1"))
    async with host:
        await host.create_product(**JACKET)  # p1
        await host.pin_product("p1")  # marker 1; every join from here sees the card
        template = await host.create_coupon("amount_off", "10 off 50", 100, "USD",
                                            amount=1000, min_spend=5000)  # fmt: skip
        drop = await host.drop_coupons(template["id"], 10)  # marker 2; 1 drop
        sale = await host.launch_sale("DJ-M", 2, price=5000)  # marker 3; s1, 2 units

        # Joins: cy, then ana through cy's share link, dan, bob: 4 viewers, 4 views.
        viewers = {cy: await viewer_factory(room, user=cy)}
        async with ShopperClient(engine.base_url, room, token(room, "viewer", cy)) as cy_shop:
            link = await cy_shop.share_link()  # 1 share
        viewers[ana] = await viewer_factory(room, user=ana, ref=link["ref"])
        viewers[dan] = await viewer_factory(room, user=dan)  # returning to host-1
        viewers[bob] = await viewer_factory(room, user=bob)
        await poll(lambda: host.call("GET", f"/api/rooms/{room}/dashboard"),
                   lambda board: board["online"] == 4)  # fmt: skip
        # bob leaves and comes back: a 5th view, still 4 viewers.
        await viewers[bob].close()
        viewers[bob] = await viewer_factory(room, user=bob)

        for viewer, text in [(ana, "love it"), (ana, "size?"), (cy, "want!")]:  # 3 comments
            await viewers[viewer].comment(text)
        await viewers[bob].like(5, confirm=True)  # 5 likes
        await viewers[ana].click("p1")
        await viewers[ana].click("p1")  # the same card again: not another click
        await viewers[cy].click("p1")  # 2 clicks

        claimed = await viewers[ana].claim(drop["id"])  # 1 claim
        # 3 grab attempts: ana and cy reserve the 2 units, bob finds it sold out.
        ana_hold = (await viewers[ana].grab(sale["id"]))["reservation"]
        cy_hold = (await viewers[cy].grab(sale["id"]))["reservation"]
        assert (await viewers[bob].grab(sale["id"]))["status"] == "sold_out"

        giveaway = await host.open_giveaway("Lucky bag", "1 bag", duration_s=120)  # marker 4
        await viewers[dan].enter_giveaway(giveaway["id"])  # 1 entry
        auction = await host.open_auction("DJ-S", start_price=3000, duration_s=120)  # marker 5
        await viewers[bob].bid(auction["id"], 3000)  # 1 bid

        # ana pays 5000 - 1000 (coupon) + 600 shipping = 4600; cy pays 5600, then 1000
        # of it is refunded: 2 orders, 2 paid, GMV 4600 + 4600 = 9200, 1 refund of 1000.
        async with ShopperClient(engine.base_url, room, token(room, "viewer", ana)) as shopper:
            await pay(shopper, ana_hold, [claimed["coupon"]])
        async with ShopperClient(engine.base_url, room, token(room, "viewer", cy)) as shopper:
            cy_order = await pay(shopper, cy_hold)
        await host.refund(cy_order, "r1", 1000)
    return room, {"ana": ana, "bob": bob, "cy": cy, "dan": dan, "sale": sale["id"]}


EXPECTED = {
    "state": "live", "currency": "USD",
    "unique_viewers": 4, "new_viewers": 3, "returning_viewers": 1, "views": 5,
    "peak_concurrent": 4,
    "comments": 3, "likes": 5, "shares": 1,
    "product_impressions": 5,  # the pinned card, in each of the 5 welcomes
    "product_clicks": 2,
    "grab_attempts": 3, "grab_results": {"reserved": 2, "sold_out": 1}, "reservations": 2,
    "orders": 2, "paid_orders": 2, "paid_buyers": 2,
    "gmv": 9200, "gmv_by_currency": {"USD": 9200}, "refunds": 1, "refunded": 1000,
    "coupon_drops": 1, "coupon_claims": 1, "coupon_redemptions": 1,
    "coupon_redemption_rate": 1.0,
    "giveaway_entries": 1, "auction_bids": 1,
    "conversion": 0.5,  # 2 paying buyers / 4 viewers
    "click_to_order_rate": 1.0,  # 2 orders / 2 clicks
    "average_order_value": 4600,  # 9200 / 2
    "gmv_per_thousand_views": 1_840_000,  # 9200 * 1000 / 5 views
    "referral_gmv": 4600,  # ana came through cy's link, then bought
    "referral_gmv_share": 0.5,
    "funnel": {"viewers": 4, "product_clicks": 2, "grab_attempts": 3, "reservations": 2,
               "orders": 2, "paid": 2},
    # This engine keeps no books: who bought from the shop before is unknown.
    "new_buyers": None, "returning_buyers": None, "repeat_buyer_rate": None,
}  # fmt: skip


def settled(summary: dict[str, Any]) -> bool:
    """Every process's counters have reached Redis (they trail events by a flush)."""
    return all(summary[name] == EXPECTED[name] for name in ("views", "product_impressions",
               "likes", "comments", "auction_bids", "coupon_claims", "product_clicks"))  # fmt: skip


async def minutes_of(host: HostClient, room: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((await get_file(host, room, "metrics.csv")).decode())))


def minutes_settled(minutes: list[dict[str, str]]) -> bool:
    """The per-minute money counters have reached Redis too: both payments and the refund
    (a refund is counted by whichever process served it, one flush later)."""
    return (sum(int(row["paid_orders"]) for row in minutes) == 2
            and sum(int(row["refunded"]) for row in minutes) > 0)  # fmt: skip


@pytest.fixture
async def show(engine: Engine, room_factory: RoomFactory, viewer_factory: ViewerFactory,
               ) -> tuple[str, dict[str, str], HostClient]:  # fmt: skip
    room, cast = await play_show(engine, room_factory, viewer_factory)
    host = HostClient(engine.base_url, room, token(room, "host", "host-1"))
    return room, cast, host


async def test_every_figure_is_what_the_script_did(
    show: tuple[str, dict[str, str], HostClient],
) -> None:
    room, cast, host = show
    async with host:
        summary = await poll(lambda: summary_of(host, room), settled)
        minutes = await poll(lambda: minutes_of(host, room), minutes_settled)
        orders = list(csv.DictReader(io.StringIO((await get_file(host, room, "orders.csv"))
                                                 .decode())))  # fmt: skip
    assert {name: summary[name] for name in EXPECTED} == EXPECTED
    assert summary["room"] == room
    assert summary["title"]
    assert 0 < summary["average_watch_s"] <= summary["duration_s"] + 1
    # The cumulative GMV chart stays flat until this moment (engine/insights/report_html.py).
    assert summary["first_paid_at"] == min(int(o["paid_at"]) for o in orders if o["paid_at"])
    [flash] = summary["flash_sales"]
    assert (flash["sale"], flash["allotment"], flash["sold"], flash["reserved"]) == (
        cast["sale"], 2, 2, 0)  # fmt: skip
    assert flash["sold_out_after_ms"] is not None
    assert flash["sell_through"] == sell_through_text(2, flash["sold_out_after_ms"])
    assert flash["sell_through"].startswith("2 units in ")
    [product] = summary["products"]
    assert product == {
        "id": "p1",
        "title": JACKET["title"],
        "impressions": 5,
        "clicks": 2,
        "grab_attempts": 3,
        "reservations": 2,
        "orders": 2,
        "units_sold": 2,
        "gmv": 10_000,
        "image": JACKET["images"][0],  # its first image: the report's thumbnail
    }  # 2 units at 5000, before coupon, shipping, refund
    # The minutes add up to the totals.
    assert list(minutes[0]) == list(MINUTE_COLUMNS)
    for column, total in [
        ("views", 5),
        ("comments", 3),
        ("likes", 5),
        ("clicks", 2),
        ("grab_attempts", 3),
        ("reservations", 2),
        ("orders", 2),
        ("paid_orders", 2),
        ("coupon_claims", 1),
        ("coupon_redemptions", 1),
        ("giveaway_entries", 1),
        ("auction_bids", 1),
        ("new_viewers", 3),
    ]:
        assert sum(int(row[column]) for row in minutes) == total, column  # fmt: skip
    gmv = sum(int(row["gmv"]) - int(row["refunded"]) for row in minutes)
    assert gmv == 9200
    assert max(int(row["online_max"]) for row in minutes) == 4
    assert [(o["user"], o["state"], o["total"], o["refunded"], o["net"], o["referrer"])
            for o in orders] == [
        (cast["ana"], "paid", "4600", "0", "4600", cast["cy"]),
        (cast["cy"], "partially_refunded", "5600", "1000", "4600", ""),
    ]  # fmt: skip


async def test_the_cli_writes_the_same_report(
    show: tuple[str, dict[str, str], HostClient], redis_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    room, _, host = show
    async with host:
        served = await poll(lambda: summary_of(host, room), settled)
    out = tmp_path / "report"
    code = await _run_cli(["report", room, "--out", str(out), "--redis-url", redis_url, "--json"])
    assert code == 0
    captured = capsys.readouterr()
    printed = orjson.loads(captured.out)
    # Money in the currency's own units, as the page shows it (not "GMV 9200 USD").
    assert captured.err.strip().endswith("2 paid orders, GMV $92.00")
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.csv", "orders.csv", "report.html", "summary.json"]  # fmt: skip
    written = orjson.loads((out / "summary.json").read_bytes())
    assert printed["summary"] == written
    for summary in (written, served):
        summary.pop("generated_at")
        summary.pop("duration_s")
        summary.pop("average_watch_s")
    assert written == served


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    # The CLI runs its own event loop (asyncio.run): give it a thread.
    return await asyncio.to_thread(cli.main, argv)


async def test_markers_mark_the_show_s_moments(
    show: tuple[str, dict[str, str], HostClient],
) -> None:
    room, _, host = show
    async with host:
        board = await poll(lambda: host.call("GET", f"/api/rooms/{room}/dashboard"),
                           lambda b: len(b["markers"]) == 5)  # fmt: skip
    assert [m["kind"] for m in board["markers"]] == [
        "pin", "coupon_drop", "flash_sale", "giveaway", "auction"]  # fmt: skip
    assert board["markers"][0]["label"] == f"{JACKET['title']} pinned"
    times = [m["t"] for m in board["markers"]]
    assert times == sorted(times)


async def test_viewers_cannot_read_the_report(
    show: tuple[str, dict[str, str], HostClient], engine: Engine
) -> None:
    room, cast, _ = show
    async with HostClient(engine.base_url, room, token(room, "viewer", cast["ana"])) as viewer:
        response = await viewer.http.get(f"/api/rooms/{room}/report")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    async with HostClient(engine.base_url, room, token(room, "moderator", "mo")) as moderator:
        assert (await moderator.http.get(f"/api/rooms/{room}/report")).status_code == 200
        missing = await moderator.http.get(f"/api/rooms/{room}/report/secrets.txt")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "report_file_not_found"


@pytest.mark.browser
@needs_chromium
async def test_the_show_s_report_renders_in_chromium(
    show: tuple[str, dict[str, str], HostClient], browser: Browser, tmp_path: Path
) -> None:
    room, _, host = show
    async with host:
        # The jacket's picture, uploaded to the engine: the report shows it from there.
        upload = await host.http.post(f"/api/rooms/{room}/images", content=PNG,
                                      headers={"content-type": "image/png"})  # fmt: skip
        assert upload.status_code == 201, upload.text
        patched = await host.http.patch(f"/api/rooms/{room}/products/p1",
                                        json={"images": [upload.json()["url"]]})  # fmt: skip
        assert patched.status_code == 200, patched.text
        await poll(lambda: summary_of(host, room), settled)
        html = await get_file(host, room, "report.html")
    image = f"{host.http.base_url}".rstrip("/") + upload.json()["url"]
    path = tmp_path / "report.html"
    path.write_bytes(html)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    try:
        await page.goto(path.as_uri())
        # A show of a few seconds is charted per second: a fifth chart, of reservations,
        # orders and payments, with the markers too.
        assert await page.locator("svg[role=img]").count() == 5
        assert await page.locator("#chart-online [data-kind]").count() == 5
        assert await page.locator("#chart-commerce [data-kind]").count() == 5
        assert await page.locator("#chart-commerce polyline").first.is_visible()
        # The thumbnail loads (lazily: once scrolled to) from the engine, in its 40 px box.
        thumb = page.locator("#products img")
        await thumb.scroll_into_view_if_needed()
        await page.wait_for_function(
            "() => document.querySelector('#products img').naturalWidth > 0"
        )
        box = await page.locator("#products .thumb").bounding_box()
        assert box
        assert (round(box["width"]), round(box["height"])) == (40, 40)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await capture(page, ARTIFACTS / "scripted-show.png", full_page=True)
    finally:
        await page.close()
    assert errors == []
    assert requests == [path.as_uri(), image]


async def test_a_short_show_is_charted_per_second(
    show: tuple[str, dict[str, str], HostClient],
) -> None:
    """Under 10 minutes the report counts comments (from the room log's entry ids),
    reservations, orders and payments per second; each series adds up to the script's."""
    room, _, host = show
    async with host:
        summary = await poll(lambda: summary_of(host, room), settled)
        page = (await get_file(host, room, "report.html")).decode()
    assert summary["duration_s"] < SHORT_SHOW_S
    series = re.findall(r'<polyline[^>]* data-series="([^"]+)" data-sum="([^"]+)"', page)
    sums = {name: float(total) for name, total in series}
    assert sums["Comments / s"] == 3
    assert sums["Reservations / s"] == 2
    assert sums["Orders / s"] == 2
    assert sums["Paid orders / s"] == 2
    assert "Comments and likes per second" in page
    assert "Comments and likes per minute" not in page
    assert "Cumulative GMV, per second" in page
    # Ticks every few seconds, read as clock times with seconds.
    online = re.search(r'<svg id="chart-online".*?</svg>', page, re.S)
    assert online
    assert re.search(r">\d\d:\d\d:\d\d</text>", online.group(0))
    gmv = re.search(r'<svg id="chart-gmv".*?</svg>', page, re.S)
    assert gmv
    assert "GMV (USD): max 92</desc>" in gmv.group(0)  # $92.00 net by the end


async def test_new_and_returning_buyers_come_from_the_books(
    ledger_url: str, engine_factory: EngineFactory, viewer_factory: ViewerFactory
) -> None:
    """A shop's second show: ana bought in its first (a row of the books, paid before this
    show went live), bo never did; both buy now. 1 new, 1 returning, rate 0.5."""
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    connection = await asyncpg.connect(ledger_url)
    try:
        await connection.execute(
            "INSERT INTO orders (room, order_id, shop, user_id, state, currency, subtotal,"
            " discount, shipping, total, refunded, coupons, lines, created_at_ms, paid_at_ms,"
            " version) VALUES ('first-show', 'o1', $1, 'ana', 'fulfilled', 'USD', 3000, 0, 0,"
            " 3000, 0, '[]', '[]', $2, $2, 1)", shop, now_ms() - 7 * 86_400_000,
        )  # fmt: skip
    finally:
        await connection.close()
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        await host.create_product(**JACKET)
        sale = await host.launch_sale("DJ-M", 5, price=5000)
        for buyer in ("ana", "bo"):
            held = await (await viewer_factory(room, user=buyer, target=engine)).grab(sale["id"])
            async with ShopperClient(engine.base_url, room, token(room, "viewer", buyer)) as me:
                await pay(me, held["reservation"])
        summary = await summary_of(host, room)
        page = (await get_file(host, room, "report.html")).decode()
    assert (summary["paid_buyers"], summary["new_buyers"], summary["returning_buyers"],
            summary["repeat_buyer_rate"]) == (2, 1, 1, 0.5)  # fmt: skip
    assert re.search(r"New / returning buyers</div><div class=\"value\">1 / 1<", page)
    assert re.search(r"Repeat-buyer rate</div><div class=\"value\">50.00%<", page)


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"new_buyers": None, "returning_buyers": None, "repeat_buyer_rate": None}, ("—", "—")),
        ({"paid_buyers": 0, "new_buyers": 0, "returning_buyers": 0, "repeat_buyer_rate": 0.0},
         ("0 / 0", "—")),
        ({"paid_buyers": 4, "new_buyers": 1, "returning_buyers": 3, "repeat_buyer_rate": 0.75},
         ("1 / 3", "75.00%")),
    ],
)  # fmt: skip
def test_the_page_shows_buyers_or_a_dash(fields: dict[str, Any], shown: tuple[str, str]) -> None:
    """No books (null fields) or no buyer: a dash, never "0.00%" (docs/metrics.md)."""
    cards = dict(figures(fields))
    assert (cards["New / returning buyers"], cards["Repeat-buyer rate"]) == shown
