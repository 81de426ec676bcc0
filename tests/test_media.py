"""`/media/` (engine/server/media.py, LIVECART_MEDIA_DIR): an operator's folder on the
engine's own origin, and the same-origin paths rooms and products may name (docs/api.md,
docs/viewer.md § The stream)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.core.settings import Settings
from engine.server.media import SAFE_HEADERS
from tests.conftest import EngineFactory, token

PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg-00000.ts\n#EXT-X-ENDLIST\n"
# The system's mime table may call `.ts` a Qt translation: the engine names each itself.
FILES: dict[str, tuple[bytes, str]] = {
    "cover.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
    "show/live.m3u8": (PLAYLIST.encode(), "application/vnd.apple.mpegurl"),
    "show/seg-00000.ts": (b"\x47" * 188, "video/mp2t"),
    "show/seg-00000.m4s": (b"\0" * 16, "video/iso.segment"),
    "clip.mp4": (b"\0" * 16, "video/mp4"),
    "photo.png": (b"\x89PNG\r\n\x1a\n", "image/png"),
}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    for name, (body, _) in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    (tmp_path / "secret.txt").write_text("not media")
    return folder


@pytest.mark.parametrize("name", FILES)
async def test_media_dir_is_served_with_its_types(
    engine_factory: EngineFactory, media: Path, name: str
) -> None:
    engine = await engine_factory(media_dir=media)
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        response = await http.get(f"/media/{name}")
    body, media_type = FILES[name]
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"].split(";")[0] == media_type
    for header, value in SAFE_HEADERS.items():  # an SVG opened alone runs no script
        assert response.headers[header] == value
    # A live playlist changes every segment: never served from a cache.
    assert (response.headers.get("cache-control") == "no-cache") == name.endswith(".m3u8")


async def test_media_dir_serves_nothing_outside_it(
    engine_factory: EngineFactory, media: Path
) -> None:
    engine = await engine_factory(media_dir=media)
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        assert (await http.get("/media/nope.svg")).status_code == 404
        assert (await http.get("/media/../secret.txt")).status_code == 404
        assert (await http.get("/media/%2e%2e/secret.txt")).status_code == 404
        assert (await http.get("/media/show/")).status_code == 404  # no listing


async def test_no_media_route_without_the_setting(engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        assert (await http.get("/media/cover.svg")).status_code == 404


def test_media_dir_setting(tmp_path: Path) -> None:
    env = {"LIVECART_MEDIA_DIR": str(tmp_path)}
    assert Settings.from_env(env).media_dir == tmp_path
    assert Settings.from_env({"LIVECART_MEDIA_DIR": ""}).media_dir is None
    assert Settings.from_env({}).media_dir is None
    with pytest.raises(ValueError, match=r"LIVECART_MEDIA_DIR .*nope is not a directory"):
        Settings.from_env({"LIVECART_MEDIA_DIR": str(tmp_path / "nope")})


# ---- same-origin paths in rooms and products ---------------------------------------------

GOOD_PATHS = ["/media/cover.svg", "/media/show/live.m3u8?v=2", "/a"]
# `//host/x` and `/\host/x` are other hosts' URLs to a browser.
BAD_PATHS = ["/", "//evil.example/x.svg", "/\\evil.example/x.svg", "/a b.svg", "media/x.svg",
             "/" + "x" * 2048, "https://", "/\tx"]  # fmt: skip


async def create_room(http: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    room = f"r-{secrets.token_hex(5)}"
    return await http.post(
        "/api/rooms",
        json={"id": room, "title": "Paths", **fields},
        headers={"authorization": f"Bearer {token(room, 'host', 'alice')}"},
    )


@pytest.mark.parametrize("path", GOOD_PATHS)
async def test_room_and_product_take_same_origin_paths(
    engine_factory: EngineFactory, path: str
) -> None:
    engine = await engine_factory()
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        created = await create_room(http, cover_url=path, stream_url=path)
        assert created.status_code == 201, created.text
        room = created.json()
        assert (room["cover_url"], room["stream_url"]) == (path, path)
        auth = {"authorization": f"Bearer {token(room['id'], 'host', 'alice')}"}
        product = await http.post(
            f"/api/rooms/{room['id']}/products",
            headers=auth,
            json={"title": "Cap", "currency": "USD", "images": [path, "https://cdn.example/c.jpg"],
                  "skus": [{"sku": "CAP-1", "list_price": 1500}]},
        )  # fmt: skip
        assert product.status_code == 201, product.text
        assert product.json()["images"] == [path, "https://cdn.example/c.jpg"]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_room_and_product_refuse_other_paths(
    engine_factory: EngineFactory, path: str
) -> None:
    engine = await engine_factory()
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        for field in ("cover_url", "stream_url"):
            refused = await create_room(http, **{field: path})
            assert refused.status_code == 400
            assert refused.json()["error"]["details"]["field"] == field
        created = await create_room(http)
        room = created.json()["id"]
        refused = await http.post(
            f"/api/rooms/{room}/products",
            headers={"authorization": f"Bearer {token(room, 'host', 'alice')}"},
            json={"title": "Cap", "currency": "USD", "images": [path],
                  "skus": [{"sku": "CAP-1", "list_price": 1500}]},
        )  # fmt: skip
        assert refused.status_code == 400
        assert refused.json()["error"]["details"]["field"] == "images"
