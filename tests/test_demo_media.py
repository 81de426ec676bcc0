"""`livecart demo`'s pictures and test stream (engine/tools/demo_media.py, demo_stream.py):
all on the engine's own origin, so the demo page asks no other host for anything; with
ffmpeg a live HLS stream, without it the cover alone (docs/viewer.md § The stream)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import needs_chromium, watch_page
from tests.pages import LAPTOP, PHONE, Console, Viewer
from tests.test_demo import Demo, close, start_demo
from tests.test_stream_web import ffmpeg

SEGMENT = re.compile(r"^seg-\d+\.ts$", re.M)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo with ffmpeg on PATH, for the module's tests. Stopping it stops ffmpeg,
    which closes its playlist."""
    ffmpeg()  # present, or these tests fail saying so
    folder = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "LIVECART_LOG_LEVEL": "INFO"}
    running = start_demo(folder / "data", env, folder / "stderr.txt")
    try:
        yield running
        running.stop()
    finally:
        close(running)
    playlist = running.data_dir / "media/demo/stream/live.m3u8"
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")


def same_origin_path(url: str) -> str:
    assert re.fullmatch(r"/media/[^\s/\\]\S*", url), url
    return url


def test_demo_pictures_are_served_by_the_engine(demo: Demo) -> None:
    room = demo.get("/api/rooms/demo").json()
    cover = demo.get(same_origin_path(room["cover_url"]))
    assert cover.status_code == 200
    assert cover.headers["content-type"] == "image/svg+xml"
    assert b"livecart demo show" in cover.content
    products = demo.get("/api/rooms/demo/products").json()["products"]
    for product in products:
        [image] = product["images"]
        picture = demo.get(same_origin_path(image))
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "image/svg+xml"
        assert product["title"].encode() in picture.content


def test_demo_streams_live_hls_from_ffmpeg(demo: Demo) -> None:
    room = demo.get("/api/rooms/demo").json()
    playlist_url = same_origin_path(room["stream_url"])
    assert playlist_url.endswith(".m3u8")
    # The demo waits for the first segment before it prints its links; a live stream then
    # gets a new segment every 2 s.
    first = demo.get(playlist_url)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert first.headers["cache-control"] == "no-cache"
    segments = SEGMENT.findall(first.text)
    assert segments
    assert "#EXT-X-ENDLIST" not in first.text
    segment = demo.get(f"{playlist_url.rsplit('/', 1)[0]}/{segments[-1]}")
    assert segment.status_code == 200
    assert segment.headers["content-type"] == "video/mp2t"
    assert segment.content[:1] == b"\x47"  # an MPEG-TS packet
    deadline = time.monotonic() + 15
    while set(SEGMENT.findall(demo.get(playlist_url).text)) <= set(segments):
        assert time.monotonic() < deadline, "the test stream made no new segment in 15 s"
        time.sleep(0.5)
    log = (demo.data_dir.parent / "stderr.txt").read_text()
    assert "test stream with a clock: ffmpeg writes" in log
    assert (demo.data_dir / "ffmpeg.log").is_file()  # its warnings, if any


@pytest.mark.browser
@needs_chromium
async def test_demo_page_asks_no_other_host(browser: Browser, demo: Demo) -> None:
    """The viewer page of the demo room, as the demo prints it: every request it makes
    (page, scripts, pictures, stream) goes to the engine."""
    context = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    try:
        page = await context.new_page()
        errors, requests = watch_page(page)
        await page.goto(demo.lines["viewer page"])
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await page.wait_for_load_state("load")
        await page.wait_for_timeout(3000)  # pictures and the stream a page loads late
        loaded = await page.evaluate(
            "() => [...document.images].filter(i => i.getAttribute('src'))"
            ".map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
        )
        assert all(ok for _, ok in loaded), loaded
        outside = [u for u in requests if not u.startswith((demo.base_url + "/", "data:", "blob:"))]
        assert outside == []
        assert any("/live/static/" in u for u in requests)
        assert errors == []
        # What a viewer sees: the test stream playing full screen, the demo's pictures.
        await expect(page.locator("#stage")).to_have_attribute("data-stream", "playing")
        await Viewer(page).shot("demo-room")
    finally:
        await context.close()


