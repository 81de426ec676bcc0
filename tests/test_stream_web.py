"""clients/web/stream.js in Debian's Chromium: a real HLS stream made by ffmpeg and served
by the engine at /media/ plays natively where the browser says it can (recent Chromium
plays HLS itself, as Safari does), else through the vendored hls.js, imported only then;
a playlist that is not there leaves the cover showing and says "offline". The page is a
test page on the engine's origin (Playwright answers its one URL) that imports
/live/static/stream.js as the viewer page does (docs/viewer.md § The stream).

A browser without native HLS (Firefox, older Chrome) is this Chromium with `canPlayType`
saying "" for HLS (`NO_NATIVE_HLS`): hls.js then plays over the browser's real Media
Source Extensions, as it would there."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route

from engine.server.app import Engine
from tests.conftest import EngineFactory, needs_chromium, watch_page
from tests.pages import HTTP_ERROR_LOG

WEB = Path(__file__).resolve().parent.parent / "clients" / "web"
VENDOR = WEB / "vendor"
HLS_JS = "/live/static/vendor/hls.light.min.mjs"
TEST_PAGE = "/stream-test.html"
PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><video id="video" width="320" height="240"></video>
<script type="module">
  import { attachStream } from "/live/static/stream.js";
  const query = new URLSearchParams(location.search);
  window.states = [];
  window.detach = attachStream(document.getElementById("video"), {
    url: query.get("url"), poster: query.get("poster"),
    onState: (state) => window.states.push(state),
  });
</script></body></html>
"""


# Run before the page's scripts: the browser answers "" for HLS, as one without it does.
NO_NATIVE_HLS = """
const canPlayType = HTMLMediaElement.prototype.canPlayType;
HTMLMediaElement.prototype.canPlayType = function (type) {
  return /mpegurl/i.test(type) ? "" : canPlayType.call(this, type);
};
"""


def ffmpeg() -> str:
    """ffmpeg's path; without it these tests fail (never skip)."""
    found = shutil.which("ffmpeg")
    assert found, (
        "ffmpeg is not installed (or not on PATH): the stream tests make their HLS with it "
        "(Debian: apt-get install ffmpeg; `make test` installs it when run as root)"
    )
    return found


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cover, a 20 s HLS stream (2 s segments) and the same as an MP4: long enough
    not to end while a test watches it."""
    folder = tmp_path_factory.mktemp("media")
    (folder / "cover.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">'
        '<rect width="320" height="240" fill="#c06"/></svg>'
    )
    (folder / "vod").mkdir()
    source = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-t", "20", "-an", "-c:v",
              "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "30"]  # fmt: skip
    for output in (
        ["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", str(folder / "vod/show.m3u8")],
        ["-movflags", "+faststart", str(folder / "clip.mp4")],
    ):
        subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                        *source, *output], check=True, timeout=60)  # fmt: skip
    assert len(list((folder / "vod").glob("*.ts"))) == 10
    return folder


@pytest.fixture
async def media_engine(engine_factory: EngineFactory, media: Path) -> Engine:
    return await engine_factory(media_dir=media)


class StreamPage:
    def __init__(self, page: Page, errors: list[str], requests: list[str]) -> None:
        self.page, self.errors, self.requests = page, errors, requests

    async def states(self) -> list[str]:
        states: list[str] = await self.page.evaluate("() => window.states")
        return states

    def asked_for(self, path: str) -> bool:
        return any(url.split("?")[0].endswith(path) for url in self.requests)


OpenStream = Callable[..., Awaitable[StreamPage]]


@pytest.fixture
async def open_stream(browser: Browser, media_engine: Engine) -> AsyncIterator[OpenStream]:
    """The test page playing `url` (None: no stream) with the cover as poster, in a
    browser with or without native HLS; after the
    test, no JavaScript error but those `allowed`, and no request off the engine's origin."""
    contexts = []
    opened: list[tuple[StreamPage, list[re.Pattern[str]]]] = []

    async def make(
        url: str | None, *, native_hls: bool = True, allowed: tuple[re.Pattern[str], ...] = ()
    ) -> StreamPage:
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        contexts.append(context)
        if not native_hls:
            await context.add_init_script(NO_NATIVE_HLS)

        async def test_page(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/html", body=PAGE_HTML)

        await context.route(f"{media_engine.base_url}{TEST_PAGE}*", test_page)
        page = await context.new_page()
        page.set_default_timeout(10_000)
        errors, requests = watch_page(page)
        query = httpx.QueryParams({"poster": "/media/cover.svg", **({"url": url} if url else {})})
        await page.goto(f"{media_engine.base_url}{TEST_PAGE}?{query}")
        stream = StreamPage(page, errors, requests)
        opened.append((stream, list(allowed)))
        return stream

    yield make
    for context in contexts:
        await context.close()
    for stream, allowed in opened:
        unexpected = [e for e in stream.errors if not any(p.search(e) for p in allowed)]
        assert unexpected == [], f"JavaScript errors: {unexpected}"
        origin = media_engine.base_url
        assert [u for u in stream.requests if not u.startswith((origin + "/", "data:"))] == []


async def advancing(page: Page) -> None:
    """The video plays: its clock moves on by half a second."""
    start = await page.evaluate("() => document.getElementById('video').currentTime")
    await page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {start} + 0.5"
    )


