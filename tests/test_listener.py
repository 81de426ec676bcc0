"""engine.listener: the one-port sniffer, unit cases first, then over a real socket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, NegotiationError
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from clients import HostClient, ViewerClient
from engine import listener
from engine.app import Engine
from engine.listener import MAX_HEAD_BYTES, is_websocket_upgrade, select_subprotocol
from tests.conftest import EngineFactory, ViewerFactory, token

JSON = Subprotocol("livecart.v1.json")
MSGPACK = Subprotocol("livecart.v1.msgpack")
READ_TIMEOUT_S = 10.0


# ---- is_websocket_upgrade -------------------------------------------------------------------


def head(request_line: bytes, *headers: bytes) -> bytes:
    """A request head as the sniffer sees it (without the final blank line)."""
    return b"\r\n".join([request_line, b"Host: example", *headers])


UPGRADE = b"Upgrade: websocket"
CONNECTION = b"Connection: Upgrade"


@pytest.mark.parametrize(
    "request_head",
    [
        head(b"GET /ws/demo HTTP/1.1", UPGRADE, CONNECTION),
        head(b"GET /ws/demo HTTP/1.1", CONNECTION, UPGRADE),
        head(b"GET /ws/demo?x=1 HTTP/1.1", UPGRADE),
        head(b"GET /ws/ HTTP/1.1", UPGRADE),
        head(b"GET /ws/Not_A_Room/ HTTP/1.1", UPGRADE),  # the gateway refuses it in-band
        head(b"GET /ws/demo HTTP/1.1", b"UPGRADE: WebSocket"),
        head(b"GET /ws/demo HTTP/1.1", b"upgrade:websocket"),
        head(b"GET /ws/demo HTTP/1.1", b"Upgrade :  WEBSOCKET  "),
        head(b"GET /ws/demo HTTP/1.0", UPGRADE),
    ],
    ids=[
        "plain",
        "header-order",
        "query",
        "bare-prefix",
        "bad-room",
        "upper-case",
        "no-spaces",
        "padded",
        "http-1.0",
    ],
)
def test_upgrades(request_head: bytes) -> None:
    assert is_websocket_upgrade(request_head) is True


@pytest.mark.parametrize(
    "request_head",
    [
        head(b"GET /ws/demo HTTP/1.1"),
        head(b"GET /ws/demo HTTP/1.1", CONNECTION),
        head(b"GET /ws/demo HTTP/1.1", b"Upgrade: h2c", CONNECTION),
        head(b"GET /ws/demo HTTP/1.1", b"X-Upgrade: websocket"),
        head(b"GET /ws/demo HTTP/1.1", b"Connection: Upgrade, websocket"),
        head(b"POST /ws/demo HTTP/1.1", UPGRADE),
        head(b"get /ws/demo HTTP/1.1", UPGRADE),
        head(b"GET /api/rooms HTTP/1.1", UPGRADE),
        head(b"GET /ws HTTP/1.1", UPGRADE),
        head(b"GET /wsx/demo HTTP/1.1", UPGRADE),
        head(b"GET / HTTP/1.1", UPGRADE),
        head(b"GET /ws/demo", UPGRADE),
        head(b"GET  /ws/demo HTTP/1.1", UPGRADE),
        b"",
    ],
    ids=[
        "no-upgrade",
        "connection-only",
        "other-upgrade",
        "other-header",
        "in-connection",
        "post",
        "lower-case-method",
        "api-path",
        "no-trailing-slash",
        "other-prefix",
        "root",
        "no-version",
        "double-space",
        "empty",
    ],
)
def test_not_upgrades(request_head: bytes) -> None:
    assert is_websocket_upgrade(request_head) is False


# ---- select_subprotocol ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([JSON], JSON),
        ([MSGPACK], MSGPACK),
        ([MSGPACK, JSON], MSGPACK),
        ([JSON, MSGPACK], JSON),
        ([Subprotocol("bogus"), MSGPACK, JSON], MSGPACK),
        ([Subprotocol("livecart.v2.json"), JSON], JSON),
        ([], None),
    ],
)
def test_select_subprotocol(offered: list[Subprotocol], chosen: Subprotocol | None) -> None:
    assert select_subprotocol(ServerProtocol(), offered) == chosen


@pytest.mark.parametrize(
    "offered",
    [["bogus"], ["LIVECART.V1.JSON"], ["livecart.v1", "chat"]],
)
def test_select_subprotocol_refuses_unknown_offers(offered: list[str]) -> None:
    with pytest.raises(NegotiationError, match=r"livecart\.v1\.json, livecart\.v1\.msgpack"):
        select_subprotocol(ServerProtocol(), [Subprotocol(name) for name in offered])


# ---- over the real port ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_connection(
    engine: Engine,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, headers, body)."""
    async with asyncio.timeout(READ_TIMEOUT_S):
        raw_head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(READ_TIMEOUT_S):
        return await reader.read()


