"""engine.server.listener: one port for HTTP and viewers, unit cases first, then over a real
socket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus, NegotiationError
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from clients import HostClient, ViewerClient
from engine.server import listener
from engine.server.app import Engine
from engine.server.listener import (
    MAX_HEAD_BYTES,
    as_plain_request,
    is_viewer_handshake,
    select_subprotocol,
)
from tests.conftest import EngineFactory, ViewerFactory, token

JSON = Subprotocol("livecart.v1.json")
MSGPACK = Subprotocol("livecart.v1.msgpack")
READ_TIMEOUT_S = 10.0


# ---- which upgrades go to websockets ------------------------------------------------------


@pytest.mark.parametrize(
    ("request_head", "viewer"),
    [
        (b"GET /ws/demo HTTP/1.1\r\nhost: x", True),
        (b"GET /ws/demo?x=1 HTTP/1.1\r\nhost: x", True),
        (b"GET /ws/ HTTP/1.1\r\nhost: x", True),
        (b"GET /ws/Not_A_Room/ HTTP/1.1\r\nhost: x", True),  # the gateway refuses it in-band
        (b"POST /ws/demo HTTP/1.1\r\nhost: x", False),
        (b"get /ws/demo HTTP/1.1\r\nhost: x", False),
        (b"GET /ws HTTP/1.1\r\nhost: x", False),
        (b"GET /wsx/demo HTTP/1.1\r\nhost: x", False),
        (b"GET /api/rooms HTTP/1.1\r\nhost: x", False),
        (b"GET http://x/ws/demo HTTP/1.1\r\nhost: x", False),
    ],
)
def test_viewer_handshakes_are_get_on_ws(request_head: bytes, viewer: bool) -> None:
    assert is_viewer_handshake(request_head) is viewer


def test_an_upgrade_served_as_http_loses_its_upgrade_and_body_headers() -> None:
    upgrade = b"\r\n".join([
        b"POST /api/rooms HTTP/1.1", b"host: x", b"upgrade: websocket",
        b"connection: Upgrade", b"content-length: 2", b"Transfer-Encoding: chunked", b"", b"",
    ])  # fmt: skip
    assert as_plain_request(upgrade) == b"\r\n".join(
        [b"POST /api/rooms HTTP/1.1", b"host: x", b"connection: Upgrade", b"", b""]
    )


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


class KeptAlive:
    """A client connection driven with the loop's socket calls (no transport of its own),
    so that `websockets` can take it over (`connect(sock=...)`) after plain HTTP requests,
    as a reverse proxy's pooled connection carries a handshake after other requests."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @classmethod
    async def open(cls, engine: Engine) -> KeptAlive:
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", engine.port))
        return cls(sock)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request; (status, body) of its response (Content-Length framed)."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, data)
        async with asyncio.timeout(READ_TIMEOUT_S):
            while b"\r\n\r\n" not in self.buffer:
                await self._read(loop)
            raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            status_line, *lines = raw_head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(self.buffer) < length:
                await self._read(loop)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), body

    async def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        data = await loop.sock_recv(self.sock, 65536)
        if not data:
            raise ConnectionError("closed by the engine")
        self.buffer += data

    async def hello(self, engine: Engine, room: str) -> dict[str, Any]:
        """Open a viewer WebSocket on this connection; the engine's welcome."""
        assert self.buffer == b""
        async with connect(f"{engine.ws_url}/{room}", sock=self.sock, compression=None) as ws:
            (server_side,) = [
                c for c in engine_connections(engine) if c.remote_address == ws.local_address
            ]
            # Nothing is left between the socket and the viewer's protocol.
            assert server_side.transport.get_protocol() is server_side
            await ws.send(orjson.dumps({"type": "hello"}).decode())
            return await frames_until(ws, "welcome")

    def close(self) -> None:
        self.sock.close()


def engine_connections(engine: Engine) -> list[ServerConnection]:
    assert engine.listener is not None
    return list(engine.listener.ws_server.all_connections)


def upgrade_request(method: str, path: str, body: bytes = b"") -> bytes:
    """A request asking for a WebSocket upgrade (with a body when given)."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: test", b"Upgrade: websocket",
             b"Connection: Upgrade"]  # fmt: skip
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([*lines, b"", body])


async def test_a_handshake_after_requests_on_a_kept_alive_connection(
    engine: Engine, room: str
) -> None:
    # What a reverse proxy's pooled upstream connection carries (issue 19): health checks
    # and API calls, then a viewer's handshake, each routed by its own path.
    conn = await KeptAlive.open(engine)
    try:
        for _ in range(3):
            assert await conn.request(get("/healthz")) == (200, b'{"ok":true}')
        status, body = await conn.request(get(f"/api/rooms/{room}"))
        assert (status, orjson.loads(body)["id"]) == (200, room)
        assert (await conn.request(get(f"/ws/{room}")))[0] == 404  # no upgrade: plain HTTP
        welcome = await conn.hello(engine, room)
        assert welcome["room"]["id"] == room
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "answer"),
    [
        ("GET", "/healthz", (200, b'{"ok":true}')),
        ("GET", "/nope", (404, b"Not Found")),
        ("GET", "/ws", (404, b"Not Found")),
        ("POST", "/ws/{room}", (404, b"Not Found")),
        ("POST", "/healthz", (405, b"Method Not Allowed")),
    ],
)
async def test_an_upgrade_outside_get_ws_is_plain_http(
    engine: Engine, room: str, method: str, path: str, answer: tuple[int, bytes]
) -> None:
    # docs/protocol.md § Connecting: only `GET /ws/...` is a WebSocket handshake; any other
    # upgrade is answered as the same request without it. The connection then goes on
    # serving requests (a body sent with the upgrade was read with it), and a handshake.
    conn = await KeptAlive.open(engine)
    try:
        assert await conn.request(upgrade_request(method, path.format(room=room))) == answer
        if method == "POST":
            sent = upgrade_request(method, path.format(room=room), b"body")
            assert await conn.request(sent) == answer
        assert await conn.request(get("/healthz")) == (200, b'{"ok":true}')
        assert (await conn.hello(engine, room))["room"]["id"] == room
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ((b"Upgrade: websocket", b"Connection: Upgrade"), 101),
        ((b"Connection: keep-alive, Upgrade", b"Upgrade: websocket"), 101),  # Firefox
        ((b"UPGRADE: WebSocket", b"connection: upgrade"), 101),
        ((b"upgrade:websocket", b"Connection:Upgrade"), 101),
        # Upgrade requires `Connection: upgrade` (RFC 9110 § 7.8): plain HTTP without it.
        ((b"Upgrade: websocket",), 404),
        ((b"Upgrade: h2c", b"Connection: Upgrade"), 404),
    ],
)
async def test_what_counts_as_an_upgrade(
    engine: Engine, room: str, headers: tuple[bytes, ...], status: int
) -> None:
    key = b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16))
    request = get(f"/ws/{room}?x=1", *headers, key, b"Sec-WebSocket-Version: 13")
    async with raw_connection(engine) as (reader, writer):
        writer.write(request)
        async with asyncio.timeout(READ_TIMEOUT_S):
            reply = await reader.readuntil(b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply


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
    """An engine that waits only 0.3 s for a connection's first request head."""
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
