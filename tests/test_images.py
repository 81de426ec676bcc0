"""Product images (engine/commerce/images.py, engine/server/api/images.py): the host's upload
with its checks, the store on disk, `GET /images/{name}` with its caching, and an uploaded
image on a product and in the post-live report."""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from engine.commerce.images import MAX_IMAGE_BYTES, FileImageStore, image_name, sniff
from engine.core.errors import TooLargeError
from engine.core.media_urls import is_media_url
from engine.server.api.base import Call
from engine.server.api.images import read_image
from engine.server.app import Engine
from engine.server.node import Node
from tests.conftest import token


def png(width: int = 2, height: int = 2, seed: int = 0,
        paint: Callable[[int, int], tuple[int, int, int]] | None = None) -> bytes:  # fmt: skip
    """A real PNG (RGB, 8 bits), its pixels from `seed`, or `paint(x, y)` when given."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    if paint is None:
        rows = b"".join(b"\0" + bytes((seed + x + y) % 256 for x in range(width * 3))
                        for y in range(height))  # fmt: skip
    else:
        rows = b"".join(b"\0" + b"".join(bytes(paint(x, y)) for x in range(width))
                        for y in range(height))  # fmt: skip
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))  # fmt: skip


PNG = png()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"  # noqa: E501
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
NAME = re.compile(r"/images/([0-9a-f]{64})\.(png|jpg|webp|gif)")


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=30) as client:
        yield client


def host_of(room: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token(room, 'host', 'host-1')}"}


async def upload(http: httpx.AsyncClient, room: str, data: Any, content_type: str | None,
                 auth: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    headers = dict(host_of(room) if auth is None else auth)
    if content_type is not None:
        headers["content-type"] = content_type
    return await http.post(f"/api/rooms/{room}/images", content=data, headers=headers)


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


# ---- the upload ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared", "ext"),
    [(PNG, "image/png", "png"), (JPEG, "image/jpeg", "jpg"), (WEBP, "image/webp", "webp"),
     (GIF, "image/gif", "gif"), (PNG, "Image/PNG; charset=binary", "png")],
)  # fmt: skip
async def test_each_type_is_taken_and_named_by_its_sha256(
    engine: Engine, http: httpx.AsyncClient, room: str, *, data: bytes, declared: str, ext: str
) -> None:
    response = await upload(http, room, data, declared)
    assert response.status_code == 201, response.text
    body = response.json()
    sha = hashlib.sha256(data).hexdigest()
    kind = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
    assert body == {"url": f"/images/{sha}.{ext}", "type": kind[ext], "bytes": len(data)}
    assert is_media_url(body["url"])  # a product's `images` takes it
    assert (engine.settings.data_dir / "images" / f"{sha}.{ext}").read_bytes() == data


async def test_the_same_bytes_twice_are_one_file(
    engine: Engine, http: httpx.AsyncClient, room: str
) -> None:
    first = (await upload(http, room, PNG, "image/png")).json()
    second = (await upload(http, room, PNG, "image/png")).json()
    other = (await upload(http, room, png(seed=7), "image/png")).json()
    assert first == second
    assert other["url"] != first["url"]
    folder = engine.settings.data_dir / "images"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        u["url"].removeprefix("/images/") for u in (first, other)
    )  # no temporary file left


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(PNG, "image/jpeg"), (JPEG, "image/png"), (GIF, "image/webp"), (b"hello world", "image/gif"),
     (SVG, "image/png"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "image/webp")],
)  # fmt: skip
async def test_bytes_that_are_not_the_declared_type_are_refused(
    engine: Engine, http: httpx.AsyncClient, room: str, data: bytes, content_type: str
) -> None:
    error = refused(await upload(http, room, data, content_type), 422, "image_type_mismatch")
    assert error["details"]["declared"] == content_type
    assert error["details"]["detected"] == sniff(data)
    assert not (engine.settings.data_dir / "images").exists()  # nothing written


@pytest.mark.parametrize("content_type", ["image/svg+xml", "text/html", "image/bmp", None,
                                          "application/octet-stream"])  # fmt: skip
async def test_other_declared_types_are_unsupported(
    http: httpx.AsyncClient, room: str, content_type: str | None
) -> None:
    body = SVG if content_type == "image/svg+xml" else PNG
    error = refused(await upload(http, room, body, content_type), 415, "image_type_unsupported")
    assert error["details"]["types"] == ["image/png", "image/jpeg", "image/webp", "image/gif"]


async def test_an_empty_body_is_refused(http: httpx.AsyncClient, room: str) -> None:
    refused(await upload(http, room, b"", "image/png"), 422, "image_empty")


async def test_an_image_at_the_limit_is_taken_and_one_byte_more_is_too_large(
    http: httpx.AsyncClient, room: str
) -> None:
    at_limit = PNG + b"\0" * (MAX_IMAGE_BYTES - len(PNG))
    assert len(at_limit) == MAX_IMAGE_BYTES == 5 * 1024 * 1024
    response = await upload(http, room, at_limit, "image/png")
    assert response.status_code == 201, response.text
    assert response.json()["bytes"] == MAX_IMAGE_BYTES
    error = refused(await upload(http, room, at_limit + b"\0", "image/png"), 413, "image_too_large")
    assert error["details"] == {"max_bytes": MAX_IMAGE_BYTES}


async def test_a_streamed_body_is_refused_past_the_limit(
    http: httpx.AsyncClient, room: str
) -> None:
    """Without a Content-Length (chunked): refused once it passes the limit."""

    async def endless() -> AsyncIterator[bytes]:
        yield PNG
        for _ in range(200):  # 12.5 MiB
            yield b"\0" * (64 * 1024)

    refused(await upload(http, room, endless(), "image/png"), 413, "image_too_large")


@pytest.mark.parametrize("declared", [True, False])
async def test_reading_stops_at_the_first_chunk_past_the_limit(declared: bool) -> None:
    """The route reads no more than the limit and one chunk: a declared length over it is
    refused unread, and a body without one stops being read at the chunk that passes it."""
    chunk = 64 * 1024
    total = 4 * MAX_IMAGE_BYTES
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += chunk
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": received < total}

    headers = [(b"content-length", str(total).encode())] if declared else []
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    with pytest.raises(TooLargeError):
        await read_image(Call(request, cast(Node, None), "r"))
    assert received == (0 if declared else MAX_IMAGE_BYTES + chunk)


async def test_only_the_room_s_host_may_upload(http: httpx.AsyncClient, room: str) -> None:
    for role in ("viewer", "moderator"):
        auth = {"authorization": f"Bearer {token(room, role)}"}
        error = refused(await upload(http, room, PNG, "image/png", auth), 403, "forbidden")
        assert error["details"] == {"needs": ["host"]}
    refused(await upload(http, room, PNG, "image/png", {}), 401, "auth_required")
    other = {"authorization": f"Bearer {token('r-other', 'host', 'host-1')}"}
    refused(await upload(http, room, PNG, "image/png", other), 401, "token_wrong_room")


async def test_an_unknown_room_is_not_found(http: httpx.AsyncClient) -> None:
    refused(await upload(http, "r-nothere", PNG, "image/png"), 404, "room_not_found")


# ---- serving -------------------------------------------------------------------------------


async def test_an_image_is_served_cached_forever_with_its_sha_as_etag(
    http: httpx.AsyncClient, room: str
) -> None:
    url = (await upload(http, room, PNG, "image/png")).json()["url"]
    match = NAME.fullmatch(url)
    assert match
    response = await http.get(url)  # no token: viewers load them
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["etag"] == f'"{match.group(1)}"'
    assert response.headers["x-content-type-options"] == "nosniff"
    for tag in (f'"{match.group(1)}"', f'W/"{match.group(1)}"', f'"x", "{match.group(1)}"', "*"):
        again = await http.get(url, headers={"if-none-match": tag})
        assert again.status_code == 304, tag
        assert again.content == b""
        assert again.headers["etag"] == f'"{match.group(1)}"'
    changed = await http.get(url, headers={"if-none-match": '"' + "0" * 64 + '"'})
    assert changed.status_code == 200
    assert changed.content == PNG


@pytest.mark.parametrize(
    "path",
    ["/images/" + "a" * 64 + ".png",  # well formed, never uploaded
     "/images/" + "A" * 64 + ".png", "/images/" + "a" * 63 + ".png", "/images/x.svg",
     "/images/..%2Fsecret", "/images/%2e%2e%2f%2e%2e%2fsecret", "/images/.upload-x.tmp",
     "/images/../secret"],
)  # fmt: skip
async def test_unknown_or_ill_formed_names_are_not_found(
    engine: Engine, http: httpx.AsyncClient, room: str, path: str
) -> None:
    await upload(http, room, PNG, "image/png")
    (engine.settings.data_dir / "secret").write_text("not an image")
    (engine.settings.data_dir / "images" / ".upload-x.tmp").write_bytes(PNG)
    response = await http.get(path)
    assert response.status_code == 404
    assert b"not an image" not in response.content
    assert response.content != PNG


async def test_the_store_serves_only_well_formed_names(tmp_path: Path) -> None:
    store = FileImageStore(tmp_path / "images")
    stored = await store.put(GIF, "image/gif")
    assert stored.name == image_name(GIF, "image/gif")
    assert await store.get(stored.name) == GIF
    assert await store.exists(stored.name)
    (tmp_path / "images" / "notes.gif").write_bytes(GIF)
    assert await store.get("notes.gif") is None
    assert not await store.exists("../images/" + stored.name)
    assert await store.get("b" * 64 + ".gif") is None


# ---- on a product, and in the report -------------------------------------------------------


async def test_an_uploaded_image_goes_on_a_product_and_into_the_report(
    engine: Engine, http: httpx.AsyncClient, room: str
) -> None:
    auth = host_of(room)
    product = {"title": "Mug", "currency": "USD", "skus": [{"sku": "MUG", "list_price": 900}]}
    created = await http.post(f"/api/rooms/{room}/products", json=product, headers=auth)
    assert created.status_code == 201, created.text
    url = (await upload(http, room, PNG, "image/png")).json()["url"]
    path = f"/api/rooms/{room}/products/{created.json()['id']}"
    patched = await http.patch(path, json={"images": [url]}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert (await http.get(path)).json()["images"] == [url]
    summary = (await http.get(f"/api/rooms/{room}/report/summary.json", headers=auth)).json()
    assert [p["image"] for p in summary["products"]] == [url]
    page = (await http.get(f"/api/rooms/{room}/report", headers=auth)).text
    # The served report names it by the engine's origin: the console opens it as a blob:
    # page, where a bare path would not resolve.
    img = re.search(r'<table id="products">.*?<img ([^>]*)>', page, re.S)
    assert img, "no thumbnail in the products table"
    assert f'src="{engine.base_url}{url}"' in img.group(1)
    assert 'alt=""' in img.group(1)
    assert 'loading="lazy"' in img.group(1)
    assert (await http.get(f"{engine.base_url}{url}")).content == PNG
