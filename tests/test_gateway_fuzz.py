"""Random frames thrown at a live connection: the engine answers with documented errors
or closes with a documented code, keeps serving everyone else, and leaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from engine.core.errors import ERROR_CODES
from engine.server.app import Engine
from tests.conftest import eventually, token

SERVER_TYPES = {"welcome", "error", "ack", "pong", "tick", "notice"}
DOCUMENTED_CLOSES = {1000, 1009, 3502}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
    st.text(max_size=50),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["comment", "like", "ping", "hello", "grab", "", "COMMENT"])},
    optional={
        "text": values, "count": values, "id": values, "since": values, "token": values,
        "device": values,
    },
)  # fmt: skip
frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    messages.map(lambda m: orjson.dumps(m).decode()),
    messages.map(msgpack.packb),
    values.map(lambda v: orjson.dumps(v).decode()),
)


async def session(engine: Engine, room: str, codec: str) -> ClientConnection:
    ws = await connect(
        f"{engine.ws_url}/{room}",
        subprotocols=[f"livecart.v1.{codec}"],
        compression=None,  # type: ignore[list-item]
    )
    await ws.send(encode(codec, {"type": "hello", "token": token(room)}))
    return ws


def encode(codec: str, message: dict[str, Any]) -> str | bytes:
    return orjson.dumps(message).decode() if codec == "json" else msgpack.packb(message)


def decode(codec: str, frame: str | bytes) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(frame) if codec == "json" else msgpack.unpackb(frame)
    return message


async def drain(ws: ClientConnection, codec: str) -> list[dict[str, Any]]:
    """Everything the server sends until it goes quiet or closes."""
    received = []
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        while True:
            received.append(decode(codec, await asyncio.wait_for(ws.recv(), 0.15)))
    return received


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(codec=st.sampled_from(["json", "msgpack"]), garbage=st.lists(frames, min_size=1, max_size=6))
async def test_random_frames_get_documented_answers(
    engine: Engine, room: str, codec: str, garbage: list[str | bytes]
) -> None:
    assert engine.node is not None
    ws = await session(engine, room, codec)
    try:
        welcome = decode(codec, await ws.recv())
        assert welcome["type"] == "welcome"
        for frame in garbage:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)
        for message in await drain(ws, codec):
            assert message["type"] in SERVER_TYPES
            if message["type"] == "error":
                assert message["code"] in ERROR_CODES
        if ws.close_code is None:
            await ws.send(encode(codec, {"type": "ping", "id": "alive"}))
            replies = await drain(ws, codec)
            assert any(r.get("ref") == "alive" and r["type"] == "pong" for r in replies) or (
                ws.close_code in DOCUMENTED_CLOSES
            )
        else:
            assert ws.close_code in DOCUMENTED_CLOSES
    finally:
        await ws.close()
    # Nothing leaks: the hub forgets the connection once it is gone.
    hub = engine.node.hubs.get(room)
    await eventually(lambda: hub is None or not hub.viewers, timeout_s=5)


async def test_engine_serves_others_while_one_connection_misbehaves(
    engine: Engine, room: str
) -> None:
    bad = await session(engine, room, "json")
    good = await session(engine, room, "json")
    try:
        await bad.recv()
        await good.recv()
        for n in range(40):
            with contextlib.suppress(ConnectionClosed):
                await bad.send(b"\xff\x00" * n)
        await drain(bad, "json")  # read its error frames, so the close handshake can finish
        await good.send(orjson.dumps({"type": "ping", "id": "ok"}).decode())
        replies = await drain(good, "json")
        assert [r["type"] for r in replies if r.get("ref") == "ok"] == ["pong"]
        await bad.wait_closed()
        assert bad.close_code == 3502
    finally:
        await bad.close()
        await good.close()