def get(path: str, *extra: bytes) -> bytes:
    return b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"Host: test", *extra, b"", b""])


def padded(start: bytes, size: int) -> bytes:
    """`start` plus an `X-Pad` header line making it `size` bytes long (no blank line)."""
    line = b"\r\nX-Pad: "
    return start + line + b"a" * (size - len(start) - len(line))


async def test_http_and_websocket_share_the_port_concurrently(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    codecs = ["json", "msgpack", "json"]
    viewers = [await viewer_factory(room, user=f"u{n}", codec=c) for n, c in enumerate(codecs)]

    async def chat(viewer: ViewerClient, n: int) -> list[str]:
        return [(await viewer.comment(f"{viewer.welcome['user']} {i}"))["text"] for i in range(n)]

    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        http_calls = [http.get(f"/api/rooms/{room}") for _ in range(15)] + [
            http.get("/healthz") for _ in range(15)
        ]
        results = await asyncio.gather(*http_calls, *(chat(v, 3) for v in viewers))
    responses, chats = results[: len(http_calls)], results[len(http_calls) :]
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in responses)
    assert chats == [[f"u{n} {i}" for i in range(3)] for n in range(3)]
    for viewer in viewers:
        assert viewer.ws is not None
        assert viewer.ws.remote_address[1] == engine.port


async def test_get_ws_path_without_upgrade_is_http_404(engine: Engine, room: str) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        response = await http.get(f"/ws/{room}")
    assert response.status_code == 404
    assert response.text == "Not Found"


@pytest.mark.parametrize("path", ["/healthz", "/ws/demo"])
async def test_oversized_unfinished_head_gets_431(engine: Engine, path: str) -> None:
    request = padded(
        get(path, b"Upgrade: websocket", b"Connection: Upgrade")[:-4], MAX_HEAD_BYTES + 1
    )
    assert len(request) == MAX_HEAD_BYTES + 1
    async with raw_connection(engine) as (reader, writer):
        writer.write(request)
        await writer.drain()
        reply = await read_until_closed(reader)
    assert reply.startswith(b"HTTP/1.1 431 ")


async def test_unfinished_head_of_16_kib_is_still_awaited(engine: Engine) -> None:
    # 16 KiB including the blank line that ends it; the last 4 bytes come later.
    request = padded(get("/healthz")[:-4], MAX_HEAD_BYTES - 4)
    assert len(request) + 4 == MAX_HEAD_BYTES
    async with raw_connection(engine) as (reader, writer):
        writer.write(request)
        await writer.drain()
        # Not refused: the head is then finished and served.
        writer.write(b"\r\n\r\n")
        status, _, body = await read_response(reader)
    assert status == 200
    assert orjson.loads(body) == {"ok": True}


async def test_oversized_complete_head_gets_431(engine: Engine) -> None:
    # docs/protocol.md: "the request head must end within 16 KiB (`431` otherwise)".
    request = get("/healthz", b"X-Pad: " + b"a" * (MAX_HEAD_BYTES + 1024))
    async with raw_connection(engine) as (reader, writer):
        writer.write(request)
        await writer.drain()
        reply = await read_until_closed(reader)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:80]


async def test_unknown_subprotocol_fails_the_handshake_with_400(engine: Engine, room: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            f"{engine.ws_url}/{room}",
            subprotocols=[Subprotocol("bogus"), Subprotocol("chat")],
            open_timeout=READ_TIMEOUT_S,
        ):
            pass
    response = caught.value.response
    assert response.status_code == 400
    assert response.body is not None
    assert b"supported subprotocols: livecart.v1.json, livecart.v1.msgpack" in response.body


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["bogus", "livecart.v1.msgpack", "livecart.v1.json"], "livecart.v1.msgpack"),
        (["livecart.v1.json", "livecart.v1.msgpack"], "livecart.v1.json"),
        (None, None),
    ],
)
async def test_subprotocol_negotiation_over_the_port(
    engine: Engine, room: str, offered: list[str] | None, chosen: str | None
) -> None:
    subprotocols = None if offered is None else [Subprotocol(name) for name in offered]
    async with connect(
        f"{engine.ws_url}/{room}", subprotocols=subprotocols, compression=None
    ) as ws:
        assert ws.subprotocol == chosen
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Protocol") == chosen
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        if chosen != "livecart.v1.msgpack":
            await ws.send(orjson.dumps({"type": "hello"}).decode())
            frame = await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)
            assert isinstance(frame, str)  # JSON goes out in text frames
            assert orjson.loads(frame)["type"] == "welcome"


