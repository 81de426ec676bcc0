"""engine.social.reminders and engine.commerce.notifiers: subscriptions, `going_live` delivered
exactly once
per subscriber by two engine processes to a real webhook, `sale_soon` at the sale's start
minus the lead, a claimed event resumed after its owner died, and the webhook's signature,
idempotency key and retries."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from clients import HostClient, LivecartClientError, ShopperClient
from engine.commerce.notifiers import (
    NotifierError,
    Reminder,
    ReminderKind,
    WebhookNotifier,
    notifier_for,
    webhook_secret,
)
from engine.commerce.payments import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from engine.core.settings import Settings
from engine.server.app import Engine
from engine.social.reminders import LIVE_EVENT, Reminders
from engine.store import keys
from engine.store.scripts import Scripts
from tests.conftest import (
    SECRET,
    EngineFactory,
    RoomFactory,
    ViewerFactory,
    eventually,
    poll,
    token,
)
from tests.test_api_catalog import JACKET

KEY = webhook_secret(SECRET)


@dataclass
class Receiver:
    """A tiny HTTP/1.1 webhook receiver on a free port: records every POST, answers with the
    next status of `statuses` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], dict[str, Any], float]] = field(default_factory=list)
    url: str = ""
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")[1:]
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.statuses.pop(0) if self.statuses else 200
                if status == 200:
                    self.received.append((headers, orjson.loads(body), time.time() * 1000))
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [body for _, body, _ in self.received if body["kind"] == kind]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
async def engines(
    engine: Engine, engine_factory: EngineFactory, receiver: Receiver
) -> AsyncIterator[list[Engine]]:
    """Two engine processes on one Redis, both sending reminders to `receiver`, with a 2 s
    sale lead (1 s minimum countdown) instead of 5 minutes."""
    both = [engine, await engine_factory()]
    for each in both:
        reminders = each.node.reminders
        reminders.notifier = WebhookNotifier(receiver.url, KEY, backoff_s=0.01)
        reminders.sale_lead_ms, reminders.sale_min_lead_ms = 2000, 1000
    yield both
    for each in both:
        await each.node.reminders.notifier.close()


def shopper(engine: Engine, room: str, user: str) -> ShopperClient:
    return ShopperClient(engine.base_url, room, token(room, "viewer", user))


def count_sweeps(engine: Engine) -> Callable[[], int]:
    """How many sweeps `engine` has finished from now on: a last pass, after the reminder
    pass (which schedules, claims and starts delivering what is due), counts them."""
    finished = 0

    async def counted(rooms: list[str], now: int) -> int:
        nonlocal finished
        finished += 1
        return 0

    assert engine.node is not None
    engine.node.sweeper.passes.append(counted)
    return lambda: finished


async def sweeps_pass(engines: list[Engine], sweeps: int = 4) -> None:
    """Wait until every engine has finished `sweeps` more sweeps."""
    counters = [count_sweeps(each) for each in engines]
    await eventually(lambda: all(count() >= sweeps for count in counters))


async def subscribe(engine: Engine, room: str, users: list[str]) -> None:
    for user in users:
        async with shopper(engine, room, user) as client:
            assert (await client.subscribe_reminders())["subscribed"] is True


# ---- subscriptions ---------------------------------------------------------------------------


async def test_subscribe_read_and_unsubscribe(engine: Engine, room_factory: RoomFactory) -> None:
    room = await room_factory(live=False)
    async with shopper(engine, room, "ana") as ana, \
            HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:  # fmt: skip
        assert await ana.reminders() == {"room": room, "subscribed": False, "since": None}
        first = await ana.subscribe_reminders()
        assert first["subscribed"] is True
        assert (await ana.subscribe_reminders())["since"] == first["since"]  # idempotent
        assert await ana.reminders() == first
        assert await host.reminder_count() == 1
        await ana.unsubscribe_reminders()
        assert (await ana.reminders())["subscribed"] is False
        assert await host.reminders() == {"subscribers": 0, "events": []}
        await host.go_live()
        await ana.subscribe_reminders()  # while live too
        await host.end()
        with pytest.raises(LivecartClientError) as refused:
            await ana.subscribe_reminders()
        assert refused.value.code == "room_not_open"
        with pytest.raises(LivecartClientError) as staff_only:
            await ana.call("GET", f"/api/rooms/{room}/reminders")
        assert staff_only.value.code == "forbidden"


# ---- delivery across two processes -----------------------------------------------------------


