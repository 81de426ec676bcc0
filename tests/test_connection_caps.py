"""Connection caps per client address and per user, and the bound on anonymous unique
viewers per address (issue 20, finding 6): a real engine, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from engine.realtime.protocol import CloseCode
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import EngineFactory, RoomFactory, eventually, token


async def joined(engine: Engine, room: str, hello: dict[str, Any],
                 forwarded_for: str | None = None) -> ClientConnection:  # fmt: skip
    """A socket past its `hello` (the welcome read), from `forwarded_for` through the
    default trusted proxy (loopback) when given."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    ws = await connect(f"{engine.ws_url}/{room}", additional_headers=headers, compression=None)
    await ws.send(orjson.dumps({"type": "hello", **hello}).decode())
    first = orjson.loads(await ws.recv())
    assert first["type"] == "welcome", first
    return ws


async def handshake_status(engine: Engine, room: str, forwarded_for: str) -> tuple[int, str]:
    """(status, Retry-After) of a handshake from `forwarded_for`; 101 when it opens."""
    try:
        ws = await connect(f"{engine.ws_url}/{room}", compression=None,
                           additional_headers={"X-Forwarded-For": forwarded_for})  # fmt: skip
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.headers.get("Retry-After", "")
    await ws.close()
    return 101, ""


async def test_an_address_holds_at_most_its_cap_of_connections(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(connections_per_ip=3)
    room = await room_factory(engine)
    held = [await joined(engine, room, {}, forwarded_for="203.0.113.7") for _ in range(3)]
    assert await handshake_status(engine, room, "203.0.113.7") == (503, "10")
    # Another address is not affected by the first one's cap.
    assert (await handshake_status(engine, room, "203.0.113.8"))[0] == 101
    await held.pop().close()  # a slot comes free once a connection ends
    await eventually(lambda: engine.listener is not None
                     and engine.listener.open_by_ip["203.0.113.7"] == 2)  # fmt: skip
    held.append(await joined(engine, room, {}, forwarded_for="203.0.113.7"))
    for ws in held:
        await ws.close()
    await eventually(lambda: engine.listener is not None and not engine.listener.open_by_ip)


async def test_a_user_holds_at_most_its_cap_of_connections_in_a_room(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(connections_per_user=2)
    room = await room_factory(engine)
    kim = {"token": token(room, user="kim")}
    held = [await joined(engine, room, kim) for _ in range(2)]
    third = await connect(f"{engine.ws_url}/{room}", compression=None)
    await third.send(orjson.dumps({"type": "hello", **kim}).decode())
    refusal = orjson.loads(await third.recv())
    assert refusal["code"] == "too_many_connections"
    assert refusal["details"] == {"limit": 2}
    with contextlib.suppress(ConnectionClosed):
        await asyncio.wait_for(third.recv(), 5)
    assert third.close_code == CloseCode.TOO_MANY_CONNECTIONS == 3504
    # Others are not affected, nor is an anonymous device id beyond its own cap.
    others = [
        await joined(engine, room, {"token": token(room, user="lee")}),
        *[await joined(engine, room, {"device": "dev-12345678"}) for _ in range(2)],
    ]
    await held.pop().close()
    gateway = engine.gateway
    assert gateway is not None
    await eventually(lambda: gateway.open_by_user[(room, "kim")] == 1)
    held.append(await joined(engine, room, kim))
    for ws in [*held, *others]:
        await ws.close()
    await eventually(lambda: not gateway.open_by_user)


async def test_invented_device_ids_cannot_inflate_unique_viewers(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    """Each anonymous hello with a new device id used to count as a new unique viewer (and
    enter the host's audience for good): one address now counts at most its bound."""
    engine = await engine_factory(anonymous_viewers_per_ip=5)
    room = await room_factory(engine)
    assert engine.node is not None
    redis = engine.node.redis
    devices = [f"dev-{secrets.token_hex(6)}" for _ in range(12)]
    for device in devices:
        ws = await joined(engine, room, {"device": device}, forwarded_for="198.51.100.4")
        await ws.close()
    for _ in range(3):  # without a device id, each connection was a new identity
        ws = await joined(engine, room, {}, forwarded_for="198.51.100.4")
        await ws.close()
    assert await redis.hlen(keys.uniques(room)) == 5
    # Another address, and signed-in viewers from the first, are counted as before.
    users = [f"u-{secrets.token_hex(4)}" for _ in range(2)]
    for hello, address in [({"device": devices[-1]}, "198.51.100.5"),
                           ({"token": token(room, user=users[0])}, "198.51.100.4"),
                           ({"token": token(room, user=users[1])}, "198.51.100.4")]:  # fmt: skip
        ws = await joined(engine, room, hello, forwarded_for=address)
        await ws.close()
    assert await redis.hlen(keys.uniques(room)) == 8
    # The host's audience (across their shows) got exactly the counted identities.
    host = (await engine.node.rooms.get(room)).host
    identities = [f"anon-{device}" for device in devices] + users
    counted = await redis.smismember(keys.audience(host), identities)
    assert counted == [1] * 5 + [0] * 6 + [1] * 3
