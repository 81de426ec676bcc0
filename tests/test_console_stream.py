"""The console's stream check (streamer_console/static/stream_check.js) end to end in
Debian's Chromium, against real streams that ffmpeg makes and the engine serves at /media/:
a 20 s HLS video on demand (tests/test_stream_web.py's `media`) and a live HLS stream that
ffmpeg keeps writing in real time (`-re`) for the whole module. The panel plays the room's
stream through the viewer page's player (clients/web/stream.js), natively where Chromium
claims HLS and through hls.js where it does not (`NO_NATIVE_HLS`), and shows its health:
none, loading, playing, stalled (segments stop arriving) or offline (no playlist)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, Route, expect

from clients import HostClient
from engine.server.app import Engine
from tests.conftest import EngineFactory, RoomFactory, eventually, needs_chromium, token
from tests.pages import HTTP_ERROR_LOG, LAPTOP, Console, OpenConsole, OpenViewer
from tests.test_stream_web import NO_NATIVE_HLS, ffmpeg, media

__all__ = ["media"]  # the module fixture: the VOD stream and its cover

VOD = "/media/vod/show.m3u8"
LIVE = "/media/live/live.m3u8"
HLS_JS = "/live/static/vendor/hls.light.min.mjs"
# #stream-size: the picture's width x height.
SIZE = {LIVE: "360\N{MULTIPLICATION SIGN}640", VOD: "320\N{MULTIPLICATION SIGN}240"}
STATE = 20_000  # ms: a stream state on this shared, slow machine
# ms: a stall, once segments stop: the player first plays what it holds (up to the live
# playlist's six 2 s segments), then STALL_MS (3 s) of frames that do not move.
STALL = 30_000
# The words of streamer_console/static/i18n/en.js.
SAY = {
    "none": "No stream URL set: viewers see the cover.",
    "playing": "Playing: viewers see this.",
    "stalled": "Stalled: no new frames. Check the encoder.",
    "offline": "Offline: the stream cannot be played. Trying again…",
}
ENDED = "Ended: the encoder stopped the stream. Start it again, then Check again."
RETRY_MS = 10_000  # stream_check.js: an offline stream (not an ended one) is tried again
URL_RULE = "An http(s) URL of an HLS playlist (.m3u8), or a /path on this engine"
NOT_PLAYING = "The stream is not playing (no stream)."
# Every value #stream-panel[data-health] takes, in order, kept by the page from its start.
HEALTH_LOG = """
window.healthLog = [];
document.addEventListener("DOMContentLoaded", () => {
  const panel = document.getElementById("stream-panel");
  const note = () => {
    const health = panel.dataset.health;
    if (window.healthLog.at(-1) !== health) window.healthLog.push(health);
  };
  note();
  new MutationObserver(note).observe(panel, { attributes: true, attributeFilter: ["data-health"] });
});
"""
# The stream check's retry of an offline stream (every RETRY_MS) never comes; each one held
# is counted, so a test can tell the hold still finds the retry (retries_held).
NO_RETRY = """
const setTimeout = window.setTimeout;
window.__retriesHeld = 0;
window.setTimeout = (run, ms, ...args) => {
  if (String(run).includes("play(true)")) {
    window.__retriesHeld += 1;
    return 0;
  }
  return setTimeout(run, ms, ...args);
};
"""


def encode(folder: Path) -> subprocess.Popen[bytes]:
    """ffmpeg writing a live HLS stream into `folder` (its live.m3u8) in real time: portrait
    360x640 as a phone films it, 2 s segments, six listed, none deleted (a held request
    answered late still finds its segment)."""
    folder.mkdir()
    command = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin",
               "-re", "-f", "lavfi", "-i", "testsrc2=size=360x640:rate=15", "-an",
               "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
               "-pix_fmt", "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
               "-f", "hls", "-hls_time", "2", "-hls_list_size", "6", "-hls_flags", "temp_file",
               "-hls_segment_filename", str(folder / "seg-%05d.ts"),
               str(folder / "live.m3u8")]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def on_air(process: subprocess.Popen[bytes], folder: Path) -> bool:
    """Whether the encoder's playlist lists two segments yet (it must still run)."""
    assert process.poll() is None, f"ffmpeg ended: {process.returncode}"
    playlist = folder / "live.m3u8"
    return playlist.is_file() and playlist.read_text().count(".ts") >= 2


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def live(media: Path) -> Iterator[Path]:
    """The live stream at /media/live/live.m3u8, from its first two segments until the
    module ends."""
    folder = media / "live"
    process = encode(folder)
    try:
        deadline = time.monotonic() + 60
        while not on_air(process, folder):
            assert time.monotonic() < deadline, "the live stream's first segments never came"
            time.sleep(0.2)
        yield folder
    finally:
        stop(process)