async def test_invalid_websocket_handshake_is_refused_by_websockets(
    engine: Engine, room: str
) -> None:
    # An upgrade request goes to `websockets` even when it is not a valid handshake.
    request = get(f"/ws/{room}", b"Upgrade: websocket", b"Connection: Upgrade")  # no key
    async with raw_connection(engine) as (reader, writer):
        writer.write(request)
        status, _, body = await read_response(reader)
    assert status == 400
    assert b"Sec-WebSocket-Key" in body


async def test_compression_offers_are_ignored(engine: Engine, room: str) -> None:
    async with connect(f"{engine.ws_url}/{room}") as ws:  # offers permessage-deflate
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_keep_alive_requests_share_one_connection(engine: Engine, room: str) -> None:
    async with raw_connection(engine) as (reader, writer):
        writer.write(get("/healthz"))
        assert (await read_response(reader))[0] == 200
        writer.write(get(f"/api/rooms/{room}"))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert orjson.loads(body)["id"] == room
        # Pipelined: two requests in one write, two responses in order.
        writer.write(get("/healthz") + get("/api/rooms/r-nope"))
        assert (await read_response(reader))[0] == 200
        assert (await read_response(reader))[0] == 404
        writer.write(get("/", b"Connection: close"))
        status, _, body = await read_response(reader)
        assert status == 200
        assert orjson.loads(body)["service"] == "livecart"
        assert await read_until_closed(reader) == b""


async def test_heads_arriving_byte_by_byte(engine: Engine, room: str) -> None:
    key = base64.b64encode(os.urandom(16))
    handshake = get(
        f"/ws/{room}",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
    )
    for request, expected in [(get("/healthz"), b"HTTP/1.1 200 "), (handshake, b"HTTP/1.1 101 ")]:
        async with raw_connection(engine) as (reader, writer):
            for i in range(len(request)):
                writer.write(request[i : i + 1])
                await writer.drain()
            async with asyncio.timeout(READ_TIMEOUT_S):
                reply = await reader.readuntil(b"\r\n\r\n")
        assert reply.startswith(expected), reply


# ---- head timeout ---------------------------------------------------------------------------


@pytest.fixture
async def quick_engine(monkeypatch: pytest.MonkeyPatch, engine_factory: EngineFactory) -> Engine:
    """An engine whose sniffer waits only 0.3 s for a request head."""
    monkeypatch.setattr(listener, "HEAD_TIMEOUT_S", 0.3)
    return await engine_factory()


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: te"])
async def test_silent_connection_is_closed_after_the_head_timeout(
    quick_engine: Engine, sent: bytes
) -> None:
    async with raw_connection(quick_engine) as (reader, writer):
        writer.write(sent)
        await writer.drain()
        assert await read_until_closed(reader) == b""


async def frames_until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next JSON frame of type `kind` (ticks and notices before it are skipped)."""
    async with asyncio.timeout(READ_TIMEOUT_S):
        while True:
            frame: dict[str, Any] = orjson.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


async def test_head_timeout_does_not_touch_served_connections(quick_engine: Engine) -> None:
    room = f"r-{secrets.token_hex(5)}"
    async with HostClient(quick_engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Quick")
        async with connect(f"{quick_engine.ws_url}/{room}", compression=None) as ws:
            await ws.send(orjson.dumps({"type": "hello"}).decode())
            await frames_until(ws, "welcome")
            # The point: idle for twice the head timeout (0.3 s here) after the welcome.
            await asyncio.sleep(2 * listener.HEAD_TIMEOUT_S)
            await ws.send(orjson.dumps({"type": "ping", "id": "p1"}).decode())
            assert (await frames_until(ws, "pong"))["ref"] == "p1"
            # Keep-alive HTTP on the same engine outlives the head timeout as well.
            assert (await host.get_room())["id"] == room
            await asyncio.sleep(2 * listener.HEAD_TIMEOUT_S)  # idle again, as long
            assert (await host.get_room())["id"] == room
