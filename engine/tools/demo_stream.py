"""The demo's live test stream: ffmpeg's moving test pattern with a clock, encoded as HLS
into the media folder the engine serves at /media/, for as long as the demo runs."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import shutil
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

log = logging.getLogger("livecart.demo")

FOLDER = "demo/stream"  # inside the media folder
PLAYLIST = "live.m3u8"
URL = f"/media/{FOLDER}/{PLAYLIST}"
# Fonts drawtext can use for the clock, where Debian, Fedora and macOS keep them.
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
)
STOP_S = 5.0  # ffmpeg's time to close its files on SIGTERM before it is killed
_PR_SET_PDEATHSIG = 1


def font_file() -> str | None:
    return next((font for font in FONTS if Path(font).is_file()), None)


def ffmpeg_command(ffmpeg: str, folder: Path, font: str | None) -> list[str]:
    """Portrait 720x1280 (a phone's shape) at 15 frames a second and ~700 kbit/s, a key
    frame every 2 s so that every 2 s segment starts with one; six segments listed, older
    ones deleted."""
    video = ["-re", "-f", "lavfi", "-i", "testsrc2=size=720x1280:rate=15"]
    clock = (
        []
        if font is None
        else ["-vf", f"drawtext=fontfile={font}:text='%{{localtime\\:%T}}':fontsize=96"
                     ":fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=16"
                     ":x=(w-tw)/2:y=h*0.18"]  # over the stage band, clear of the page's dock
    )  # fmt: skip
    encode = [
        "-an", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-profile:v", "main", "-pix_fmt", "yuv420p",
        "-b:v", "700k", "-maxrate", "900k", "-bufsize", "1400k",
        "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
    ]  # fmt: skip
    hls = [
        "-f", "hls", "-hls_time", "2", "-hls_list_size", "6",
        "-hls_flags", "delete_segments+temp_file",
        "-hls_segment_filename", str(folder / "seg-%05d.ts"), str(folder / PLAYLIST),
    ]  # fmt: skip
    return [ffmpeg, "-hide_banner", "-loglevel", "warning", "-nostdin",
            *video, *clock, *encode, *hls]  # fmt: skip


def _die_with_parent() -> None:
    """In the child before exec (Linux): a demo killed outright takes ffmpeg with it,
    rather than leave it writing segments forever."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DemoStream:
    """The test stream: `async with DemoStream(media_dir, log_file) as stream:` runs ffmpeg
    while inside; `stream.url` is the playlist's same-origin URL, or None without ffmpeg."""

    def __init__(self, media_dir: Path, log_file: Path) -> None:
        self.folder = media_dir / FOLDER
        self.log_file = log_file
        self.process: asyncio.subprocess.Process | None = None
        self.url: str | None = None

    @property
    def playlist(self) -> Path:
        return self.folder / PLAYLIST

    async def start(self) -> None:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            log.info("ffmpeg is not on PATH: the demo room shows its cover, no test stream")
            return
        shutil.rmtree(self.folder, ignore_errors=True)  # a previous run's segments
        self.folder.mkdir(parents=True)
        font = font_file()
        with self._open_log() as errors:
            self.process = await asyncio.create_subprocess_exec(
                *ffmpeg_command(ffmpeg, self.folder, font),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=errors,
                # Its own session: a Ctrl-C meant for the demo reaches ffmpeg only through
                # `stop`, as one signal (a second one aborts its last playlist write).
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self.url = URL
        clock = "with a clock" if font else "without a clock (no font found)"
        log.info("test stream %s: ffmpeg writes %s", clock, self.playlist)

    def _open_log(self) -> BinaryIO:
        """ffmpeg's warnings go to this file (appended: the demo's earlier runs stay)."""
        return open(self.log_file, "ab")  # a local file: opening it does not block

    async def wait_for_playlist(self, timeout_s: float) -> bool:
        """Whether the first segment is out within `timeout_s` (ffmpeg still running)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.process is not None and self.process.returncode is None:
            if self.playlist.exists():
                return True
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        log.warning("the test stream has no playlist yet: see %s", self.log_file)
        return False

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_S)
        except TimeoutError:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()

    async def __aenter__(self) -> DemoStream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