@pytest.fixture
async def engine(engine_factory: EngineFactory, media: Path, live: Path) -> Engine:
    """The console's engine serves the media folder (the VOD, the live stream) at /media/."""
    return await engine_factory(media_dir=media)


async def health_log(context: BrowserContext) -> None:
    await context.add_init_script(HEALTH_LOG)


async def no_native_hls(context: BrowserContext) -> None:
    await context.add_init_script(HEALTH_LOG)
    await context.add_init_script(NO_NATIVE_HLS)


def requested(page: Page) -> list[str]:
    """Every URL `page` asks for from now on (paths, without the query)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(urlsplit(request.url).path))
    return urls


async def health(console: Console, state: str, within_ms: float = STATE) -> None:
    """The panel's health is `state`, in its words."""
    page = console.page
    await expect(page.locator("#stream-panel")).to_have_attribute(
        "data-health", state, timeout=within_ms
    )
    await expect(page.locator("#stream-health")).to_have_text(
        {"none": "no stream"}.get(state, state)
    )
    if state in SAY:
        await expect(page.locator("#stream-say")).to_have_text(SAY[state])


async def advancing(page: Page) -> None:
    """The panel's video plays: its clock moves on by a second."""
    start = await page.evaluate("() => document.getElementById('stream-video').currentTime")
    await page.wait_for_function(
        f"() => document.getElementById('stream-video').currentTime > {start} + 1",
        timeout=STATE,
    )


async def set_url(console: Console, url: str) -> None:
    page = console.page
    await page.fill("#stream-url", url)
    await page.click("#stream-save")
    await console.feedback("Save stream URL")


async def healths(page: Page) -> list[str]:
    log: list[str] = await page.evaluate("() => window.healthLog")
    return log


