"""A real Prometheus (Debian's `prometheus` binary) scraping a real test engine, with the
alert rules of deploy/prometheus/alerts.yml loaded; and the dashboard's preview: each
panel of deploy/grafana/livecart.json queried through that Prometheus after a little of a
show, drawn by tools/dashboard_preview.py and photographed in Chromium
(tests/artifacts/dashboard-preview.png)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from playwright.async_api import Browser

from clients import ViewerClient
from clients.errors import LivecartClientError
from engine import __version__
from engine.server.app import Engine
from tests.conftest import RoomFactory, ViewerFactory, capture, needs_chromium, poll, token, within
from tests.test_alerts import ALERTS, find_tool
from tests.test_observe import show_activity
from tools import dashboard_preview

ARTIFACTS = Path(__file__).parent / "artifacts"
JOB = "livecart"
SCRAPE_S = 1


def start_prometheus(target: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Debian's prometheus with its files under `directory`, on a free port, scraping
    `target` every second as job `livecart`, with alerts.yml loaded: the process and its
    port (it is given port 0; the port it bound is read from the process's sockets)."""
    binary = find_tool("prometheus")
    config = directory / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {SCRAPE_S}s\n"
        f"rule_files:\n  - {ALERTS}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
        f'      - targets: ["{target}"]\n'
    )
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary, f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                "--web.listen-address=127.0.0.1:0",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(process.pid).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    return process, int(conn.laddr.port)
        time.sleep(0.1)
    stop(process)
    raise AssertionError(f"prometheus did not listen: {log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise


@contextlib.asynccontextmanager
async def prometheus_scraping(engine: Engine, directory: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A Prometheus of this test's own scraping `engine` (`start_prometheus`), and an HTTP
    client for its API; stopped and waited for on exit."""
    target = urlsplit(engine.base_url).netloc
    process, port = await asyncio.to_thread(start_prometheus, target, directory)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            await poll(lambda: api.get("/-/ready"), lambda r: r.status_code == 200, 30)
            yield api
    finally:
        await within(asyncio.to_thread(stop, process), "stopping prometheus", 40)


async def query(api: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def until_found(api: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    return await poll(lambda: query(api, expr), bool, timeout_s=30)


async def evaluated_rules(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The loaded alert rules, once each has been evaluated."""

    async def rules() -> list[dict[str, Any]]:
        groups = (await api.get("/api/v1/rules")).json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    return await poll(
        rules,
        lambda found: bool(found) and all(r["lastEvaluation"] > "2000" for r in found),
        timeout_s=20,
    )


@pytest.mark.slow
async def test_a_real_prometheus_scrapes_the_engine(engine: Engine, tmp_path: Path) -> None:
    async with prometheus_scraping(engine, tmp_path) as api:
        (build,) = await until_found(api, f'livecart_build_info{{job="{JOB}"}}')
        assert build["metric"]["version"] == __version__
        assert build["metric"]["python"].count(".") == 2
        assert build["value"][1] == "1"
        (memory,) = await until_found(api, f'process_resident_memory_bytes{{job="{JOB}"}}')
        assert memory["metric"]["worker"] == "0"
        assert 1e6 < float(memory["value"][1]) < 64e9
        (up,) = await query(api, f'up{{job="{JOB}"}}')
        assert up["value"][1] == "1"
        # The alert rules loaded and evaluate without error against the real series.
        rules = await evaluated_rules(api)
        assert len(rules) == 13
        assert {r["health"] for r in rules} == {"ok"}, [r.get("lastError") for r in rules]
        # A healthy engine raises none of them, but for memory: this engine runs inside the
        # pytest worker, whose resident memory is the whole run's; that rule must agree
        # with its own threshold (twice 64 MiB for one process with no viewers).
        raised = {r["name"]: r for r in rules if r["state"] != "inactive"}
        assert set(raised) <= {"LivecartMemoryHigh"}
        for alert in raised.get("LivecartMemoryHigh", {"alerts": []})["alerts"]:
            assert float(alert["value"]) > 2 * 64 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
async def test_dashboard_preview(
    engine: Engine,
    room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
    browser: Browser,
    tmp_path: Path,
) -> None:
    """Each dashboard panel's queries through a real Prometheus after a little of a show
    (viewers, comments, grabs, paid orders, a refused request and a refused viewer, in
    rounds a few seconds apart), drawn as one chart per panel."""
    async with prometheus_scraping(engine, tmp_path) as api:
        await until_found(api, f'livecart_build_info{{job="{JOB}"}}')

        async def show_round() -> None:
            room = await room_factory()
            await show_activity(engine, room, viewer_factory)
            wrong = ViewerClient(engine.ws_url, room, token("r-elsewhere"), reconnect=False)
            with pytest.raises(LivecartClientError, match="token_wrong_room"):
                await wrong.connect()
            await wrong.close()

        # A first round before the window: a counter's first sample has no rate yet.
        await show_round()
        await asyncio.sleep(3 * SCRAPE_S)
        start = time.time()
        for _ in range(3):
            await show_round()
            await asyncio.sleep(4 * SCRAPE_S)
        await asyncio.sleep(3 * SCRAPE_S)  # the last round scraped
        end = time.time()
        # The preview's blocking client runs off the event loop (the engine answers scrapes).
        panels = await asyncio.to_thread(preview_panels, str(api.base_url), start, end)

    by_title = {panel.title: panel for panel in panels}
    assert list(by_title) == [
        "Rooms", "Viewers online", "Fan-out tick duration", "Frames pushed", "Grab latency",
        "Grab outcomes", "Orders", "GMV", "Redis latency", "Redis errors",
        "Disconnects by reason", "Errors by code", "Process CPU", "Process memory",
    ]  # fmt: skip
    # A healthy run has no Redis errors; every other panel shows what the show did.
    empty = [panel.title for panel in panels if not panel.series]
    assert empty in ([], ["Redis errors"]), empty
    legends = {title: {s.legend for s in panel.series} for title, panel in by_title.items()}
    assert {"reserved", "sold_out"} <= legends["Grab outcomes"]
    assert {"pending_payment", "paid"} <= legends["Orders"]
    assert "USD minor units per minute" in legends["GMV"]  # never divided by 100 (JPY)
    assert "auth_failed" in legends["Disconnects by reason"]
    assert {"room_not_found", "token_wrong_room"} <= legends["Errors by code"]
    viewers = max(v for s in by_title["Viewers online"].series for _, v in s.points)
    assert viewers >= 8  # two viewers a round, still connected
    assert max(v for s in by_title["GMV"].series for _, v in s.points) > 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    html_path = ARTIFACTS / "dashboard-preview.html"
    html_path.write_text(dashboard_preview.page(panels, start, end))
    page = await browser.new_page(viewport={"width": 1220, "height": 900})
    try:
        await page.goto(html_path.as_uri())
        titles = await page.locator("section.panel h2").all_inner_texts()
        assert titles == list(by_title)
        assert await page.locator("section.panel polyline").count() >= len(panels) - 1
        await capture(page, ARTIFACTS / "dashboard-preview.png", full_page=True)
    finally:
        await page.close()


def preview_panels(base_url: str, start: float, end: float) -> list[dashboard_preview.Panel]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        # Grafana's $__rate_interval is at least four scrape intervals.
        return dashboard_preview.load_panels(
            http, JOB, start, end, step=SCRAPE_S, rate_interval=f"{4 * SCRAPE_S}s"
        )