async def test_going_live_reaches_each_subscriber_exactly_once(
    engines: list[Engine], room_factory: RoomFactory, receiver: Receiver,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    room = await room_factory(live=False)
    users = [f"sub{i}" for i in range(6)]
    await subscribe(engines[1], room, users)
    watching = await viewer_factory(room, user="sub0", target=engines[1])
    await sweeps_pass(engines)  # on both processes: nothing is due before the show starts
    assert receiver.received == []
    async with HostClient(engines[0].base_url, room, token(room, "host", "host-1")) as host:
        await host.go_live()
        await eventually(lambda: len(receiver.received) >= len(users))
        await sweeps_pass(engines)  # several more on both processes: nothing more
        bodies = receiver.kinds("going_live")
        assert len(receiver.received) == len(bodies) == len(users)
        assert sorted(b["user"] for b in bodies) == users
        assert len({b["id"] for b in bodies}) == len(users)
        status = await host.reminders()
    [event] = status["events"]
    assert event | {"due_at": 0} == {"id": LIVE_EVENT, "kind": "going_live", "state": "done",
                                     "due_at": 0, "attempts": 1, "delivered": 6,
                                     "failed": 0}  # fmt: skip
    headers, body, _ = receiver.received[0]
    assert headers["idempotency-key"] == body["id"] == f"{room}:live:{body['user']}"
    assert headers[NONCE_HEADER] == body["id"]
    raw = orjson.dumps(body)
    assert headers[SIGNATURE_HEADER] == signature(KEY, headers[TIMESTAMP_HEADER], body["id"], raw)
    assert body["url"] == f"/live/{room}"
    assert body["title"] == "Test show"
    notice = await asyncio.wait_for(_notice(watching.notices, "reminder"), 5)
    assert notice["reminder"] == "going_live"
    assert notice["user"] == "sub0"


async def _notice(notices: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    while True:
        for notice in notices:
            if notice["kind"] == kind:
                return notice
        await asyncio.sleep(0.02)


async def test_sale_soon_is_sent_once_at_the_sales_start_minus_the_lead(
    engines: list[Engine], room: str, host: HostClient, receiver: Receiver
) -> None:
    await host.create_product(**JACKET)
    await subscribe(engines[0], room, ["ana", "ben"])
    later = await host.launch_sale("DJ-M", 5, countdown_s=4)  # due 2 s before its start
    soon = await host.launch_sale("DJ-S", 5, countdown_s=1)  # under the lead: sent at once
    await host.launch_sale("DJ-S", 5)  # no countdown: no reminder
    await eventually(lambda: len(receiver.kinds("sale_soon")) >= 4, timeout_s=8)
    await sweeps_pass(engines)  # more sweeps on both processes send nothing more
    sent = {(b["sale"], b["user"]): at for _, b, at in receiver.received
            if b["kind"] == "sale_soon"}  # fmt: skip
    assert sorted(sent) == [
        (s, u) for s in sorted([later["id"], soon["id"]]) for u in ("ana", "ben")
    ]
    for user in ("ana", "ben"):
        # Under the lead: due at once, so sent as soon as a sweep saw it (not before the
        # sale existed; how soon after depends on the machine's load, not asserted).
        assert sent[soon["id"], user] >= soon["created_at"] - 50
        # Not before it was due (a little slack for the two clocks), and before the start.
        assert later["starts_at"] - 2000 - 50 <= sent[later["id"], user] < later["starts_at"]
    [body] = [
        b for b in receiver.kinds("sale_soon") if b["sale"] == later["id"] and b["user"] == "ana"
    ]
    assert body["starts_at"] == later["starts_at"]
    assert (body["title"], body["price"], body["currency"]) == (later["title"], 5200, "USD")


# ---- leases: a process dying mid-delivery -------------------------------------------------------


@dataclass
class Recorder:
    sent: list[Reminder] = field(default_factory=list)

    async def send(self, reminder: Reminder) -> None:
        self.sent.append(reminder)

    async def close(self) -> None:
        return None


@pytest.fixture
async def live_room(redis: aioredis.Redis) -> str:
    room = f"rem-{secrets.token_hex(4)}"
    now = int(time.time() * 1000)
    await redis.hset(keys.room_meta(room), mapping={"state": "live", "live_at": now, "title": "t"})
    await redis.hset(keys.reminder_subscribers(room), mapping={f"u{i}": now for i in range(4)})
    return room


async def test_a_claimed_event_is_resumed_after_its_lease_ends(
    redis: aioredis.Redis, live_room: str
) -> None:
    scripts = Scripts()
    await scripts.load(redis)
    dead = Reminders(redis, scripts, notifier=Recorder(), lease_ms=300)
    alive_notifier = Recorder()
    alive = Reminders(redis, scripts, notifier=alive_notifier, lease_ms=300)
    now = int(time.time() * 1000)
    assert await alive.sweep([live_room], now) == 0  # schedules the event; claimed next sweep
    token_ = await dead.claim(live_room, LIVE_EVENT, deliver=False)
    assert token_ is not None
    # It got as far as u1 before it died.
    await redis.sadd(keys.reminder_sent(live_room, LIVE_EVENT), "u1")
    assert await alive.sweep([live_room], int(time.time() * 1000)) == 0  # still leased
    # Once the dead owner's lease (300 ms) has run out, a sweep claims the event again.
    claimed = await poll(lambda: alive.sweep([live_room], int(time.time() * 1000)), bool)
    assert claimed == 1
    await eventually(lambda: len(alive_notifier.sent) == 3)
    assert sorted(r.user for r in alive_notifier.sent) == ["u0", "u2", "u3"]
    assert {r.id for r in alive_notifier.sent} == {f"{live_room}:live:u{i}" for i in (0, 2, 3)}
    await eventually(lambda: _state(redis, live_room, "done"))
    status = await alive.status(live_room)
    assert status["events"][0] | {"due_at": 0} == {
        "id": "live", "kind": "going_live", "state": "done", "due_at": 0, "attempts": 2,
        "delivered": 4, "failed": 0,
    }  # fmt: skip
    # The dead owner's lease is gone: it can neither renew nor finish.
    lease = [keys.reminder_due(live_room), keys.reminder_event(live_room, LIVE_EVENT)]
    assert await scripts.reminder_renew(redis, lease, [LIVE_EVENT, token_, "", 300]) == 0
    assert await scripts.reminder_finish(redis, lease, [LIVE_EVENT, token_, "done", 0, 0, ""]) == 0
    assert await alive.sweep([live_room], int(time.time() * 1000)) == 0  # once, for good
    assert len(alive_notifier.sent) == 3


async def _state(redis: aioredis.Redis, room: str, state: str) -> bool:
    return await redis.hget(keys.reminder_event(room, LIVE_EVENT), "state") == state.encode()


async def test_a_show_that_ended_before_the_claim_is_skipped(
    redis: aioredis.Redis, live_room: str
) -> None:
    scripts = Scripts()
    notifier = Recorder()
    reminders = Reminders(redis, scripts, notifier=notifier)
    await reminders.sweep([live_room], int(time.time() * 1000))
    await redis.hset(keys.room_meta(live_room), "state", "ended")
    assert await reminders.sweep([live_room], int(time.time() * 1000)) == 1
    await eventually(lambda: _state(redis, live_room, "skipped"))
    assert notifier.sent == []


# ---- the webhook notifier -----------------------------------------------------------------------


def reminder(user: str = "ana") -> Reminder:
    return Reminder(
        f"r1:live:{user}", ReminderKind.GOING_LIVE, "r1", "live", user, 1, {"title": "t"}
    )


async def test_the_webhook_retries_server_errors_with_one_idempotency_key(
    receiver: Receiver,
) -> None:
    receiver.statuses = [503, 500]
    notifier = WebhookNotifier(receiver.url, KEY, backoff_s=0.01)
    try:
        await notifier.send(reminder())
    finally:
        await notifier.close()
    [(headers, body, _)] = receiver.received
    assert headers["idempotency-key"] == body["id"] == "r1:live:ana"
    assert receiver.statuses == []


async def test_the_webhook_gives_up_on_refusals_and_after_its_attempts(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = WebhookNotifier(receiver.url, KEY, attempts=2, backoff_s=0.01)
    receiver.statuses = [400, 200]
    with pytest.raises(NotifierError, match="HTTP 400"):
        await notifier.send(reminder())
    assert receiver.statuses == [200]  # a 4xx is not retried
    receiver.statuses = [503, 503, 503]
    with pytest.raises(NotifierError, match="HTTP 503"):
        await notifier.send(reminder())
    assert receiver.statuses == [503]
    await notifier.close()
    unreachable = WebhookNotifier("http://127.0.0.1:9/hook", KEY, attempts=2, backoff_s=0.01)
    with pytest.raises(NotifierError):
        await unreachable.send(reminder())
    await unreachable.close()
    assert "not delivered" in caplog.text


async def test_the_notifier_follows_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    env = {"LIVECART_REMINDER_WEBHOOK_URL": "https://hooks.example.com/livecart"}
    assert Settings.from_env(env).reminder_webhook_url == env["LIVECART_REMINDER_WEBHOOK_URL"]
    assert Settings.from_env({"LIVECART_REMINDER_WEBHOOK_URL": ""}).reminder_webhook_url == ""
    with pytest.raises(ValueError, match="http"):
        Settings.from_env({"LIVECART_REMINDER_WEBHOOK_URL": "hooks.example.com"})
    webhook = notifier_for("http://127.0.0.1:9/hook", SECRET)
    assert isinstance(webhook, WebhookNotifier)
    assert webhook.secret == KEY
    await webhook.close()
    log = notifier_for("", SECRET)
    with caplog.at_level("INFO", logger="livecart.reminders"):
        await log.send(reminder("ben"))
    [record] = [r for r in caplog.records if r.name == "livecart.reminders"]
    assert record.reminder["id"] == "r1:live:ben"  # type: ignore[attr-defined]