@pytest.mark.browser
@needs_chromium
async def test_no_stream_url_says_so_and_loads_nothing(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    assert (await host.get_room())["stream_url"] is None
    urls: list[str] = []

    async def watch(context: BrowserContext) -> None:
        await health_log(context)
        context.on("request", lambda request: urls.append(urlsplit(request.url).path))

    console = await open_console(room, setup=watch)
    await health(console, "none")
    page = console.page
    await expect(page.locator("#stream-size")).to_have_text("")
    await expect(page.locator("#stream-url")).to_have_value("")
    assert await page.locator("#stream-video").evaluate("v => v.hasAttribute('src')") is False
    assert await healths(page) == ["none"]
    assert any(u.startswith("/console/") for u in urls)  # it does see the page's requests
    assert [u for u in urls if u.endswith((".m3u8", ".ts")) or u == HLS_JS] == []


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("native_hls", [True, False], ids=["native", "hls.js"])
@pytest.mark.parametrize("url", [LIVE, VOD], ids=["live", "vod"])
async def test_the_host_sets_the_stream_url_and_it_plays(
    open_console: OpenConsole, room: str, host: HostClient, native_hls: bool, url: str
) -> None:
    console = await open_console(room, setup=health_log if native_hls else no_native_hls)
    page = console.page
    urls = requested(page)
    await health(console, "none")
    await set_url(console, url)
    await health(console, "playing")
    await advancing(page)
    assert await healths(page) == ["none", "loading", "playing"]
    await expect(page.locator("#stream-size")).to_have_text(SIZE[url])
    assert (await host.get_room())["stream_url"] == url
    video = page.locator("#stream-video")
    assert await video.evaluate("v => [v.muted, v.paused]") == [True, False]
    assert url in urls
    if not native_hls:  # hls.js over Media Source Extensions
        assert HLS_JS in urls
        assert await video.evaluate("v => v.src.startsWith('blob:')")
    elif await page.evaluate(
        "() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"
    ):
        assert await video.get_attribute("src") == url


class Held:
    """Segment requests held unanswered while `holding`, answered again after `release`."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.holding = False

    async def handle(self, route: Route) -> None:
        if self.holding:
            self.routes.append(route)
        else:
            await route.continue_()

    async def release(self) -> None:
        self.holding = False
        held, self.routes = self.routes, []
        for route in held:
            await route.continue_()


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("native_hls", [True, False], ids=["native", "hls.js"])
async def test_segments_that_stop_coming_are_a_stall_and_it_plays_again(
    open_console: OpenConsole, room_factory: RoomFactory, native_hls: bool
) -> None:
    room = await room_factory(stream_url=LIVE)
    held = Held()

    async def setup(context: BrowserContext) -> None:
        await (health_log if native_hls else no_native_hls)(context)
        await context.route("**/*.ts", held.handle)

    console = await open_console(room, setup=setup, viewport=LAPTOP)
    page = console.page
    await health(console, "playing")
    await advancing(page)
    held.holding = True
    await health(console, "stalled", STALL)
    await expect(page.locator("#stream-size")).to_have_text("")
    frozen = await page.evaluate("() => document.getElementById('stream-video').currentTime")
    if native_hls:
        await console.shot("stream-stalled")
    await held.release()
    await health(console, "playing")
    await advancing(page)
    await expect(page.locator("#stream-size")).to_have_text(SIZE[LIVE])
    assert await page.evaluate("() => document.getElementById('stream-video').currentTime") > frozen
    log = await healths(page)
    assert log[:3] == ["none", "loading", "playing"]
    assert log[-2:] == ["stalled", "playing"]


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("how", ["check again", "retried"])
async def test_a_missing_playlist_is_offline_until_it_appears_then_it_plays(
    open_console: OpenConsole, room: str, host: HostClient, media: Path, how: str
) -> None:
    """Offline until the encoder writes the playlist; then "Check again" plays it (the
    panel's own retry every RETRY_MS kept off, so only the button can), or, left alone,
    that retry does."""
    late = f"late-{secrets.token_hex(4)}"
    url = f"/media/{late}/show.m3u8"

    async def setup(context: BrowserContext) -> None:
        await health_log(context)
        if how == "check again":
            await context.add_init_script(NO_RETRY)

    console = await open_console(room, setup=setup, allowed=(HTTP_ERROR_LOG,))
    page = console.page
    await set_url(console, url)
    await health(console, "offline")
    await expect(page.locator("#stream-size")).to_have_text("")
    assert (await host.get_room())["stream_url"] == url
    shutil.copytree(media / "vod", media / late)  # the encoder starts after the console
    if how == "check again":
        # The automatic retry was held: only the button can bring the stream back.
        assert await page.evaluate("window.__retriesHeld") >= 1
        await page.click("#stream-retry")
    await expect(page.locator("#stream-panel")).to_have_attribute(
        "data-health",
        "playing",
        timeout=STATE + 10_000,  # RETRY_MS (10 s) at most first
    )
    await health(console, "playing")
    await advancing(page)
    log = await healths(page)
    assert log[:3] == ["none", "loading", "offline"]
    assert log[-2:] == ["loading", "playing"]


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("bad", ["javascript:alert(1)", "ftp://x/live.m3u8"])
async def test_a_refused_url_shows_next_to_the_field_and_the_room_keeps_its_url(
    open_console: OpenConsole, room_factory: RoomFactory, engine: Engine, bad: str
) -> None:
    room = await room_factory(stream_url=LIVE)
    console = await open_console(room, allowed=(HTTP_ERROR_LOG,))  # the refusal's 400
    page = console.page
    await health(console, "playing")
    field = page.locator("#stream-url")
    await expect(field).to_have_value(LIVE)
    await field.fill(bad)
    await page.click("#stream-save")
    await expect(field).to_have_attribute("aria-invalid", "true")
    note = page.locator("#stream-form .field-error")
    await expect(note).to_have_text(URL_RULE)
    assert await field.get_attribute("aria-describedby") == await note.get_attribute("id")
    await console.feedback("Save stream URL", "failed")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        assert (await host.get_room())["stream_url"] == LIVE
    await expect(page.locator("#stream-panel")).to_have_attribute("data-health", "playing")
    await field.fill(LIVE)  # typing clears the note
    await expect(field).not_to_have_attribute("aria-invalid", "true")
    await expect(note).to_have_count(0)


@pytest.mark.browser
@needs_chromium
async def test_going_live_warns_while_the_stream_is_not_playing(
    open_console: OpenConsole, room_factory: RoomFactory, engine: Engine
) -> None:
    room = await room_factory(live=False)
    console = await open_console(room, setup=health_log)
    page = console.page
    text = page.locator("#confirm-text")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        assert (await host.get_room())["state"] == "scheduled"
        await health(console, "none")
        await page.click("#go-live")
        await expect(page.locator("#confirm")).to_be_visible()
        await expect(text).to_contain_text(NOT_PLAYING)
        await page.click("#confirm-no")
        await expect(page.locator("#confirm")).to_be_hidden()
        assert (await host.get_room())["state"] == "scheduled"
        await expect(page.locator("#go-live")).to_be_enabled()

        await host.update_room(stream_url=LIVE)  # the panel follows the room
        await health(console, "playing")
        await expect(page.locator("#stream-url")).to_have_value(LIVE)
        await console.shot("stream-playing")
        await page.click("#go-live")
        await expect(page.locator("#confirm")).to_be_visible()
        await expect(text).not_to_have_text("")
        assert "not playing" not in (await text.text_content() or "")
        await console.confirm()
        await console.feedback("Go live")
        assert (await host.get_room())["state"] == "live"


@pytest.mark.browser
@needs_chromium
async def test_a_stalled_stream_stays_shown_on_the_viewer_page(
    open_viewer: OpenViewer, room_factory: RoomFactory
) -> None:
    room = await room_factory(stream_url=LIVE, cover_url="/media/cover.svg")
    held = Held()

    async def setup(context: BrowserContext) -> None:
        await context.route("**/*.ts", held.handle)

    viewer = await open_viewer(room, "ana", setup=setup)
    page = viewer.page
    stage = page.locator("#stage")
    await expect(stage).to_have_attribute("data-stream", "playing", timeout=STATE)
    held.holding = True
    await expect(stage).to_have_attribute("data-stream", "stalled", timeout=STALL)
    # Still the video (its last frame), not the cover: a stall is not the end of the show.
    await expect(page.locator("#video")).to_be_visible()
    await expect(page.locator("#cover")).to_be_hidden()
    await held.release()
    await expect(stage).to_have_attribute("data-stream", "playing", timeout=STATE)


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("native_hls", [True, False], ids=["native", "hls.js"])
@pytest.mark.parametrize("how", ["killed", "ended"])
async def test_an_encoder_that_stops_is_a_stall_or_the_end(
    open_console: OpenConsole, room_factory: RoomFactory, media: Path, native_hls: bool, how: str
) -> None:
    """The encoder dies (killed: its playlist stays as it was, as when the streaming
    machine crashes or loses its network): the panel says stalled. It ends cleanly
    (SIGTERM: ffmpeg closes the playlist with #EXT-X-ENDLIST): the stream ended, offline."""
    name = f"enc-{secrets.token_hex(4)}"
    process = encode(media / name)
    try:
        await eventually(lambda: on_air(process, media / name), timeout_s=60)
        room = await room_factory(stream_url=f"/media/{name}/live.m3u8")
        console = await open_console(room, setup=health_log if native_hls else no_native_hls)
        page = console.page
        await health(console, "playing")
        await advancing(page)
        if how == "killed":
            process.kill()
        stop(process)
        await page.wait_for_function("() => window.healthLog.length > 3", timeout=STALL)
        log = await healths(page)
        assert log[:4] == [
            "none",
            "loading",
            "playing",
            "stalled" if how == "killed" else "offline",
        ]
        if how == "ended":
            # It says so and waits for the host: a retry would replay the playlist's last
            # segments as if the show were on.
            await expect(page.locator("#stream-say")).to_have_text(ENDED)
            await page.wait_for_timeout(RETRY_MS + 2_000)  # the absence of a retry takes a wait
            assert await healths(page) == log[:4]
    finally:
        stop(process)
