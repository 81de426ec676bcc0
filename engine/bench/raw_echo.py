"""The second baseline of `livecart bench grab`: a bare `websockets` server that answers
every frame it receives with one pre-encoded reply, and does nothing else.

The reply is a grab ack the engine sent in the same run (the same msgpack bytes), and the
same load process taps it with the same code as the engine, so this measures what the
WebSocket round trip and the load process cost with no engine logic at all.

argv: the reply, hex. stdout: {"event": "listening", "port": P}; it serves until its
stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

from clients.core import MSGPACK  # what the load process's viewers offer
from engine.core.collector import pace_for_connections
from engine.core.loop import run_event_loop


async def main(reply: bytes) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            # As the engine writes an ack: at once, without waiting on the socket.
            broadcast([ws], reply)

    async with serve(
        handler, "127.0.0.1", 0, compression=None, subprotocols=[MSGPACK.subprotocol],  # type: ignore[list-item]
        ping_interval=None, backlog=4096, max_queue=16,
    ) as server:  # fmt: skip
        port = next(iter(server.sockets)).getsockname()[1]
        print(orjson.dumps({"event": "listening", "port": port}).decode(), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()


if __name__ == "__main__":
    pace_for_connections()
    run_event_loop(main(bytes.fromhex(sys.argv[1])))
