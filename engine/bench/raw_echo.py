"""The second baseline of `livecart bench grab`: a bare `websockets` server that answers
every frame it receives with one pre-encoded reply, and does nothing else.

The reply is a grab ack the engine sent in the same run (the same msgpack bytes), and the
same load process taps it with the same code as the engine, so this measures what the
WebSocket round trip and the load process cost with no engine logic at all.

argv: the reply, hex. stdout: {"event": "listening", "port": P}; it serves until its
stdin closes.
"""

from __future__ import annotations

import sys

from websockets.asyncio.server import ServerConnection, broadcast

from engine.bench.raw_server import bare_server
from engine.core.collector import pace_for_connections
from engine.core.loop import run_event_loop


async def main(reply: bytes) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            # As the engine writes an ack: at once, without waiting on the socket.
            broadcast([ws], reply)

    async with bare_server(handler, max_queue=16) as stdin:
        await stdin.read()  # until the bench closes it


if __name__ == "__main__":
    pace_for_connections()
    run_event_loop(main(bytes.fromhex(sys.argv[1])))
