"""A lean WebSocket client for load generation: one asyncio Protocol per connection,
an incremental frame parser and masked sends; no per-connection task, no queue.

It exists because one Python process has to read tens of thousands of frames per second
from thousands of sockets: the full `websockets` client costs a task, a queue and an
assembler per connection. This one hands each complete message to a callback.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from typing import cast

from clients.core import close_code, retry_after_s

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA

OnMessage = Callable[["LeanConnection", bytes], None]


class HandshakeRefused(ConnectionError):
    """The server answered the upgrade with another status than 101; `str()` is the status
    line. A shedding engine's 503 says when to come back (`retry_after_s`)."""

    def __init__(self, head: bytes) -> None:
        lines = head.decode(errors="replace").split("\r\n")
        super().__init__(lines[0])
        self.retry_after_s: float | None = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "retry-after":
                self.retry_after_s = retry_after_s(value)


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR the payload with the 4-byte key, a machine word at a time."""
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return masked.to_bytes(len(payload), "little")


def client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + key + mask(payload, key)


class LeanConnection(asyncio.Protocol):
    __slots__ = (
        "buffer", "close_code", "closed", "frames", "index", "on_message", "opened",
        "subprotocol", "transport",
    )  # fmt: skip

    def __init__(self, on_message: OnMessage, index: int) -> None:
        self.on_message = on_message
        self.index = index
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.frames = 0
        self.subprotocol = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it

    def handshake(self, host: str, port: int, path: str, subprotocol: str) -> None:
        assert self.transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
        )
        self.subprotocol = subprotocol
        self.transport.write(request.encode())

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        self.send_frame(client_frame(opcode, payload))

    def send_frame(self, frame: bytes) -> None:
        """Write a frame already built by `client_frame`."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            if b" 101 " not in status:
                self.opened.set_exception(HandshakeRefused(buffer[:end]))
                assert self.transport is not None
                self.transport.close()
                return
            self.opened.set_result(None)
            buffer = buffer[end + 4 :]
        self.buffer = self._parse(buffer)

    def _parse(self, buffer: bytes) -> bytes:
        position = 0
        size = len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            payload = buffer[start:end]
            position = end
            if opcode in (OP_TEXT, OP_BINARY):
                self.frames += 1
                self.on_message(self, payload)
            elif opcode == OP_PING:
                self.send(payload, OP_PONG)
            elif opcode == OP_CLOSE:
                code = close_code(payload)
                self.close_code = 1005 if code is None else code  # 1005: none in the frame
                self.send(payload[:2], OP_CLOSE)
                assert self.transport is not None
                self.transport.close()
        return buffer[position:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        self.send(struct.pack("!H", 1000), OP_CLOSE)
        if self.transport is not None:
            self.transport.close()


async def open_connection(
    host: str, port: int, path: str, subprotocol: str, *, on_message: OnMessage, index: int
) -> LeanConnection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: LeanConnection(on_message, index), host, port)
    conn.handshake(host, port, path, subprotocol)
    await asyncio.wait_for(conn.opened, 30)
    return conn
