"""A lean HTTP/1.1 client for the benchmarks' load side: persistent connections, JSON
bodies, Content-Length responses (what the engine sends), nothing else. httpx costs a
few times more CPU per request, and the load process must not be what a benchmark
measures."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


class LeanHTTP:
    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host = host
        self.port = port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.slots = asyncio.Semaphore(connections)
        self.open: list[asyncio.StreamWriter] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.idle.empty():
            return self.idle.get_nowait()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.open.append(writer)
        return reader, writer

    async def post(self, path: str, body: Any, token: str) -> tuple[int, Any]:
        """POST `body` as JSON with a bearer token; (status, decoded JSON body)."""
        payload = b"" if body is None else orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n"
        ).encode()
        async with self.slots:
            reader, writer = await self._connection()
            writer.write(head + payload)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            data = await reader.readexactly(length) if length else b""
            self.idle.put_nowait((reader, writer))
        return int(status_line.split()[1]), orjson.loads(data) if data else None

    async def close(self) -> None:
        for writer in self.open:
            writer.close()
        self.open.clear()
