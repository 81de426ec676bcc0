"""docs/protocol.md's examples of server messages are what the engine sends.

Every JSON example of a server frame (welcome, ticks, acks, errors, pong, notices), of a
room-log entry and of a drop card is compared, by its keys at every level and the types
of its values, with real frames: a real engine and real WebSocket viewers play the
situations the examples show, every frame they receive goes into one pool, and each
example must find a frame of its kind (same `type`, `kind`, `code` or `status`) with its
shape. Values are not compared (ids and clocks differ), shapes are."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clients import HostClient, ShopperClient
from engine.core.feature import load_features
from engine.core.settings import DEFAULT_FEATURES
from engine.server.app import Engine
from tests.conftest import ADDRESS, EngineFactory, token
from tests.test_docs import Block, blocks, shape, twin_of, twins

SERVER_TYPES = {"welcome", "tick", "ack", "error", "pong", "notice"}
Message = dict[str, Any]


# ---- the examples -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    block: Block
    obj: Message

    @property
    def where(self) -> str:
        return self.block.where


def examples() -> list[Example]:
    """protocol.md's JSON examples of what the server sends: frames, room-log entries (the
    JSON lines of § Room log) and drop cards."""
    found = []
    for block in blocks("protocol.md"):
        if block.lang != "json":
            continue
        for obj in block.objects():
            if obj.get("type") in SERVER_TYPES or "kind" in obj or "coupon_kind" in obj:
                found.append(Example(block, obj))
    for json_block, hex_block in twins("protocol.md"):  # the resumed welcome, in msgpack only
        if "recovered" in hex_block.caption:
            [welcome] = json_block.objects()
            found.append(Example(hex_block, twin_of(json_block, hex_block, welcome)))
    return found


def kind_of(message: Message) -> tuple[Any, ...]:
    """What a message is, beyond its shape: an example is matched against the real frames of
    its kind. The first letter of `ref` tells a grab's answer (`g…`) from a claim's (`c…`),
    a release's (`r…`) or a waitlist's (`w…`): the scenarios below name requests so."""
    kind = message.get("type")
    ref = str(message.get("ref", ""))[:1]
    if kind is None:  # an entry, or a drop card
        return ("entry", message["kind"]) if "kind" in message else ("drop card",)
    if kind == "tick":
        parts = tuple(sorted(set(message) & {"entries", "sampled_out", "stats", "stock", "drops"}))
        return kind, parts, tuple(sorted({e["kind"] for e in message.get("entries", [])}))
    if kind == "ack":  # what it answers: a comment, a grab or claim, a release, a waitlist
        answer = tuple(k for k in ("entry", "result", "released", "position") if k in message)
        status = message["result"]["status"] if "result" in message else None
        return kind, answer, status, "replayed" in message, ref
    if kind == "error":
        return kind, message["code"], ref
    if kind == "notice":
        return kind, message["kind"], message.get("status"), message.get("reminder")
    return (kind, "recovered" in message) if kind == "welcome" else (kind,)


def differences(doc: Any, real: Any, path: str = "") -> list[str]:
    """How a real value's shape differs from a documented one."""
    here = path or "the frame"
    if isinstance(doc, dict) and isinstance(real, dict) and "<id>" in shape(doc):
        return differences(list(doc.values()), list(real.values()), f"{path}[<id>]")
    if isinstance(doc, dict) and isinstance(real, dict):
        found = [f"{here} lacks documented key {k!r}" for k in doc if k not in real]
        found += [f"{here} has undocumented key {k!r}" for k in real if k not in doc]
        for key in doc.keys() & real.keys():
            found += differences(doc[key], real[key], f"{path}.{key}" if path else key)
        return found
    if isinstance(doc, list) and isinstance(real, list):
        if doc and real:
            return differences(doc[0], real[0], f"{path}[0]")
        return [] if shape(doc) == shape(real) else [f"{here}: {len(doc)} vs {len(real)} items"]
    if shape(doc) != shape(real):
        return [f"{here} is {shape(real)}, documented as {shape(doc)}"]
    return []


# Each feature's field in welcomes and ticks is documented on its own page (docs/<name>.md,
# checked by its tests); an example of protocol.md that shows a feature's field is checked
# against it, one that does not is checked against the rest of the message.
FEATURE_FIELDS = frozenset(f.name for f in load_features(DEFAULT_FEATURES))


def without_feature_fields(message: Message, shown: Message) -> Message:
    """`message` without the features' fields that the example `shown` leaves out."""
    if message.get("type") not in {"welcome", "tick"}:
        return message
    return {k: v for k, v in message.items() if k not in FEATURE_FIELDS or k in shown}


