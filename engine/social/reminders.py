"""Show reminders (docs/social.md): viewers subscribe to a room; the engine tells each
subscriber when the show goes live (`going_live`) and shortly before each announced flash
sale starts (`sale_soon`), through a pluggable notifier (engine/commerce/notifiers.py).

Every process's sweeper calls `sweep`. For rooms with subscribers it looks at the room's
state and its new sales and schedules their events (reminder_schedule.lua: once per event
whoever sees it first). A due event is claimed by one process (reminder_claim.lua), whose
lease is renewed while it delivers; per (event, user) a delivered marker is set after the
notifier accepted it. A process that dies mid-delivery stops renewing, the lease ends and
another process's claim resumes the users without a marker. So: the claim is exactly
once per lease, delivery is at least once per (event, user) and effectively once for a
receiver that dedupes on the reminder's id (the same on a redelivery).

    pending ──claim──▶ delivering ──every subscriber tried──▶ done
                        │    ▲ lease ends: reclaimed
                        └────┘ ──show ended / sale gone──▶ skipped
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.commerce.notifiers import LogNotifier, Notifier, NotifierError, Reminder, ReminderKind
from engine.commerce.sales import Sale, SaleState
from engine.core.errors import ConflictError
from engine.core.loop import stop_tasks
from engine.rooms.rooms import RoomState
from engine.store import keys
from engine.store.redis_client import text, texts
from engine.store.roomlog import notify_user
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.reminders")

# A room that went live longer ago than this before anyone subscribed gets no going_live.
LIVE_GRACE_MS = 10 * 60_000
LIVE_EVENT = "live"


class EventState(enum.Enum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DONE = "done"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A reminder event this process holds the lease on."""

    room: str
    event: str
    token: str
    kind: ReminderKind
    due_at: int
    payload: dict[str, Any]

    def to(self, user: str) -> Reminder:
        reminder_id = f"{self.room}:{self.event}:{user}"
        return Reminder(reminder_id, self.kind, self.room, self.event, user, self.due_at,
                        self.payload)  # fmt: skip


def sale_event(sale_id: str) -> str:
    return f"sale-{sale_id}"