def test_a_kept_demo_room_follows_the_run_without_ffmpeg(tmp_path: Path) -> None:
    """A second run on the same data dir, with ffmpeg off PATH (only redis-server on it)
    and LIVECART_MEDIA_DIR set: one line says there is no ffmpeg, the room kept from the
    first run loses its stream, and its cover and pictures are this run's, in that folder."""
    data = tmp_path / "data"
    first = start_demo(data, {**os.environ}, tmp_path / "first.txt")
    try:
        assert first.get("/api/rooms/demo").json()["stream_url"] is not None
        host = {"authorization": f"Bearer {first.lines['host token']}"}
        moved = httpx.patch(f"{first.base_url}/api/rooms/demo/products/p1", headers=host,
                            json={"images": ["https://cdn.example/x.jpg"]}, timeout=10)  # fmt: skip
        assert moved.status_code == 200, moved.text
        first.stop()
    finally:
        close(first)

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    redis_server = shutil.which("redis-server")
    if redis_server is not None:
        (bin_dir / "redis-server").symlink_to(redis_server)
    media = tmp_path / "media"
    media.mkdir()
    env = {**os.environ, "PATH": str(bin_dir), "LIVECART_LOG_LEVEL": "INFO",
           "LIVECART_MEDIA_DIR": str(media)}  # fmt: skip
    second = start_demo(data, env, tmp_path / "second.txt")
    try:
        room = second.get("/api/rooms/demo").json()
        assert room["stream_url"] is None
        assert room["cover_url"] == "/media/demo/cover.svg"
        assert second.get(room["cover_url"]).content == (media / "demo/cover.svg").read_bytes()
        product = second.get("/api/rooms/demo/products/p1").json()
        assert product["images"] == ["/media/demo/trail-runner-sneaker.svg"]
        assert (media / "demo/trail-runner-sneaker.svg").is_file()
        second.stop()
    finally:
        close(second)
    log = (tmp_path / "second.txt").read_text()
    said = [line for line in log.splitlines() if "livecart.demo" in line]
    assert len(said) == 1
    assert said[0].endswith("ffmpeg is not on PATH: the demo room shows its cover, no test stream")
    assert not (media / "demo/stream").exists()


@pytest.mark.browser
@needs_chromium
async def test_the_demo_console_sees_the_stream_and_pictures(browser: Browser, demo: Demo) -> None:
    """The host console of the demo, signed in with the token the demo prints, as a first-time
    host would: the stream check sees the demo's test stream playing, and the run of show
    has the demo's product pictures; every request goes to the engine."""
    context = await browser.new_context(viewport=LAPTOP)
    try:
        page = await context.new_page()
        errors, requests = watch_page(page)
        await page.goto(demo.lines["host console"])
        await page.fill("#token", demo.lines["host token"])
        await page.click("#signin-button")
        await expect(page.locator("#conn")).to_have_attribute("data-status", "live")
        await expect(page.locator("#who")).to_have_text("Mia · host")  # as viewers see the host
        await expect(page.locator("#stream-panel")).to_have_attribute(
            "data-health", "playing", timeout=30_000
        )
        thumbs = page.locator("#lineup li img.thumb")
        await expect(thumbs.first).to_be_visible()
        pictures = await thumbs.evaluate_all(
            "(imgs) => imgs.map((i) => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
        )
        assert pictures
        assert all(src.startswith("/media/") and ok for src, ok in pictures), pictures
        outside = [u for u in requests if not u.startswith((demo.base_url + "/", "data:", "blob:"))]
        assert outside == []
        assert errors == []
        await Console(page).shot("demo-room")
    finally:
        await context.close()
