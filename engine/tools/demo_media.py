"""The demo's pictures, drawn here as SVG into the media folder the engine serves at
/media/ (engine/server/media.py): a cover for the room and one picture per product, so the
demo page asks no other host for anything."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from xml.sax.saxutils import escape

MEDIA_PATH = "/media"  # where the engine mounts the media folder
FOLDER = "demo"  # the demo's own files, inside the media folder


def url_of(name: str) -> str:
    """The same-origin URL of a demo file."""
    return f"{MEDIA_PATH}/{FOLDER}/{name}"


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"


def _hue(text: str) -> int:
    """A colour of its own for each name, the same on every run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:2], "big") % 360


def cover_svg(title: str) -> str:
    """A portrait (phone-shaped) cover: a gradient, rings and the show's title."""
    hue = _hue(title)
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="720" height="1280" viewBox="0 0 720 1280">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="hsl({hue},70%,45%)"/><stop offset="1" stop-color="hsl({(hue + 60) % 360},70%,25%)"/>
</linearGradient></defs>
<rect width="720" height="1280" fill="url(#g)"/>
<circle cx="360" cy="560" r="220" fill="none" stroke="#fff" stroke-opacity=".25" stroke-width="24"/>
<circle cx="360" cy="560" r="120" fill="#fff" fill-opacity=".2"/>
<path d="M330 500 L420 560 L330 620 Z" fill="#fff"/>
<text x="360" y="900" fill="#fff" font-family="system-ui, sans-serif" font-size="52" font-weight="700" text-anchor="middle">{escape(title)}</text>
<text x="360" y="970" fill="#fff" fill-opacity=".8" font-family="system-ui, sans-serif" font-size="32" text-anchor="middle">livecart demo</text>
</svg>
"""  # noqa: E501


def product_svg(title: str) -> str:
    """A square product picture: a colour of the product's own, a shape and its name."""
    hue = _hue(title)
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="600" height="600" viewBox="0 0 600 600">
<rect width="600" height="600" fill="hsl({hue},65%,88%)"/>
<circle cx="300" cy="250" r="150" fill="hsl({hue},65%,55%)"/>
<rect x="190" y="330" width="220" height="60" rx="30" fill="hsl({(hue + 180) % 360},60%,50%)"/>
<text x="300" y="500" fill="hsl({hue},60%,20%)" font-family="system-ui, sans-serif" font-size="44" font-weight="700" text-anchor="middle">{escape(title)}</text>
</svg>
"""  # noqa: E501


def write(media_dir: Path, name: str, svg: str) -> str:
    """Write one picture into the demo's folder of `media_dir`; its same-origin URL."""
    folder = media_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(svg, encoding="utf-8")
    return url_of(name)


def write_cover(media_dir: Path, title: str) -> str:
    return write(media_dir, "cover.svg", cover_svg(title))


def write_product_picture(media_dir: Path, title: str) -> str:
    return write(media_dir, f"{slug(title)}.svg", product_svg(title))
