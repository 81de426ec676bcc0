"""One encoded message written to many sockets (engine/realtime/frames_out.py): every open
viewer receives it as `websockets.broadcast()` would send it, with or without compression
negotiated, and a closed socket is skipped without stopping the others."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from engine.realtime.frames_out import unmasked_frame, write_message

TICK = b"\x81\xa4type\xa4tick"  # msgpack {"type": "tick"}


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_every_open_socket_gets_the_message_and_a_closed_one_is_skipped(
    compression: Literal["deflate"] | None,
) -> None:
    accepted: list[ServerConnection] = []
    everyone = asyncio.Event()

    async def handler(conn: ServerConnection) -> None:
        accepted.append(conn)
        if len(accepted) == 3:
            everyone.set()
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=compression) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        clients = [await connect(url, compression=compression) for _ in range(3)]
        await asyncio.wait_for(everyone.wait(), 5)
        await clients[1].close()
        await asyncio.wait_for(accepted[1].wait_closed(), 5)
        assert write_message(accepted, TICK, text=False) == 2
        assert write_message(accepted, b'{"type":"ack"}', text=True) == 2
        for client in (clients[0], clients[2]):
            assert await asyncio.wait_for(client.recv(), 5) == TICK
            assert await asyncio.wait_for(client.recv(), 5) == '{"type":"ack"}'
            await client.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("text", [True, False])
def test_a_frame_has_the_bytes_websockets_would_send(size: int, text: bool) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    opcode = Opcode.TEXT if text else Opcode.BINARY
    assert unmasked_frame(data, text=text) == Frame(opcode, data).serialize(mask=False)