def unmatched(pool: list[Message], wanted: list[Example]) -> list[str]:
    """Why each example that no real message matches is unmatched."""
    problems = []
    for example in wanted:
        same_kind = [without_feature_fields(m, example.obj) for m in pool
                     if kind_of(m) == kind_of(example.obj)]  # fmt: skip
        if any(shape(m) == shape(example.obj) for m in same_kind):
            continue
        if not same_kind:
            problems.append(f"{example.where}: the engine sent nothing like it")
            continue
        closest = min((differences(example.obj, m) for m in same_kind), key=len)
        problems.append(f"{example.where}: {'; '.join(closest)}")
    return problems


# ---- viewers on plain sockets -------------------------------------------------------------


@dataclass
class Raw:
    """A viewer on a plain WebSocket: every frame the engine sends it, decoded, goes into
    the shared pool and its own list."""

    pool: list[Message]
    ws: ClientConnection | None = None
    frames: list[Message] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def open(self, url: str, hello: Message) -> Message:
        """Connect, send `hello`; the first frame (a welcome, or the refusal)."""
        self.ws = await connect(url, subprotocols=["livecart.v1.json"])  # type: ignore[list-item]
        await self.ws.send(orjson.dumps(hello).decode())
        self.reader = asyncio.create_task(self._read())
        return await self.wait(lambda m: True)

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                message = orjson.loads(frame)
                self.frames.append(message)
                self.pool.append(message)

    async def send(self, message: Message) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(message).decode())

    async def wait(self, match: Callable[[Message], bool], timeout_s: float = 10) -> Message:
        async with asyncio.timeout(timeout_s):
            while True:
                found = next((m for m in self.frames if match(m)), None)
                if found is not None:
                    return found
                await asyncio.sleep(0.01)

    async def ask(self, message: Message) -> Message:
        """Send a request (with its `id`) and return the answer carrying that `ref`."""
        await self.send(message)
        return await self.wait(lambda m: m.get("ref") == message["id"])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


@dataclass
class Show:
    """One engine, its host's HTTP client per room, and every frame viewers got."""

    engine: Engine
    pool: list[Message] = field(default_factory=list)
    raws: list[Raw] = field(default_factory=list)

    def host(self, room: str) -> HostClient:
        return HostClient(self.engine.base_url, room, token(room, "host", "alice"))

    async def room(self, live: bool = True, **fields: Any) -> str:
        room = f"d-{secrets.token_hex(5)}"
        async with self.host(room) as host:
            await host.create_room("Friday drop", **fields)
            if live:
                await host.go_live()
        return room

    async def viewer(self, room: str, user: str | None = "bob", role: str = "viewer",
                     **hello: Any) -> tuple[Raw, Message]:  # fmt: skip
        raw = Raw(self.pool)
        self.raws.append(raw)
        if user is not None:
            hello.setdefault("token", token(room, role, user))
        first = await raw.open(f"{self.engine.ws_url}/{room}", {"type": "hello", **hello})
        return raw, first

    async def entries(self, room: str) -> None:
        """The room log over HTTP, into the pool (the same entry objects as in ticks)."""
        async with self.host(room) as host:
            log = await host.comments(since="0-0", limit=500)
        self.pool.extend(log["entries"])

    async def close(self) -> None:
        for raw in self.raws:
            await raw.close()


SNEAKER: dict[str, Any] = {
    "title": "Canvas sneaker", "description": "Low-top, organic cotton.",
    "images": ["https://example.com/sneaker.jpg"], "currency": "USD",
    "skus": [{"sku": "SNK-41-BLU", "list_price": 9900, "attrs": {"size": "41", "colour": "blue"}},
             {"sku": "SNK-42-BLU", "list_price": 9900, "attrs": {"size": "42", "colour": "blue"}}],
}  # fmt: skip


def pooled_entries(pool: list[Message]) -> list[Message]:
    """The entries inside ticks and welcomes, and the drop cards of welcomes."""
    found: list[Message] = []
    for message in list(pool):
        found += message.get("entries", []) if message.get("type") == "tick" else []
        if message.get("type") == "welcome":
            found += message["history"] + message["drops"]
    return found


# ---- the situations the examples show -------------------------------------------------------

SAMPLED_TICK = {"type", "seq", "t", "offset", "entries", "sampled_out", "stats"}


