"""The asyncio generator's viewers: one `Swarm` per OS process runs thousands of them.

Each viewer mints its token with the host's token, joins the room over a lean WebSocket
(`engine.bench.leanws`: one asyncio Protocol per connection, msgpack frames, no task or
queue per connection), and then does what its `Plan` says: comments (within the room's
limits) and likes at the plan's intervals, a grab when an announced sale starts (by the
server clock), a claim when a coupon drop opens, then checkout and payment over HTTP
(`engine.bench.leanhttp`). A dropped viewer reconnects with backoff and resumes from its
last offset. A first join that fails for a reason that can pass (a handshake shed with
503, a timeout, a refused connection, a refusal the engine calls retryable) is tried again
like the SDK's reconnect: full-jitter backoff, never sooner than the engine's
`Retry-After`, at most `JOIN_ATTEMPTS` attempts. The protocol (the msgpack codec, hello,
the resume offset, request ids and their answers, close codes, refusals) is `clients.core`'s.

Every call is timed and recorded in `Stats` under the (request_type, name) pairs of
`scenarios.REQUESTS`; server pushes are recorded as PUSH latencies (receipt time minus
the server's timestamp). A tick is the same bytes for every viewer on one engine process,
so the swarm decodes a tick once and every viewer reuses the summary.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from clients.backoff import Backoff
from clients.core import (
    MSGPACK,
    Requests,
    Session,
    is_refusal,
    retryable,
    shed_delay_s,
    should_reconnect,
    tick_seq,
)
from engine.bench.leanhttp import REQUEST_TIMEOUT_S, HttpError, LeanHTTP
from engine.bench.leanws import HandshakeRefused, LeanConnection
from loadtests.scenarios import ADDRESS, CONTACT, CommentPacer, Dice, Plan, Share
from loadtests.stats import Stats

GOING_AWAY = 1001  # the engine's close when it stops or restarts (docs/protocol.md)
RETRY_SAME_ID = {"timeout", "disconnected", "unavailable", "rate_limited"}
ANNOUNCEMENTS = {"sale_announced", "coupon_dropped", "product_pinned"}
ACTIONS = ANNOUNCEMENTS  # entries a viewer acts on: grab, claim, open the card
JOIN_ATTEMPTS = 6  # a first join's attempts before the viewer gives up (as locust's)


@dataclass(frozen=True, slots=True)
class _Tick:
    """What one tick carried, decoded once per process."""

    payload: bytes
    t: float
    offset: str | None
    comment_ts: tuple[float, ...]
    announce_ts: tuple[float, ...]
    stock: bool
    actions: tuple[dict[str, Any], ...]  # sale_announced and coupon_dropped entries


def _summarize(payload: bytes, message: dict[str, Any] | None = None) -> _Tick:
    if message is None:
        message = MSGPACK.decode(payload)
    entries = message.get("entries", ())
    return _Tick(
        payload,
        float(message.get("t", 0)),
        message.get("offset"),
        tuple(float(e["ts"]) for e in entries if e.get("kind") == "comment"),
        tuple(float(e["ts"]) for e in entries if e.get("kind") in ANNOUNCEMENTS),
        bool(message.get("stock") or message.get("drops")),
        tuple(e for e in entries if e.get("kind") in ACTIONS),
    )


@dataclass(eq=False)
class _Viewer:
    index: int
    user: str
    dice: Dice
    # The token and the resume offset (ticks are decoded once per process, not per viewer:
    # only their offset is kept per viewer).
    session: Session = field(default_factory=Session)
    conn: LeanConnection | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    welcome: asyncio.Future[dict[str, Any]] | None = None
    requests: Requests[asyncio.Future[dict[str, Any]]] = field(
        default_factory=lambda: Requests(f"{secrets.token_hex(3)}.")
    )
    clock_offset_ms: float = 0.0  # server clock - local clock (a lower bound)
    acted: set[str] = field(default_factory=set)  # sales and drops already acted on
    grabbed: bool = False
    coupons: list[tuple[str, int, str]] = field(default_factory=list)  # (id, min_spend, cur)
    drop_terms: dict[str, tuple[int, str]] = field(default_factory=dict)
    pacer: CommentPacer = field(default_factory=CommentPacer)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    joined_once: bool = False
    fatal: bool = False
    retry_after_s: float | None = None  # the engine's Retry-After on the last shed handshake
    left: bool = False  # stopped by the load's stages: closed on purpose, not reconnecting

    @property
    def token(self) -> str | None:
        return self.session.token

    def server_now_ms(self) -> float:
        return time.time() * 1000 + self.clock_offset_ms


class Swarm:
    """The viewers of one process, their connections and their statistics."""

    def __init__(self, base_url: str, room: str, host_token: str, plan: Plan,
                 *, timeout_s: float = REQUEST_TIMEOUT_S, seed: int | None = None,
                 source: str = "0", ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"  # then wss:// for the viewers' sockets
        # `ssl_context`: an https:// engine's certificate check (loadtests/target.py `Tls`).
        self.ssl: ssl.SSLContext | bool | None = (ssl_context or True) if self.tls else None
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.run_id = secrets.token_hex(3)  # user ids differ between runs in one room
        self.room = room
        self.host_token = host_token
        self.plan = plan
        self.timeout_s = timeout_s
        self.seed = seed  # viewer i's random choices: Dice(seed, i)
        self.source = source  # this process, in the timeline's viewer samples
        self.stats = Stats()
        self.checkouts = Share(plan.checkout_ratio)  # this process's reservations
        self.payments = Share(plan.pay_ratio)  # this process's orders
        self.http = LeanHTTP(base_url, timeout_s=timeout_s, ssl_context=ssl_context)
        self.viewers: dict[int, _Viewer] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.ticks: dict[int, _Tick] = {}
        self.online = 0
        self.stopping = False

    # ---- tasks ---------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], viewer: _Viewer | None = None) -> None:
        if self.stopping:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if viewer is not None:
            viewer.tasks.add(task)
            task.add_done_callback(viewer.tasks.discard)

    async def stop(self) -> None:
        """Stop every viewer and close every connection."""
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        closing = []
        for viewer in self.viewers.values():
            if viewer.conn is not None:
                viewer.conn.close()  # answers what the viewer waits for with "disconnected"
                closing.append(viewer.conn.closed)
        for _ in range(10):  # a task whose awaited result raced the cancel gets it again
            if not self.tasks:
                break
            await asyncio.wait(list(self.tasks), timeout=0.5)
            for task in list(self.tasks):
                task.cancel()
        if closing:
            await asyncio.wait(closing, timeout=2.0)
        await self.http.close()

    # ---- joining -------------------------------------------------------------------------

    async def viewer(self, index: int) -> None:
        """One viewer's life: token, connection, welcome, then its plan's behaviour."""
        viewer = self.viewers[index] = _Viewer(
            index, f"lt-{self.run_id}-{index}", Dice(self.seed, index)
        )
        started = time.perf_counter()
        try:
            status, body = await self.http.post(
                f"/api/rooms/{self.room}/tokens", {"user": viewer.user}, self.host_token
            )
            error = _http_error(status, body)
        except (OSError, HttpError, asyncio.IncompleteReadError, ValueError) as exc:
            error = _exc_code(exc)
        self.stats.record("HTTP", "token", _ms(started), error)
        if error is not None:
            return
        viewer.session.token = body["token"]
        if not await self.first_join(viewer):
            return
        if viewer.left:  # left while it was joining
            if viewer.conn is not None:
                viewer.conn.close()
            return
        if self.plan.comment_every_s:
            self.spawn(self.every(viewer, self.plan.comment_every_s, self.comment), viewer)
        if self.plan.like_every_s:
            self.spawn(self.every(viewer, self.plan.like_every_s, self.like), viewer)

    async def first_join(self, viewer: _Viewer) -> bool:
        """Join, trying again after a failure that can pass (each retry counted as the
        `join` status `retried`; a viewer out of attempts as `gave_up`)."""
        backoff = Backoff(max_attempts=JOIN_ATTEMPTS - 1)
        while not await self.join(viewer):
            if viewer.fatal or viewer.left:
                return False
            try:
                delay = backoff.next_delay()
            except StopIteration:
                self.stats.status("join", "gave_up")
                return False
            await asyncio.sleep(max(delay, self.told_s(viewer)))
            self.stats.status("join", "retried")
        return True

    def told_s(self, viewer: _Viewer) -> float:
        """The engine's Retry-After with jitter on top (as clients/viewer.py), so viewers
        shed together do not all come back in the same instant; 0 when none was given."""
        told = viewer.retry_after_s
        return 0.0 if told is None else shed_delay_s(told, viewer.dice.rng)

    async def join(self, viewer: _Viewer) -> bool:
        """Connect and say hello (resuming from the viewer's offset once it has one); True
        once welcomed. Records WS connect and WS join."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        viewer.retry_after_s = None
        try:
            async with asyncio.timeout(self.timeout_s):
                _, conn = await loop.create_connection(
                    lambda: LeanConnection(self.on_message, viewer.index),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                )
                viewer.conn = conn
                conn.handshake(self.host, self.port, f"/ws/{self.room}", MSGPACK.subprotocol)
                await conn.opened
        except (OSError, ConnectionError) as exc:
            if self.stopping:
                raise asyncio.CancelledError from exc
            self.stats.record("WS", "connect", _ms(started), _exc_code(exc))
            if isinstance(exc, HandshakeRefused):
                viewer.retry_after_s = exc.retry_after_s
            if viewer.conn is not None:
                viewer.conn.close()
            return False
        self.stats.record("WS", "connect", _ms(started))
        conn.closed.add_done_callback(lambda _: self.on_closed(viewer, conn))
        viewer.welcome = loop.create_future()
        started = time.perf_counter()
        conn.send(MSGPACK.encode(viewer.session.hello()))
        try:
            async with asyncio.timeout(self.timeout_s):
                message = await viewer.welcome
        except TimeoutError:
            message = {"type": "error", "code": "timeout", "retryable": True}
        if self.stopping:
            raise asyncio.CancelledError
        if message.get("type") != "welcome":
            code = str(message.get("code", "error"))
            viewer.fatal = not retryable(message)  # token_expired, banned, room_not_found...
            self.stats.record("WS", "join", _ms(started), code)
            conn.close()
            return False
        self.stats.record("WS", "join", _ms(started))
        # The server's clock was at least server_time when the welcome arrived: a lower
        # bound, so that taps timed by it are never early (ticks tighten it).
        viewer.clock_offset_ms = message["server_time"] - time.time() * 1000
        joined = viewer.session.on_welcome(message)
        viewer.ready.set()
        self.online += 1
        self.stats.viewers_peak = max(self.stats.viewers_peak, self.online)
        if not viewer.joined_once:
            viewer.joined_once = True
            viewer.pacer = CommentPacer.from_limits(message.get("limits", {}))
            self.stats.viewers += 1
            self.stats.status("join", "joined")
        self.on_welcome(viewer, message, joined.entries)
        return True

    def on_closed(self, viewer: _Viewer, conn: LeanConnection) -> None:
        if conn is not viewer.conn:
            return
        # 1001: the engine went away having answered every frame it served, so what is
        # unanswered was not served and is sent again once resumed (call).
        unserved = {"resend": True} if conn.close_code == GOING_AWAY else {}
        for future in [*viewer.requests.drain(), viewer.welcome]:
            if future is not None and not future.done():
                future.set_result({"type": "error", "code": "disconnected", "retryable": True,
                                   **unserved})  # fmt: skip
        if not viewer.ready.is_set():
            return  # refused during the join: join() has recorded it
        viewer.ready.clear()
        self.online -= 1
        if self.stopping or viewer.left:
            return
        code = conn.close_code
        self.stats.status("close", str(code or 1006))
        if should_reconnect(code):
            self.spawn(self.reconnect(viewer))
        else:
            self.retire(viewer)

    async def reconnect(self, viewer: _Viewer) -> None:
        """Reconnect with full-jitter backoff (never sooner than a shedding engine's
        Retry-After) and resume from the last offset."""
        backoff = Backoff()
        while True:
            await asyncio.sleep(max(backoff.next_delay(), self.told_s(viewer)))
            if await self.join(viewer):
                return
            if viewer.fatal:
                self.retire(viewer)
                return

    def retire(self, viewer: _Viewer) -> None:
        for task in list(viewer.tasks):
            task.cancel()

    def leave(self, index: int) -> None:
        """Viewer `index` leaves the room (the stages want fewer users): its tasks stop
        and its connection closes, without reconnecting."""
        viewer = self.viewers.get(index)
        if viewer is None or viewer.left:
            return
        viewer.left = True
        self.retire(viewer)
        if viewer.conn is not None:
            viewer.conn.close()

    async def sample_viewers(self) -> None:
        """Each second, how many viewers are joined (the timeline's `viewers`)."""
        while not self.stopping:
            self.stats.timeline.sample_viewers(self.source, self.online)
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)

    # ---- frames --------------------------------------------------------------------------

    def on_message(self, conn: LeanConnection, payload: bytes) -> None:
        viewer = self.viewers.get(conn.index)
        if viewer is None:
            return
        seq = tick_seq(payload)
        if seq is None:
            message: dict[str, Any] = MSGPACK.decode(payload)
            if message.get("type") == "tick":
                self.on_tick(viewer, _summarize(payload, message))
            else:
                self.on_control(viewer, message)
            return
        tick = self.ticks.get(seq)
        if tick is None or tick.payload != payload:
            tick = self.ticks[seq] = _summarize(payload)
            if len(self.ticks) > 512:
                for old in [s for s in self.ticks if s < seq - 256 or s > seq + 256]:
                    del self.ticks[old]
        self.on_tick(viewer, tick)

    def on_tick(self, viewer: _Viewer, tick: _Tick) -> None:
        if tick.offset is not None:
            viewer.session.offset = tick.offset
        if tick.comment_ts or tick.announce_ts or tick.stock:
            now_ms = time.time() * 1000
            viewer.clock_offset_ms = max(viewer.clock_offset_ms, tick.t - now_ms)
            if tick.comment_ts:
                self.stats.pushes("comment", now_ms, tick.comment_ts)
            if tick.announce_ts:
                self.stats.pushes("announcement", now_ms, tick.announce_ts)
            if tick.stock:
                self.stats.pushes("stock", now_ms, (tick.t,))
        for entry in tick.actions:
            if entry["kind"] == "sale_announced":
                self.on_sale(viewer, str(entry["ref"]), "scheduled", entry["starts_at"])
            elif entry["kind"] == "product_pinned":
                self.on_pinned(viewer, str(entry["ref"]))
            else:
                self.on_drop(viewer, str(entry["ref"]), entry)

    def on_control(self, viewer: _Viewer, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "welcome" or is_refusal(message):
            if viewer.welcome is not None and not viewer.welcome.done():
                viewer.welcome.set_result(message)
            elif kind == "error":
                self.stats.status("pushed_error", str(message.get("code")))
            return
        future = viewer.requests.match(message)
        if future is not None and not future.done():
            future.set_result(message)

    def on_welcome(
        self, viewer: _Viewer, message: dict[str, Any], history: list[dict[str, Any]]
    ) -> None:
        """Act on the sales and drops a (re)joining viewer is shown, and on announcements
        a resume replayed (`history`: the welcome's, less what the viewer already had)."""
        pinned = (message.get("room") or {}).get("pinned_product")
        if pinned:
            self.on_pinned(viewer, str(pinned))
        for sale in message.get("sales", []):
            self.on_sale(viewer, str(sale["id"]), str(sale.get("state")), sale.get("starts_at"))
        for drop in message.get("drops", []):
            if drop.get("state") in {"scheduled", "live"}:
                self.on_drop(viewer, str(drop["id"]), drop)
        if message.get("recovered"):
            for entry in history:
                if entry.get("kind") == "sale_announced":
                    self.on_sale(viewer, str(entry["ref"]), "scheduled", entry["starts_at"])
                elif entry.get("kind") == "coupon_dropped":
                    self.on_drop(viewer, str(entry["ref"]), entry)

    def on_sale(self, viewer: _Viewer, sale: str, state: str, starts_at: Any) -> None:
        """grab: every sale announced (or scheduled when joining), at its start.
        grab_now: the first live sale when joining, else the first one announced."""
        plan = self.plan
        if sale in viewer.acted or not (plan.grab or (plan.grab_now and not viewer.grabbed)):
            return
        if state == "scheduled":
            at: float | None = float(starts_at)
        elif state == "live" and plan.grab_now:
            at = None
        else:
            return
        viewer.acted.add(sale)
        viewer.grabbed = True
        self.spawn(self.grab(viewer, sale, at), viewer)

    def on_pinned(self, viewer: _Viewer, product: str) -> None:
        """Open the pinned product's card, by the plan's chance, after a moment."""
        if viewer.dice.chance(self.plan.click_chance):
            self.spawn(self.click(viewer, product), viewer)

    async def click(self, viewer: _Viewer, product: str) -> None:
        await asyncio.sleep(viewer.dice.between((0.2, 2.0)))
        await self.call(viewer, "click", {"type": "click", "product": product})

    def on_drop(self, viewer: _Viewer, drop: str, card: dict[str, Any]) -> None:
        if not self.plan.claim or drop in viewer.acted:
            return
        viewer.acted.add(drop)
        viewer.drop_terms[drop] = (int(card.get("min_spend") or 0), str(card.get("currency")))
        self.spawn(self.claim(viewer, drop, float(card["opens_at"])), viewer)

    # ---- calls ---------------------------------------------------------------------------

    async def call(self, viewer: _Viewer, name: str, message: dict[str, Any],
                   request_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Send a frame with an id and wait for its answer; records ("WS", name). Returns
        the ack, or an error frame (`code` "timeout"/"disconnected" when none came). A
        request the engine left unserved when it went away (1001) is sent again, with its
        id, once the viewer has resumed: one request, timed from its first sending."""
        started = time.perf_counter()
        while True:
            if not viewer.ready.is_set():
                try:
                    async with asyncio.timeout(self.timeout_s):
                        await viewer.ready.wait()
                except TimeoutError:
                    self.stats.record("WS", name, _ms(started), "disconnected")
                    return {"type": "error", "code": "disconnected"}
            if self.stopping or viewer.conn is None:
                raise asyncio.CancelledError
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            request_id, framed = viewer.requests.open(message, future, request_id)
            viewer.conn.send(MSGPACK.encode(framed))
            try:
                async with asyncio.timeout(self.timeout_s):
                    reply = await future
            except TimeoutError:
                reply = {"type": "error", "code": "timeout"}
            finally:
                viewer.requests.forget(request_id)
            if self.stopping:  # answered "disconnected" by stop(): not a failure of the engine
                raise asyncio.CancelledError
            if not reply.get("resend"):
                break
            self.stats.status("resent", name)
        error = str(reply.get("code")) if reply.get("type") == "error" else None
        self.stats.record("WS", name, _ms(started), error)
        return reply

    async def answer(self, viewer: _Viewer, name: str, message: dict[str, Any]) -> dict[str, Any]:
        """A grab or claim: retried with the same id (its idempotency key) when no answer
        came or the engine asked to retry; the answer's `result`, or {} after an error."""
        request_id = viewer.requests.new_id()
        for attempt in range(4):
            reply = await self.call(viewer, name, message, request_id)
            if reply.get("type") == "ack":
                result: dict[str, Any] = reply.get("result", {})
                self.stats.status(name, str(result.get("status")))
                return result
            if reply.get("code") not in RETRY_SAME_ID or attempt == 3:
                break
            await asyncio.sleep(viewer.dice.between((0.1, 0.3)))
        return {}

    async def until_server(self, viewer: _Viewer, at_ms: float, jitter_s: float) -> None:
        delay_s = (at_ms - viewer.server_now_ms()) / 1000
        await asyncio.sleep(max(0.0, delay_s) + (viewer.dice.upto(jitter_s) if jitter_s else 0))

    async def every(self, viewer: _Viewer, interval: tuple[float, float],
                    action: Callable[[_Viewer], Awaitable[None]]) -> None:  # fmt: skip
        """`action` at uniform(interval) intervals; the first at a random phase."""
        await asyncio.sleep(viewer.dice.upto(interval[1]))
        while not self.stopping:
            await action(viewer)
            await asyncio.sleep(viewer.dice.between(interval))

    async def comment(self, viewer: _Viewer) -> None:
        """Comment, within the room's limits (waiting first if the next would be refused)."""
        await asyncio.sleep(viewer.pacer.wait_ms(time.time() * 1000) / 1000)
        reply = await self.call(
            viewer, "comment", {"type": "comment", "text": viewer.dice.comment()}
        )
        if reply.get("type") == "ack":
            viewer.pacer.accepted(time.time() * 1000)

    async def like(self, viewer: _Viewer) -> None:
        count = viewer.dice.likes(self.plan)
        await self.call(viewer, "like", {"type": "like", "count": count})

    async def grab(self, viewer: _Viewer, sale: str, starts_at: float | None) -> None:
        """At the start (+ reaction jitter), tap; again with a new id while sold out, up
        to grab_taps; a tap that lands a little early is repeated at the start."""
        if starts_at is not None:
            await self.until_server(viewer, starts_at, self.plan.grab_jitter_s)
        taps = early = 0
        while taps < self.plan.grab_taps:
            result = await self.answer(viewer, "grab", {"type": "grab", "sale": sale})
            status = result.get("status")
            if status == "reserved":
                await self.buy(viewer, result)
                return
            if status == "not_started" and early < 5:
                early += 1
                await self.until_server(viewer, float(result["starts_at"]) + 5, 0.0)
                continue
            if status not in {"sold_out", None}:
                return  # limit_reached, ended
            taps += 1
            if taps < self.plan.grab_taps:
                await asyncio.sleep(viewer.dice.between((0.2, 0.5)))

    async def claim(self, viewer: _Viewer, drop: str, opens_at: float) -> None:
        await self.until_server(viewer, opens_at, self.plan.grab_jitter_s)
        for _ in range(5):
            result = await self.answer(viewer, "claim", {"type": "claim", "drop": drop})
            if result.get("status") == "claimed":
                min_spend, currency = viewer.drop_terms.get(drop, (0, ""))
                viewer.coupons.append((str(result["coupon"]), min_spend, currency))
                return
            if result.get("status") != "not_started":
                return
            await self.until_server(viewer, float(result["opens_at"]) + 5, 0.0)

    async def buy(self, viewer: _Viewer, reserved: dict[str, Any]) -> None:
        """Maybe check out the reservation (with a coupon that applies), then maybe pay."""
        plan = self.plan
        if not self.checkouts.take():
            return
        await asyncio.sleep(viewer.dice.between(plan.think_s))
        spend = int(reserved.get("price", 0)) * int(reserved.get("quantity", 1))
        coupon = next((c for c in viewer.coupons
                       if c[1] <= spend and c[2] == reserved.get("currency")), None)  # fmt: skip
        if coupon is not None:
            viewer.coupons.remove(coupon)
        body = {"reservations": [reserved["reservation"]],
                "coupons": [coupon[0]] if coupon else [], "shipping_address": ADDRESS,
                "contact": CONTACT, "idempotency_key": viewer.requests.new_id()}  # fmt: skip
        order = await self.http_call(viewer, "checkout", f"/api/rooms/{self.room}/orders", body)
        if order is None:
            if coupon is not None:
                viewer.coupons.append(coupon)
            return
        if not self.payments.take():
            return
        await asyncio.sleep(viewer.dice.between(plan.think_s))
        path = f"/api/rooms/{self.room}/orders/{order['id']}/payment"
        payment = await self.http_call(viewer, "payment", path, None)
        if payment is not None:
            path = f"/psp/pay/{payment['payment']}"
            await self.http_call(viewer, "pay", path, {"outcome": "succeeded"}, _paid)

    async def http_call(
        self, viewer: _Viewer, name: str, path: str, body: Any,
        check: Callable[[Any], str | None] | None = None,
    ) -> dict[str, Any] | None:  # fmt: skip
        """POST; records ("HTTP", name) with the error code of a refusal; `check` turns a
        2xx answer into a failure code (or None). The answer, or None if it failed."""
        started = time.perf_counter()
        try:
            status, data = await self.http.post(path, body, viewer.token)
            error = _http_error(status, data)
        except (OSError, HttpError, asyncio.IncompleteReadError, ValueError) as exc:
            data, error = None, _exc_code(exc)
        if error is None and check is not None:
            error = check(data)
            self.stats.status(name, error or "paid")
        self.stats.record("HTTP", name, _ms(started), error)
        return data if error is None and isinstance(data, dict) else None


def _paid(data: Any) -> str | None:
    """The pay API's answer: paid when the engine applied the payment."""
    if not isinstance(data, dict) or not data.get("delivered"):
        return "undelivered"
    outcome = (data.get("engine") or {}).get("outcome")
    return None if outcome == "paid" else str(outcome)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _http_error(status: int, data: Any) -> str | None:
    if status < 400:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("code", status))
    return f"http_{status}"


def _exc_code(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, HttpError):
        return exc.code
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    words = str(exc).split()
    if isinstance(exc, ConnectionError) and words[:1] and words[0].startswith("HTTP/"):
        return f"handshake_{words[1]}" if len(words) > 1 else "handshake"
    return type(exc).__name__
