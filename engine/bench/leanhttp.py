"""A lean HTTP/1.1 client for load processes (benchmarks and the asyncio load generator):
POSTs with JSON bodies over persistent connections, nothing else. httpx costs a few times
more CPU per request, and the load side must not be what a benchmark measures.

It reuses a kept-alive connection only while it is younger than `IDLE_S` (uvicorn closes
idle ones after 5 s) and retries once on a fresh connection when a reused one turns out
closed; answers may have a Content-Length, be chunked, or run to the end of the
connection."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

REQUEST_TIMEOUT_S = 10.0
IDLE_S = 3.0  # the engine (uvicorn) closes idle keep-alive connections after 5 s


class _Stale(Exception):
    """A kept-alive connection the server had closed (answered nothing)."""


class HttpError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LeanHTTP:
    """POSTs with JSON bodies over a pool of at most `connections` keep-alive connections
    to `base_url`."""

    def __init__(self, base_url: str, connections: int = 64,
                 timeout_s: float = REQUEST_TIMEOUT_S,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        """`ssl_context`: how an https:// base URL's certificate is checked (None: the
        system's trusted CAs)."""
        parts = urlsplit(base_url)
        self.ssl = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.ssl else 80)
        self.timeout_s = timeout_s
        self.ssl_context: ssl.SSLContext | bool | None = (ssl_context or True) if self.ssl else None
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.writers: set[asyncio.StreamWriter] = set()

    async def _take(self) -> tuple[Conn, bool]:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < IDLE_S and not writer.is_closing():
                return (reader, writer), True
            self._drop(writer)
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl_context)
        self.writers.add(writer)
        return (reader, writer), False

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self.writers.discard(writer)
        writer.close()

    async def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body) of a POST; retries once on a fresh connection when a
        kept-alive one turns out to be closed."""
        payload = b"" if body is None else orjson.dumps(body)
        auth = f"authorization: Bearer {token}\r\n" if token else ""
        request = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{auth}"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        async with self.slots:
            for _ in range(2):
                (reader, writer), reused = await self._take()
                try:
                    writer.write(request)
                    async with asyncio.timeout(self.timeout_s):
                        status, data, keep = await self._response(reader)
                except TimeoutError:
                    self._drop(writer)
                    raise
                except (_Stale, ConnectionError, asyncio.IncompleteReadError):
                    self._drop(writer)
                    if reused:
                        continue
                    raise
                except BaseException:
                    self._drop(writer)
                    raise
                if keep:
                    self.idle.append((reader, writer, time.monotonic()))
                else:
                    self._drop(writer)
                return status, data
        raise HttpError("connection_closed")

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, Any, bool]:
        status_line = await reader.readline()
        if not status_line:
            raise _Stale
        status = int(status_line.split()[1])
        length: int | None = None
        chunked = False
        keep = True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = b"close" not in value.lower()
        if chunked:
            data = b""
            while size := int((await reader.readline()).split(b";")[0], 16):
                data += await reader.readexactly(size + 2)
                data = data[:-2]
            await reader.readline()
        elif length is not None:
            data = await reader.readexactly(length) if length else b""
        elif status in (204, 304):
            data = b""
        else:  # no length: the body runs to the end of the connection
            data, keep = await reader.read(), False
        try:
            return status, orjson.loads(data) if data else None, keep
        except orjson.JSONDecodeError:
            return status, data.decode(errors="replace"), keep

    async def close(self) -> None:
        for writer in list(self.writers):
            self._drop(writer)
        self.idle.clear()