def at_or_after(offset: str, ack: Message) -> bool:
    """Whether a room-log offset has reached an acknowledged comment."""
    position = tuple(int(part) for part in offset.split("-"))
    return position >= tuple(int(part) for part in ack["entry"]["id"].split("-"))


def notice(kind: str) -> Callable[[Message], bool]:
    return lambda message: message.get("type") == "notice" and message.get("kind") == kind


def tick(*parts: str, kinds: tuple[str, ...] = ()) -> Callable[[Message], bool]:
    """A tick with exactly these parts (`entries`, `stats`, `stock`...) and entry kinds."""
    wanted = {"type", "seq", "t", "offset", *parts}
    return lambda m: (m.get("type") == "tick" and set(m) == wanted
                      and {e["kind"] for e in m.get("entries", [])} == set(kinds))  # fmt: skip


async def until(raw: Raw, action: Callable[[], Awaitable[Any]], match: Callable[[Message], bool],
                tries: int = 4) -> None:  # fmt: skip
    """Do `action` until `raw` receives a frame that `match`es (ticks gather what happens in
    one tick_ms, so the frame an example shows may take another go). Giving up is not an
    error here: the example then finds nothing like it, and the test says so."""
    for _ in range(tries):
        await action()
        with contextlib.suppress(TimeoutError):
            await raw.wait(match, timeout_s=2)
            return


async def chat(show: Show) -> None:
    """A live room presenting a product with a running sale: a welcome, a resume, comments,
    likes and pings, sampling, slow mode, a mute, the room log's moderation entries, an
    expired token, and last a ban."""
    room = await show.room(cover_url="https://example.com/cover.jpg", scheduled_at=int(
        time.time() * 1000) + 60_000)  # fmt: skip
    async with show.host(room) as host:
        product = await host.create_product(**SNEAKER)
        await host.create_product("Mug", "USD", [{"sku": "MUG-1", "list_price": 1500}])
        await host.pin_product(product["id"])
        await host.launch_sale("SNK-42-BLU", 100, per_user_limit=2)
        await host.update_room(settings={"display_rate": 1})
        first, welcome = await show.viewer(room, "ann")
        said = await first.ask({"type": "comment", "text": "is the blue one in stock?",
                                "id": "r1"})  # fmt: skip
        # welcome.offset lags by up to a tick: once the comment was in one, joins cover it
        await first.wait(lambda m: m["type"] == "tick" and at_or_after(m["offset"], said))
        bob, _ = await show.viewer(room, "bob")  # a welcome with that comment in its history
        await show.viewer(room, None, since=welcome["offset"])  # a resume replaying it
        await bob.ask({"type": "like", "count": 3, "id": "r2"})
        await bob.ask({"type": "ping", "id": "r3"})
        await bob.send({"type": "like", "count": 1})
        # A tick with entries, sampled_out and stats: more viewer comments in one tick than
        # display_rate (1) lets through, a host comment, and a like.
        hosting, _ = await show.viewer(room, "alice", role="host")
        crowd = [(await show.viewer(room, f"fan{i}"))[0] for i in range(4)]

        async def burst() -> None:
            await asyncio.gather(*(fan.send({"type": "comment", "text": "love it"})
                                   for fan in crowd))  # fmt: skip
            await hosting.send({"type": "comment", "text": "Yes, sizes S to XL"})
            await crowd[0].send({"type": "like", "count": 2})

        await until(bob, burst, tick("entries", "sampled_out", "stats", kinds=("comment",)), 3)
        await host.slow_mode(60)
        await bob.ask({"type": "comment", "text": "first", "id": "r4"})
        await bob.ask({"type": "comment", "text": "second", "id": "r5"})  # slow_mode
        await host.slow_mode(0)
        await host.mute("bob", 10)
        await bob.wait(notice("muted"))
        await bob.ask({"type": "comment", "text": "muted?", "id": "r6"})
        await host.unmute("bob")
        await bob.wait(notice("unmuted"))
        entry = await bob.ask({"type": "comment", "text": "Yes, sizes S to XL", "id": "r7"})
        await host.pin(entry["entry"]["id"])
        await host.unpin()
        await host.delete_comment(entry["entry"]["id"])
        await host.update_room(title="Friday drop: last call", cover_url=None)
        await host.reorder(["p2", "p1"])
        await host.unpin_product()
        expired = token(room, "viewer", "eve", ttl_s=1, now=time.time() - 100)
        await show.viewer(room, None, token=expired)
        await host.ban("bob")
        await bob.wait(lambda m: m.get("code") == "banned")
    await show.entries(room)


