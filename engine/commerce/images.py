"""Product images a host uploads (`POST /api/rooms/{room}/images`, served at `/images/`):
the checks on the bytes (sans-I/O: the type by its magic bytes, the size, the name) and
`ImageStore`, the interface the engine keeps them behind, with `FileImageStore`, the one
that writes them into the data dir (`<data-dir>/images`).

It sits in `commerce/` because an image is part of a product (catalog.py names it by URL),
and the catalog is commerce's; it needs nothing but the standard library, so the server
(the upload and the `/images/` routes, the node that builds the store) and the report can
use it from above. It is not in `store/`, which is Redis: images are files (or objects in
another store) that Redis never sees.

Names are content-addressed: the sha256 of the bytes in hex, then the type's extension
(`<64 hex>.png`). The same upload twice is one file with one URL, and a URL's bytes never
change, so a browser may cache it forever and the sha is its strong ETag. A deployment with
several engine hosts gives them one shared folder or another `ImageStore` (an object store)
behind the same protocol (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# The largest image the engine takes: a product photo for a phone screen fits with room to
# spare; a body past it is refused (413 `image_too_large`) after reading at most one chunk
# more than this (docs/api.md § Product images).
MAX_IMAGE_BYTES = 5 * 1024 * 1024

# The types taken, each with its extension. No SVG: an SVG can carry script.
EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}
TYPES: dict[str, str] = {ext: content_type for content_type, ext in EXTENSIONS.items()}
# `<sha256 hex>.<ext>`: the only names the store holds or serves (no path, no dot-dot).
NAME_RE = re.compile(r"([0-9a-f]{64})\.(png|jpg|webp|gif)")
URL_PREFIX = "/images/"


def sniff(data: bytes) -> str | None:
    """The type the bytes really are, by their magic bytes; None if not one of EXTENSIONS."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def media_type(header: str | None) -> str:
    """A Content-Type header's type, without parameters, in lower case ("" if none)."""
    return (header or "").split(";", 1)[0].strip().lower()


def image_name(data: bytes, content_type: str) -> str:
    """The content-addressed name of an image of a type in EXTENSIONS."""
    return f"{hashlib.sha256(data).hexdigest()}.{EXTENSIONS[content_type]}"


def check_name(name: str) -> re.Match[str] | None:
    """The name's (sha, extension) match if it is a name the store could hold, else None."""
    return NAME_RE.fullmatch(name)


def content_type_of(name: str) -> str:
    """The type a valid name is served as (by its extension)."""
    return TYPES[name.rsplit(".", 1)[1]]


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image in the store: its name, the URL a product names it by, type and size."""

    name: str
    content_type: str
    size: int

    @property
    def url(self) -> str:
        """A same-origin path (engine/core/media_urls.py accepts it for a product's images)."""
        return URL_PREFIX + self.name

    @property
    def etag(self) -> str:
        return self.name.split(".", 1)[0]

    def to_wire(self) -> dict[str, object]:
        return {"url": self.url, "type": self.content_type, "bytes": self.size}


class ImageStore(Protocol):
    """Where uploaded images live. The bytes given to `put` are already checked (type,
    size); a store keeps them under `image_name` and answers by that name."""

    async def put(self, data: bytes, content_type: str) -> StoredImage:
        """Keep the image (again: a no-op for bytes it holds) and say where it is."""
        ...

    async def get(self, name: str) -> bytes | None:
        """The image's bytes, or None if the store has no image of that name."""
        ...

    async def exists(self, name: str) -> bool:
        """Whether the store holds `name` (answers a revalidation without reading it)."""
        ...


class FileImageStore:
    """Images as files in one folder (`<data-dir>/images`), created on the first upload.
    A file is written under a temporary name and renamed into place, so a reader never
    sees half an image, and two engines sharing the folder may write the same one at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def put(self, data: bytes, content_type: str) -> StoredImage:
        name = image_name(data, content_type)
        await asyncio.to_thread(self._write, name, data)
        return StoredImage(name, content_type, len(data))

    async def get(self, name: str) -> bytes | None:
        if check_name(name) is None:
            return None
        try:
            return await asyncio.to_thread((self.folder / name).read_bytes)
        except FileNotFoundError:
            return None

    async def exists(self, name: str) -> bool:
        return check_name(name) is not None and (self.folder / name).is_file()

    def _write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        if path.is_file():  # content-addressed: the file there holds these bytes
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
