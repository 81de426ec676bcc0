"""The baseline of `livecart bench fanout`: a bare `websockets` server that broadcasts one
pre-encoded frame to every connection as fast as it can (no engine logic at all).

stdin/stdout JSON lines: {"cmd": "blast", "frame_hex": HEX, "seconds": S} -> {"frames": n}.
The frame is a real tick captured from the engine, so both phases' viewers do the same
work per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

from clients.core import MSGPACK  # what the load process's viewers offer
from engine.core.collector import pace_for_connections
from engine.core.loop import run_event_loop

# Pause when this much is queued per connection, so a baseline faster than its readers
# measures delivery, not buffering.
BACKLOG_PER_CONNECTION = 64 * 1024


@contextlib.asynccontextmanager
async def bare_server(
    handler: Callable[[ServerConnection], Awaitable[None]], **options: Any
) -> AsyncIterator[asyncio.StreamReader]:
    """A bare `websockets` server on a free port, set up as the engine's viewer sockets are
    (no compression, the msgpack subprotocol, no pings): it says its port on stdout and
    gives the process's stdin, which drives it."""
    async with serve(
        handler, "127.0.0.1", 0, compression=None, subprotocols=[MSGPACK.subprotocol],  # type: ignore[list-item]
        ping_interval=None, backlog=4096, **options,
    ) as server:  # fmt: skip
        port = next(iter(server.sockets)).getsockname()[1]
        print(orjson.dumps({"event": "listening", "port": port}).decode(), flush=True)
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        yield stdin


async def main() -> None:
    connections: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    async with bare_server(handler) as commands:
        while line := await commands.readline():
            cmd = orjson.loads(line)
            if cmd["cmd"] != "blast":
                break
            frames = await blast(connections, bytes.fromhex(cmd["frame_hex"]), cmd["seconds"])
            print(orjson.dumps({"event": "blasted", "frames": frames}).decode(), flush=True)


async def blast(connections: set[ServerConnection], frame: bytes, seconds: float) -> int:
    frames = 0
    stop_at = time.perf_counter() + seconds
    limit = BACKLOG_PER_CONNECTION * max(1, len(connections))
    while time.perf_counter() < stop_at:
        broadcast(connections, frame)
        frames += 1
        await asyncio.sleep(0)
        if frames % 8 == 0:
            # Polls socket buffers: there is no event to wait on.
            while sum(c.transport.get_write_buffer_size() for c in connections) > limit:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
    return frames


if __name__ == "__main__":
    pace_for_connections()
    run_event_loop(main())
