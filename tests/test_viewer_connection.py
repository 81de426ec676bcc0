"""A viewer's connection (engine/realtime/viewer_connection.py): a whole small frame read
at a frame boundary is decoded by the engine, any other read by websockets, and either way
a connection's frames are served in the order they came."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from engine.realtime.viewer_connection import _between_frames
from engine.server.app import Engine
from tests.test_gateway import joined_raw_sessions

HANDSHAKE = (
    b"GET /ws/r HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(message: dict[str, Any]) -> bytes:
    """`message` as a client sends it: one masked text frame."""
    return Frame(Opcode.TEXT, orjson.dumps(message)).serialize(mask=True)


def test_the_parser_rests_between_frames_only_between_frames() -> None:
    protocol = ServerProtocol()
    protocol.receive_data(HANDSHAKE)
    [request] = protocol.events_received()
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    assert protocol.state is OPEN
    assert _between_frames(protocol.parser)
    frame = client_frame({"type": "ping", "id": "p"})
    for cut in (1, 2, 6, len(frame) - 1):  # inside the header, after it, inside the payload
        protocol.receive_data(frame[:cut])
        assert not _between_frames(protocol.parser), cut
        protocol.receive_data(frame[cut:])
        assert _between_frames(protocol.parser), cut
    assert len(protocol.events_received()) == 4


async def test_frames_split_and_joined_across_reads_are_served_in_order(
    engine: Engine, room: str
) -> None:
    """Reads that cut a frame anywhere, or carry the end of one frame and the next whole,
    never make a frame be served twice, early or out of order."""
    [ws] = await joined_raw_sessions(engine, room, "split", 1)
    frames = [client_frame({"type": "ping", "id": f"p{n}"}) for n in range(6)]
    writes = [frames[0][:3], frames[0][3:] + frames[1], frames[2][:7], frames[2][7:],
              frames[3], frames[4] + frames[5][:1], frames[5][1:]]  # fmt: skip
    try:
        for chunk in writes:
            ws.transport.write(chunk)  # raw bytes: each write one read on loopback
            await asyncio.sleep(0.05)
        refs = []
        async with asyncio.timeout(10):
            while len(refs) < len(frames):
                answer = orjson.loads(await ws.recv())
                if answer["type"] == "pong":
                    refs.append(answer["ref"])
        assert refs == [f"p{n}" for n in range(6)]
        # A payload masked with a random key: still served, and not mistaken for a frame.
        ws.transport.write(client_frame({"type": "like", "count": 1, "id": os.urandom(4).hex()}))
        async with asyncio.timeout(10):
            while (answer := orjson.loads(await ws.recv()))["type"] != "ack":
                pass
    finally:
        await ws.close()
