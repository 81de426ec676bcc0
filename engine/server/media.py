"""`/media/`: the files of LIVECART_MEDIA_DIR on the engine's own origin (docs/viewer.md
§ The stream): cover images, product pictures, an HLS stream a local encoder writes there.
Rooms and products name them by path (`/media/cover.svg`), so a page needs no other host."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

# Types the system's mime table gets wrong or lacks: `.ts` is often Qt's translation files.
MEDIA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".svg": "image/svg+xml",
}
# An SVG (or HTML) opened on its own would run its scripts as the engine's origin: the
# sandbox gives it none, and nosniff keeps a file from being read as another type.
SAFE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "x-content-type-options": "nosniff",
}
# A live playlist changes every segment: a cached one would freeze the stream.
PLAYLIST = ".m3u8"


class MediaFiles(StaticFiles):
    """The media folder as static files, with the right types and safe headers."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        suffix = Path(full_path).suffix.lower()
        if suffix in MEDIA_TYPES and response.status_code != 304:
            response.headers["content-type"] = MEDIA_TYPES[suffix]
        if suffix == PLAYLIST:
            response.headers["cache-control"] = "no-cache"
        response.headers.update(SAFE_HEADERS)
        return response