@pytest.mark.browser
@needs_chromium
async def test_hls_plays_through_hls_js_where_there_is_no_native_hls(
    open_stream: OpenStream,
) -> None:
    stream = await open_stream("/media/vod/show.m3u8", native_hls=False)
    page = stream.page
    await page.wait_for_function("() => window.states.includes('playing')")
    await advancing(page)
    assert await stream.states() == ["loading", "playing"]
    # Playing again after a stall is no change: onState hears nothing new.
    await page.evaluate(
        "() => document.getElementById('video').dispatchEvent(new Event('playing'))"
    )
    assert await stream.states() == ["loading", "playing"]
    video = page.locator("#video")
    assert await video.evaluate("v => [v.muted, v.playsInline, v.autoplay]") == [True, True, True]
    assert await video.get_attribute("poster") == "/media/cover.svg"
    assert await video.evaluate("v => v.src.startsWith('blob:')")  # Media Source Extensions
    assert stream.asked_for(HLS_JS)
    assert stream.asked_for("/media/vod/show.m3u8")
    assert stream.asked_for("/media/vod/show0.ts")
    await page.evaluate("() => window.detach()")  # stops, back to the poster
    assert await video.evaluate("v => [v.hasAttribute('src'), v.paused]") == [False, True]


@pytest.mark.browser
@needs_chromium
async def test_hls_plays_natively_where_the_browser_can(open_stream: OpenStream) -> None:
    stream = await open_stream("/media/vod/show.m3u8")
    page = stream.page
    native = await page.evaluate(
        "() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"
    )
    await page.wait_for_function("() => window.states.includes('playing')")
    await advancing(page)
    assert await stream.states() == ["loading", "playing"]
    # This Chromium plays HLS itself (an older one would not, and would load hls.js).
    assert stream.asked_for(HLS_JS) == (native == "")
    if native:
        assert await page.locator("#video").get_attribute("src") == "/media/vod/show.m3u8"


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("native_hls", [True, False], ids=["native", "hls.js"])
async def test_a_missing_playlist_leaves_the_cover_and_says_offline(
    open_stream: OpenStream, native_hls: bool
) -> None:
    stream = await open_stream(
        "/media/vod/gone.m3u8", native_hls=native_hls, allowed=(HTTP_ERROR_LOG,)
    )
    page = stream.page
    await page.wait_for_function("() => window.states.includes('offline')")
    assert await stream.states() == ["loading", "offline"]
    video = page.locator("#video")
    assert await video.get_attribute("poster") == "/media/cover.svg"
    # No source left: the element shows its poster.
    assert await video.evaluate("v => [v.hasAttribute('src'), v.readyState]") == [False, 0]
    assert stream.asked_for("/media/vod/gone.m3u8")
    if not native_hls:
        assert stream.asked_for(HLS_JS)


@pytest.mark.browser
@needs_chromium
async def test_an_mp4_plays_natively_without_hls_js(open_stream: OpenStream) -> None:
    stream = await open_stream("/media/clip.mp4")
    await stream.page.wait_for_function("() => window.states.includes('playing')")
    await advancing(stream.page)
    assert await stream.page.locator("#video").get_attribute("src") == "/media/clip.mp4"
    assert not stream.asked_for(HLS_JS)


@pytest.mark.browser
@needs_chromium
async def test_no_stream_is_offline_with_the_cover(open_stream: OpenStream) -> None:
    stream = await open_stream(None)
    await stream.page.wait_for_function("() => window.states.length > 0")
    assert await stream.states() == ["offline"]
    assert await stream.page.locator("#video").get_attribute("poster") == "/media/cover.svg"
    assert not stream.asked_for(HLS_JS)


# ---- hls.js stays out of the first load ----------------------------------------------------

# `import x from "y"`, `export {x} from "y"`, `import "y"`: not `import("y")`.
STATIC_IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^;'"(]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']""",
    re.M,
)


def static_imports(module: Path) -> set[Path]:
    """Every page module `module` loads before it runs (static imports, transitively)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen or not current.is_relative_to(WEB):
            continue
        seen.add(current)
        for match in STATIC_IMPORT.finditer(current.read_text()):
            target = match.group(1) or match.group(2)
            if target.startswith("."):
                todo.append((current.parent / target).resolve())
            elif target.startswith("/live/static/"):
                todo.append(WEB / target.removeprefix("/live/static/"))
    return seen


def test_hls_js_is_imported_only_when_needed() -> None:
    """No page module imports the vendored hls.js statically: stream.js loads it with
    import() where HLS is not native, so it is not in the first load (nor in the budget
    of tests/test_viewer_web.py, which counts clients/web/*, not vendor/)."""
    for module in WEB.glob("*.js"):
        assert not any(VENDOR in p.parents for p in static_imports(module)), module.name
    source = (WEB / "stream.js").read_text()
    assert 'new URL("./vendor/hls.light.min.mjs", import.meta.url)' in source
    assert "import(HLS_MODULE)" in source


async def test_vendored_hls_js_is_the_published_file(engine: Engine) -> None:
    """The sha256 in clients/web/vendor/README.md is the file's; the engine serves it as
    JavaScript (a module script needs a JavaScript type)."""
    readme = (VENDOR / "README.md").read_text()
    code = (VENDOR / "hls.light.min.mjs").read_bytes()
    assert f"file sha256 `{hashlib.sha256(code).hexdigest()}`" in readme
    # docs/viewer.md § The stream: 374 KB, about 117 KB gzipped.
    assert round(len(code) / 1000) == 374
    assert round(len(gzip.compress(code, 9)) / 1000) == 117
    assert (VENDOR / "hls.js-LICENSE").read_text().startswith("Copyright (c) 2017 Dailymotion")
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        response = await http.get(HLS_JS)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in {
        "text/javascript", "application/javascript"
    }  # fmt: skip