class Reminders:
    def __init__(self, redis: Redis, scripts: Scripts, *,
                 notifier: Notifier | None = None, sale_lead_ms: int = 300_000,
                 sale_min_lead_ms: int = 60_000, lease_ms: int = 30_000,
                 batch: int = 32) -> None:  # fmt: skip
        self.redis = redis
        self.scripts = scripts
        self.notifier: Notifier = notifier or LogNotifier()
        # sale_soon is due this long before a sale starts; a sale announced with a shorter
        # countdown gets it at once, unless the countdown is under sale_min_lead_ms.
        self.sale_lead_ms = sale_lead_ms
        self.sale_min_lead_ms = sale_min_lead_ms
        self.lease_ms = lease_ms
        self.batch = batch  # users sent to at once, between two lease renewals
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}

    # ---- subscriptions ------------------------------------------------------------------

    async def subscribe(self, room: str, user: str, at_ms: int) -> dict[str, Any]:
        state = await self.redis.hget(keys.room_meta(room), "state")
        if state is None or RoomState(text(state)) is RoomState.ENDED:
            raise ConflictError("the show is over: nothing to remind of", code="room_not_open")
        await self.redis.hsetnx(keys.reminder_subscribers(room), user, at_ms)
        return await self.subscription(room, user)

    async def unsubscribe(self, room: str, user: str) -> None:
        await self.redis.hdel(keys.reminder_subscribers(room), user)

    async def subscription(self, room: str, user: str) -> dict[str, Any]:
        since = await self.redis.hget(keys.reminder_subscribers(room), user)
        return {"room": room, "subscribed": since is not None,
                "since": int(since) if since else None}  # fmt: skip

    async def status(self, room: str) -> dict[str, Any]:
        """The host's view: how many subscribe, and each reminder event so far."""
        sale_ids = texts(await self.redis.zrange(keys.sales(room), 0, -1))
        events = [LIVE_EVENT, *(sale_event(s) for s in sale_ids)]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(keys.reminder_subscribers(room))
            for event in events:
                pipe.hgetall(keys.reminder_event(room, event))
            count, *raws = await pipe.execute()
        listed = []
        for event, raw in zip(events, raws, strict=True):
            if raw:
                h = {text(k): text(v) for k, v in raw.items()}
                listed.append({
                    "id": event, "kind": h["kind"], "state": h["state"],
                    "due_at": int(h["due_at"]), "attempts": int(h["attempt"]),
                    "delivered": int(h.get("delivered", 0)), "failed": int(h.get("failed", 0)),
                })  # fmt: skip
        return {"subscribers": int(count), "events": listed}

    # ---- the sweep ----------------------------------------------------------------------

    async def sweep(self, rooms: list[str], now: int) -> int:
        """Schedule new events, claim the due ones and start delivering them; returns how
        many this process claimed."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.hlen(keys.reminder_subscribers(room))
                pipe.zrangebyscore(keys.reminder_due(room), "-inf", now, start=0, num=10)
            replies = await pipe.execute()
        for room, subscribers in zip(rooms, replies[::2], strict=True):
            if subscribers:
                await self._discover(room, now)
        claimed = 0
        for room, due in zip(rooms, replies[1::2], strict=True):
            for event in texts(due):
                if (room, event) not in self._running and await self.claim(room, event):
                    claimed += 1
        # An event scheduled by this sweep is claimed by the next one (≤ 1/4 s later).
        return claimed

    async def _discover(self, room: str, now: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.room_meta(room), ["state", "live_at", "title"])
            pipe.exists(keys.reminder_event(room, LIVE_EVENT))
            pipe.hget(keys.reminder_scan(room), "sales")
            (state, live_at, title), live_seen, cursor = await pipe.execute()
        if state is None or state == RoomState.ENDED.value.encode():
            return  # nothing left to remind of (subscriptions stay, for the record)
        if (
            not live_seen
            and state == RoomState.LIVE.value.encode()
            and live_at
            and now - int(live_at) <= LIVE_GRACE_MS
        ):
            await self._schedule(room, LIVE_EVENT, ReminderKind.GOING_LIVE, now,
                                 {"title": text(title or b"")})  # fmt: skip
        after = f"({int(cursor or 0)}"
        new: list[Any] = await self.redis.zrangebyscore(
            keys.sales(room), after, "+inf", withscores=True
        )
        if not new:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for sale_id, _ in new:
                pipe.hgetall(keys.sale(room, text(sale_id)))
            raws = await pipe.execute()
        for raw in raws:
            if raw:
                await self._schedule_sale(room, Sale.from_hash(raw), now)
        # Concurrent sweeps may move it back a little: that only re-reads, scheduling is once.
        await self.redis.hset(keys.reminder_scan(room), "sales", int(max(n for _, n in new)))

    async def _schedule_sale(self, room: str, sale: Sale, now: int) -> None:
        if sale.private is not None or now >= sale.starts_at:
            return
        if sale.starts_at - sale.created_at < self.sale_min_lead_ms:
            return
        due = max(sale.starts_at - self.sale_lead_ms, sale.created_at)
        payload = {"sale": sale.id, "title": sale.title, "price": sale.price,
                   "currency": sale.currency, "starts_at": sale.starts_at}  # fmt: skip
        await self._schedule(room, sale_event(sale.id), ReminderKind.SALE_SOON, due, payload)

    async def _schedule(self, room: str, event: str, kind: ReminderKind, due: int,
                        payload: dict[str, Any]) -> None:  # fmt: skip
        await self.scripts.reminder_schedule(
            self.redis,
            [keys.reminder_event(room, event), keys.reminder_due(room)],
            [event, due, kind.value, orjson.dumps(payload)],
        )

    # ---- claiming and delivering --------------------------------------------------------

    async def claim(self, room: str, event: str, *, deliver: bool = True) -> str | None:
        """Claim a due event; the lease token if this process won it (and, with `deliver`,
        its delivery started). Without `deliver` nothing is sent: a stand-in for a process
        that dies right after claiming (tests)."""
        token = secrets.token_hex(8)
        result = await self.scripts.reminder_claim(
            self.redis,
            [keys.reminder_due(room), keys.reminder_event(room, event)],
            [event, "", self.lease_ms, token],
        )
        if result[0] != b"ok":
            return None
        claimed = Claimed(room, event, token, ReminderKind(text(result[2])),
                          int(result[4]), orjson.loads(result[3]))  # fmt: skip
        log.info("claimed reminder %s (attempt %d)", event, int(result[1]), extra={"room": room})
        if deliver:
            task = asyncio.create_task(self._deliver(claimed))
            self._running[room, event] = task
            task.add_done_callback(lambda _: self._finished(room, event, task))
        return token

    def _finished(self, room: str, event: str, task: asyncio.Task[None]) -> None:
        self._running.pop((room, event), None)
        if not task.cancelled() and task.exception() is not None:
            log.error("reminder %s failed", event, exc_info=task.exception(),
                      extra={"room": room})  # fmt: skip

    async def _deliver(self, claimed: Claimed) -> None:
        room, event, token, kind = claimed.room, claimed.event, claimed.token, claimed.kind
        lease = [keys.reminder_due(room), keys.reminder_event(room, event)]
        try:
            if not await self._still_relevant(room, kind, claimed.payload):
                await self.scripts.reminder_finish(
                    self.redis, lease, [event, token, EventState.SKIPPED.value, 0, 0, ""]
                )
                return
            subscribers = texts(await self.redis.hkeys(keys.reminder_subscribers(room)))
            sent = set(texts(await self.redis.smembers(keys.reminder_sent(room, event))))
            todo = sorted(u for u in subscribers if u not in sent)
            failed = 0
            for start in range(0, len(todo), self.batch):
                renewed = await self.scripts.reminder_renew(
                    self.redis, lease, [event, token, "", self.lease_ms]
                )
                if not renewed:
                    log.warning("lost the lease on reminder %s", event, extra={"room": room})
                    return
                chunk = todo[start : start + self.batch]
                outcomes = await asyncio.gather(*(self._send(claimed.to(user)) for user in chunk))
                failed += outcomes.count(False)
            delivered = await self.redis.scard(keys.reminder_sent(room, event))
            await self.scripts.reminder_finish(
                self.redis, lease, [event, token, EventState.DONE.value, delivered, failed, ""]
            )
        except (RedisError, OSError) as exc:
            # The lease runs out and another sweep resumes from the delivered markers.
            log.warning("reminder %s interrupted: %s", event, exc, extra={"room": room})

    async def _still_relevant(self, room: str, kind: ReminderKind, payload: dict[str, Any]) -> bool:
        if kind is ReminderKind.GOING_LIVE:
            state = await self.redis.hget(keys.room_meta(room), "state")
            return state == RoomState.LIVE.value.encode()
        raw = await self.redis.hgetall(keys.sale(room, payload["sale"]))
        now = int((await self.redis.time())[0]) * 1000
        return bool(raw) and Sale.from_hash(raw).state(now) is SaleState.SCHEDULED

    async def _send(self, reminder: Reminder) -> bool:
        try:
            await self.notifier.send(reminder)
        except NotifierError:
            return False
        await self.redis.sadd(keys.reminder_sent(reminder.room, reminder.event), reminder.user)
        # In the room too, for a subscriber who is already watching (best effort).
        wire = reminder.to_wire()
        del wire["user"], wire["room"]
        wire["reminder"] = wire.pop("kind")  # a notice's `kind` is "reminder"
        await notify_user(
            self.redis, self.scripts, reminder.room, reminder.user, "reminder", **wire
        )
        return True

    async def close(self) -> None:
        """Stop this process's deliveries (their leases run out; another process resumes)."""
        await stop_tasks(list(self._running.values()))
        await self.notifier.close()
