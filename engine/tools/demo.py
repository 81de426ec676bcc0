"""`livecart demo`: the engine plus a seeded, live demo room with a few chatty bots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from clients import LivecartClientError, ViewerClient
from engine.commerce.catalog import ProductTerms
from engine.commerce.coupons import TemplateTerms
from engine.commerce.pricing import CouponKind
from engine.core.errors import ConflictError
from engine.core.identity import Role
from engine.core.settings import Settings
from engine.rooms import auth
from engine.rooms.rooms import RoomAction, RoomState, RoomTerms
from engine.server.app import Engine

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
            "host-demo",
            RoomTerms(
                id=ROOM,
                title="livecart demo show",
                cover_url="https://example.com/livecart/demo-cover.jpg",
            ),
        )
    except ConflictError:
        room = await node.rooms.get(ROOM)
    if room.state is RoomState.ENDED:
        log.info("the demo room had ended; its history stays in %s", engine.settings.data_dir)
    elif room.state is RoomState.SCHEDULED:
        await node.rooms.transition(ROOM, RoomAction.GO_LIVE)
    if not await node.catalog.lineup(ROOM):
        await seed_shop(engine)


PRODUCTS = [
    ProductTerms(title="Trail runner sneaker", currency="USD",
                 description="Light, grippy, 280 g.",
                 images=["https://example.com/livecart/sneaker.jpg"],
                 skus=[{"sku": f"TRAIL-{size}", "list_price": 8900, "attrs": {"size": str(size)}}
                       for size in (40, 41, 42, 43)]),
    ProductTerms(title="Merino hoodie", currency="USD", description="Warm, soft, washable.",
                 images=["https://example.com/livecart/hoodie.jpg"],
                 skus=[{"sku": f"HOOD-{c}", "list_price": 6500, "attrs": {"colour": c.lower()}}
                       for c in ("BLACK", "SAND")]),
]  # fmt: skip
COUPONS = [
    TemplateTerms(kind=CouponKind.AMOUNT_OFF, title="10 off 80", amount=1000, min_spend=8000,
                  currency="USD", total=500),
    TemplateTerms(kind=CouponKind.FREE_SHIPPING, title="Free shipping", currency="USD",
                  total=200, stackable=True),
]  # fmt: skip


async def seed_shop(engine: Engine) -> None:
    """Products in the run-of-show (the first pinned) and coupon templates to drop."""
    node = engine.node
    assert node is not None
    products = [await node.catalog.create(ROOM, terms) for terms in PRODUCTS]
    await node.catalog.pin(ROOM, products[0].id)
    for terms in COUPONS:
        await node.coupons.create_template(ROOM, terms)


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
                    f"  host console  {engine.base_url}/console/",
                    f"  viewer page   {engine.base_url}/live/{ROOM}#token={viewer_token}",
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
                    f"  curl -s -X POST -H 'Authorization: Bearer {host_token}' "
                    f'-d \'{{"sku": "TRAIL-42", "allotment": 50, "countdown_s": 10}}\' '
                    f"{engine.base_url}/api/rooms/{ROOM}/sales",
                    f"  curl -s -X POST -H 'Authorization: Bearer {host_token}' "
                    f"-d '{{\"quantity\": 100}}' "
                    f"{engine.base_url}/api/rooms/{ROOM}/coupons/templates/t1/drops",
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
