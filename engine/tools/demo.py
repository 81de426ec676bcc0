"""`livecart demo`: the engine plus a seeded, live demo room with a few chatty bots, its
pictures and (with ffmpeg) a live test stream served by the engine itself at /media/."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

import msgspec

from clients import LivecartClientError, ViewerClient
from engine.commerce.catalog import ProductChanges, ProductTerms
from engine.commerce.coupons import TemplateTerms
from engine.commerce.pricing import CouponKind
from engine.core.errors import ConflictError
from engine.core.identity import Role
from engine.core.settings import Settings
from engine.rooms import auth
from engine.rooms.rooms import RoomAction, RoomChanges, RoomState, RoomTerms
from engine.server.app import Engine
from engine.tools.demo_media import write_cover, write_product_picture
from engine.tools.demo_stream import DemoStream

log = logging.getLogger("livecart.demo")

ROOM = "demo"
HOST_NAME = "Mia"  # the demo host, as viewers see them
TITLE = "livecart demo show"
PLAYLIST_WAIT_S = 10.0  # for ffmpeg's first segment before the links are printed
LINES = [
    "hi from Lisbon!", "is the blue one in stock?", "how long is the battery life?",
    "love this host", "does it ship to Canada?", "what size should I get? I'm 170cm",
    "price please!", "just joined, what did I miss?", "❤️❤️❤️", "can you show the back?",
    "how much is shipping", "I bought one last week, it's great",
]  # fmt: skip


async def seed(engine: Engine, stream_url: str | None) -> None:
    """The demo room, live, with its shop; its cover and stream as this run has them (a
    room kept from an earlier run gets them too)."""
    node = engine.node
    media_dir = engine.settings.media_dir
    assert node is not None
    assert media_dir is not None
    cover_url = write_cover(media_dir, TITLE)
    try:
        room = await node.rooms.create(
            "host-demo",
            RoomTerms(id=ROOM, title=TITLE, cover_url=cover_url, stream_url=stream_url),
            host_name=HOST_NAME,
        )
    except ConflictError:
        room = await node.rooms.get(ROOM)
    if room.state is RoomState.ENDED:
        log.info("the demo room had ended; its history stays in %s", engine.settings.data_dir)
        return
    if (room.cover_url, room.stream_url) != (cover_url, stream_url):
        room = await node.rooms.update(
            room, RoomChanges(cover_url=cover_url, stream_url=stream_url)
        )
    if room.state is RoomState.SCHEDULED:
        await node.rooms.transition(ROOM, RoomAction.GO_LIVE)
    lineup = await node.catalog.lineup(ROOM)
    if not lineup:
        await seed_shop(engine, media_dir)
    for product in lineup:  # an earlier run's may name pictures elsewhere
        images = [write_product_picture(media_dir, product.title)]
        if list(product.images) != images:
            await node.catalog.update(ROOM, product, ProductChanges(images=images))


PRODUCTS = [
    ProductTerms(title="Trail runner sneaker", currency="USD",
                 description="Light, grippy, 280 g.",
                 skus=[{"sku": f"TRAIL-{size}", "list_price": 8900, "attrs": {"size": str(size)}}
                       for size in (40, 41, 42, 43)]),
    ProductTerms(title="Merino hoodie", currency="USD", description="Warm, soft, washable.",
                 skus=[{"sku": f"HOOD-{c}", "list_price": 6500, "attrs": {"colour": c.lower()}}
                       for c in ("BLACK", "SAND")]),
]  # fmt: skip
COUPONS = [
    TemplateTerms(kind=CouponKind.AMOUNT_OFF, title="10 off 80", amount=1000, min_spend=8000,
                  currency="USD", total=500),
    TemplateTerms(kind=CouponKind.FREE_SHIPPING, title="Free shipping", currency="USD",
                  total=200, stackable=True),
]  # fmt: skip


async def seed_shop(engine: Engine, media_dir: Path) -> None:
    """Products in the run-of-show (the first pinned), each with a picture drawn for it,
    and coupon templates to drop."""
    node = engine.node
    assert node is not None
    products = [
        await node.catalog.create(
            ROOM,
            msgspec.structs.replace(terms, images=[write_product_picture(media_dir, terms.title)]),
        )
        for terms in PRODUCTS
    ]
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
    # The pictures and the stream go to LIVECART_MEDIA_DIR, else into the data dir.
    media_dir = settings.media_dir or settings.data_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.replace(media_dir=media_dir)
    # The stream starts once the engine holds the data dir: a second demo refused for it
    # must not touch the first one's stream.
    async with (
        Engine(settings) as engine,
        DemoStream(media_dir, settings.data_dir / "ffmpeg.log") as stream,
    ):
        await seed(engine, stream.url)
        if stream.url is not None:
            await stream.wait_for_playlist(PLAYLIST_WAIT_S)
        node = engine.node
        assert node is not None
        host_token = auth.mint(
            node.secret, room=ROOM, role=Role.HOST, user="host-demo", name=HOST_NAME
        )
        viewer_token = auth.mint(
            node.secret, room=ROOM, role=Role.VIEWER, user="viewer-demo", name="Jamie"
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