async def flash_sale(show: Show) -> None:
    """Grabs of every outcome and their replays, releases, the waitlist and its offer, the
    errors of flash-sale frames, stock ticks, a top-up, and a hold that runs out."""
    room = await show.room()
    async with show.host(room) as host:
        await host.create_product(**SNEAKER)
        expiring = await host.launch_sale("SNK-41-BLU", 1, hold_s=10)  # runs out first
        eve, _ = await show.viewer(room, "eve")
        await eve.ask({"type": "grab", "sale": expiring["id"], "id": "g0"})
        one = (await host.launch_sale("SNK-42-BLU", 1))["id"]  # limit 1
        bob, _ = await show.viewer(room, "bob")
        carl, _ = await show.viewer(room, "carl")
        dave, _ = await show.viewer(room, "dave")
        reserved = await bob.ask({"type": "grab", "sale": one, "quantity": 1, "id": "g1"})
        await bob.ask({"type": "grab", "sale": one, "quantity": 1, "id": "g1"})  # replayed
        await bob.ask({"type": "grab", "sale": one, "id": "g2"})  # limit_reached
        await carl.ask({"type": "grab", "sale": one, "id": "g3"})  # sold_out, 0 left
        await dave.ask({"type": "waitlist", "sale": one, "id": "w1"})
        await bob.ask({"type": "waitlist", "sale": one, "id": "w4"})  # at the limit
        held = reserved["result"]["reservation"]
        await bob.ask({"type": "release", "reservation": held, "id": "r8"})
        await bob.ask({"type": "release", "reservation": held, "id": "r8b"})  # not held
        offer = await dave.wait(notice("reservation_offered"))
        await carl.ask({"type": "release", "reservation": offer["reservation"], "id": "r9"})
        await carl.ask({"type": "release", "reservation": f"{one}.999", "id": "r10"})
        roomy = (await host.launch_sale("SNK-42-BLU", 1, per_user_limit=5))["id"]
        await carl.ask({"type": "grab", "sale": roomy, "quantity": 3, "id": "g4"})
        await carl.ask({"type": "waitlist", "sale": roomy, "id": "w2"})  # units available
        await until(carl, lambda: host.top_up(roomy, 5),
                    tick("entries", "stock", kinds=("sale_updated",)))  # fmt: skip
        later = (await host.launch_sale("SNK-42-BLU", 5, countdown_s=600))["id"]
        await bob.ask({"type": "grab", "sale": later, "id": "g6"})
        await bob.ask({"type": "grab", "sale": later, "id": "g6"})  # replayed
        await bob.ask({"type": "waitlist", "sale": later, "id": "w3"})
        over = (await host.launch_sale("SNK-42-BLU", 5))["id"]
        await host.stop_sale(over)
        await bob.ask({"type": "grab", "sale": over, "id": "g7"})
        await bob.ask({"type": "waitlist", "sale": over, "id": "w5"})
        await bob.ask({"type": "grab", "sale": "s999", "id": "g8"})
        await bob.send({"type": "grab", "sale": roomy})
        await bob.wait(lambda m: m.get("code") == "invalid_field")
        guest, _ = await show.viewer(room, None)
        await guest.ask({"type": "grab", "sale": roomy, "id": "g9"})
        mine = await bob.ask({"type": "grab", "sale": roomy, "id": "g10"})
        reservation = mine["result"]["reservation"]
        async with ShopperClient(show.engine.base_url, room, token(room, "viewer", "bob")) as me:
            await me.checkout([reservation], address=ADDRESS, contact={"email": "b@example.com"})
        await bob.ask({"type": "release", "reservation": reservation, "id": "r11"})
        # A stock change with nothing else in its tick (the "Stock only" example): a tick
        # waits while grabs are answered and may then carry other news too, so tap again
        # until one comes alone.
        taps = iter(range(4))

        async def tap() -> None:
            await dave.ask({"type": "grab", "sale": roomy, "id": f"g-alone-{next(taps)}"})

        await until(dave, tap, tick("stock"))
        await eve.wait(notice("reservation_expired"), timeout_s=30)
    await show.entries(room)


