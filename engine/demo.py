"""`livecart demo`: the engine plus a seeded, live demo room with a few chatty bots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from clients import LivecartClientError, ViewerClient
from engine import auth
from engine.app import Engine
from engine.errors import ConflictError
from engine.protocol import Role
from engine.rooms import RoomAction, RoomState
from engine.settings import Settings

log = logging.getLogger("livecart.demo")

ROOM = "demo"
LINES = [
    "hi from Lisbon!", "is the blue one in stock?", "how long is the battery life?",
    "love this host", "does it ship to Canada?", "what size should I get? I'm 170cm",
    "price please!", "just joined, what did I miss?", "❤️❤️❤️", "can you show the back?",
    "how much is shipping", "I bought one last week, it's great",
]  # fmt: skip


async def seed(engine: Engine) -> None:
    node = engine.node
    assert node is not None
    try:
        room = await node.rooms.create(
            ROOM,
            "host-demo",
            {
                "title": "livecart demo show",
                "cover_url": "https://example.com/livecart/demo-cover.jpg",
            },
        )
    except ConflictError:
        room = await node.rooms.get(ROOM)
    if room.state is RoomState.ENDED:
        log.info("the demo room had ended; its history stays in %s", engine.settings.data_dir)
    elif room.state is RoomState.SCHEDULED:
        await node.rooms.transition(ROOM, RoomAction.GO_LIVE)


async def bot(engine: Engine, number: int, stop: asyncio.Event) -> None:
    node = engine.node
    assert node is not None
    token = auth.mint(
        node.secret, room=ROOM, role=Role.VIEWER, user=f"bot-{number}", name=f"Bot {number}"
    )
    client = ViewerClient(engine.ws_url, ROOM, token)
    rng = random.Random(number)
    try:
        await client.connect()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(2.0, 8.0))
            if stop.is_set():
                break
            with contextlib.suppress(LivecartClientError):
                if rng.random() < 0.6:
                    await client.comment(rng.choice(LINES))
                await client.like(rng.randint(1, 12))
    except LivecartClientError as exc:
        log.warning("demo bot %d stopped: %s", number, exc)
    finally:
        await client.close()


async def run_demo(settings: Settings, *, bots: int) -> int:
    async with Engine(settings) as engine:
        await seed(engine)
        node = engine.node
        assert node is not None
        host_token = auth.mint(
            node.secret, room=ROOM, role=Role.HOST, user="host-demo", name="Demo Host"
        )
        viewer_token = auth.mint(
            node.secret, room=ROOM, role=Role.VIEWER, user="viewer-demo", name="You"
        )
        print(
            "\n".join(
                [
                    "",
                    "livecart demo is running",
                    f"  room API      {engine.base_url}/api/rooms/{ROOM}",
                    f"  viewer socket {engine.ws_url}/{ROOM}",
                    f"  metrics       {engine.base_url}/metrics",
                    f"  host token    {host_token}",
                    f"  viewer token  {viewer_token}",
                    "",
                    "try:",
                    f"  curl -s '{engine.base_url}/api/rooms/{ROOM}/comments?limit=5'",
                    f"  curl -s -X POST -H 'Authorization: Bearer {host_token}' "
                    f'-d \'{{"user": "bot-1", "minutes": 1}}\' '
                    f"{engine.base_url}/api/rooms/{ROOM}/mutes",
                    "press Ctrl-C to stop",
                    "",
                ]
            ),
            flush=True,
        )
        stop = asyncio.Event()
        tasks = [asyncio.create_task(bot(engine, n, stop)) for n in range(1, bots + 1)]
        try:
            await engine.serve_until_signal()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    return 0
