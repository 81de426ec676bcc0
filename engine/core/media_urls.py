"""The URLs a room's cover and stream and a product's images may be: `http(s)://...`, or a
path on the engine's own origin (`/media/cover.svg`: engine/server/media.py), which a page
loads without asking any other host."""

from __future__ import annotations

import re

# A path is one `/` then anything but `/` or `\`: browsers read `//host/x` and `/\host/x`
# as another host's URL. No whitespace anywhere.
MEDIA_URL_RE = re.compile(r"(?:https?://\S|/[^\s/\\])\S*")
MAX_MEDIA_URL = 2048


def is_media_url(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= MAX_MEDIA_URL
        and bool(MEDIA_URL_RE.fullmatch(value))
    )