async def coupon_drops(show: Show) -> None:
    """Claims of every outcome, the errors of claim frames, the drop's announcement and
    counters in ticks, and drop cards in a welcome."""
    room = await show.room()
    async with show.host(room) as host:
        template = (await host.create_coupon("amount_off", "10 off 80", 100, "USD",
                                             amount=1000, min_spend=8000))["id"]  # fmt: skip
        watcher, _ = await show.viewer(room, "ann")
        await watcher.wait(lambda m: m["type"] == "tick" and "stats" in m)  # its join counted
        made: list[str] = []

        async def drop() -> None:
            made.append((await host.drop_coupons(template, 1))["id"])

        await until(watcher, drop, tick("entries", kinds=("coupon_dropped",)))
        now = made[0]
        later = (await host.drop_coupons(template, 50, countdown_s=600))["id"]
        brief = (await host.drop_coupons(template, 5, claim_window_s=1))["id"]
        other = (await host.drop_coupons(template, 5))["id"]
        bob, _ = await show.viewer(room, "bob")  # welcome.drops: cards
        carl, _ = await show.viewer(room, "carl")
        await bob.ask({"type": "claim", "drop": now, "id": "c1"})
        await bob.ask({"type": "claim", "drop": now, "id": "c1"})  # replayed
        await carl.ask({"type": "claim", "drop": now, "id": "c2"})  # sold_out
        await bob.ask({"type": "claim", "drop": other, "id": "c3"})  # limit_reached
        await carl.ask({"type": "claim", "drop": later, "id": "c4"})  # not_started
        await watcher.wait(
            lambda m: (
                m["type"] == "tick" and m.get("drops", {}).get(brief, {}).get("state") == "ended"
            )
        )
        await carl.ask({"type": "claim", "drop": brief, "id": "c5"})  # ended
        await carl.ask({"type": "claim", "drop": "d999", "id": "c6"})
        await carl.ask({"type": "claim", "drop": "x9", "id": "c8"})
        await carl.send({"type": "claim", "drop": now})
        await carl.wait(lambda m: m.get("code") == "invalid_field" and "ref" not in m)
        guest, _ = await show.viewer(room, None)
        await guest.ask({"type": "claim", "drop": now, "id": "c7"})
    await show.entries(room)


async def commerce(show: Show) -> None:
    """Private notices: a buy comment's answers, giveaways won and entered, a reminder."""
    room = await show.room()
    async with show.host(room) as host:
        await host.create_product(
            "Denim jacket", "USD", [{"sku": "DJ-M", "list_price": 5200, "attrs": {"size": "M"}}]
        )
        await host.launch_sale("DJ-M", 10, per_user_limit=3)
        await host.set_comment_to_buy(enabled=True)
        bob, _ = await show.viewer(room, "bob")
        await bob.send({"type": "comment", "text": "SOLD 1 2"})
        await bob.send({"type": "comment", "text": "SOLD 9"})
        prize = await host.open_giveaway("Lucky bag #2", "Denim jacket", prize_kind="product",
                                         sku="DJ-M")  # fmt: skip
        async with ShopperClient(show.engine.base_url, room, token(room, "viewer", "bob")) as me:
            await me.call("POST", f"/api/rooms/{room}/giveaways/{prize['id']}/enter", {})
        await host.close_giveaway(prize["id"])
        await host.open_giveaway("Lucky bag #3", "A hug", rule="keyword", keyword="lucky")
        await bob.send({"type": "comment", "text": "lucky me"})
        for kind in ("comment_buy", "giveaway_won", "giveaway_entered"):
            await bob.wait(notice(kind))
    later = await show.room(live=False)
    async with ShopperClient(show.engine.base_url, later, token(later, "viewer", "bob")) as me:
        await me.subscribe_reminders()
    fan, _ = await show.viewer(later, "bob")
    async with show.host(later) as host:
        await host.go_live()
    await fan.wait(notice("reminder"))


SCENARIOS: list[Callable[[Show], Awaitable[None]]] = [chat, flash_sale, coupon_drops, commerce]


@pytest.fixture
async def show(engine_factory: EngineFactory) -> AsyncIterator[Show]:
    # A slower tick than the suite's 20 ms, so one tick gathers a burst of comments.
    played = Show(await engine_factory(tick_ms=250))
    yield played
    await played.close()


def test_the_examples_are_found() -> None:
    found = examples()
    assert len(found) > 70
    kinds = {kind_of(e.obj)[0] for e in found}
    assert kinds == SERVER_TYPES | {"entry", "drop card"}


async def test_every_example_of_a_server_message_is_what_the_engine_sends(show: Show) -> None:
    await asyncio.gather(*(scenario(show) for scenario in SCENARIOS))
    pool = show.pool + pooled_entries(show.pool)
    problems = unmatched(pool, examples())
    assert problems == [], "docs/protocol.md and the engine disagree:\n" + "\n".join(problems)
