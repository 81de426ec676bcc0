"""Flash-sale stock: grabs (micro-batched into one script call), releases, expiry,
confirmation into sold, and the waitlist. The truth is in Redis and every change is one
Lua script, so no check can be bypassed and several engine processes can share a sale.

Micro-batching: grabs for one sale that arrive while a batch is in flight wait and go
together in the next script call (at most `max_batch` per call). When the sale is quiet a
grab goes out at once; under a rush batches grow with the arrival rate, so the engine is not
bound by one Redis round trip per grab. One batch per sale and process is in flight at a
time: two in flight would travel on two pooled connections, and Redis could run the later
one first, so a viewer's second tap could win over the first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.commerce.sales import check_sale_id, sale_keys
from engine.core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
    UnavailableError,
)
from engine.core.metrics import METRICS
from engine.store import keys
from engine.store.meter import Meter, off
from engine.store.redis_client import text
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.stock")

RESERVATION_ID_RE = re.compile(r"(s[0-9]{1,9})\.[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class GrabRequest:
    user: str
    request_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class GrabAnswer:
    """The script's answer: `status` is reserved | sold_out | limit_reached | not_started |
    ended | sale_not_found; `replayed` when it is the stored answer to an earlier request
    with the same id."""

    body: dict[str, Any]
    replayed: bool

    @property
    def status(self) -> str:
        status: str = self.body["status"]
        return status


def sale_of_reservation(reservation_id: Any) -> str:
    match = RESERVATION_ID_RE.fullmatch(reservation_id) if isinstance(reservation_id, str) else None
    if match is None:
        raise ProtocolError(
            "reservation: an id such as 's3.41'", code="invalid_field",
            details={"field": "reservation"},
        )  # fmt: skip
    return match.group(1)


BatchRunner = Callable[[list[GrabRequest]], Awaitable[list[GrabAnswer]]]
# Called once with the grab's answer, or with the exception that failed its batch.
OnAnswer = Callable[[GrabAnswer | Exception], None]


class GrabBatcher:
    """Coalesces one sale's grabs on this process into batched script calls.

    Answers are delivered by callback from the batch's completion, so a rush of grabs
    costs no task switch per grab (the gateway writes each ack from the callback)."""

    def __init__(self, run: BatchRunner, *, max_batch: int, window_s: float,
                 on_idle: Callable[[], None]) -> None:  # fmt: skip
        self.run = run
        self.max_batch = max_batch
        self.window_s = window_s
        self.on_idle = on_idle
        self.queue: deque[tuple[GrabRequest, OnAnswer]] = deque()
        self.in_flight = False  # one batch at a time: batches reach Redis in arrival order
        self.timer: asyncio.TimerHandle | None = None
        self.batches = 0

    def submit_nowait(self, request: GrabRequest, on_answer: OnAnswer) -> None:
        self.queue.append((request, on_answer))
        self._kick()

    async def submit(self, request: GrabRequest) -> GrabAnswer:
        future: asyncio.Future[GrabAnswer] = asyncio.get_running_loop().create_future()

        def settle(result: GrabAnswer | Exception) -> None:
            if future.done():
                return
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.submit_nowait(request, settle)
        return await future

    def _kick(self) -> None:
        if not self.queue or self.in_flight or self.timer is not None:
            return
        if self.window_s > 0 and len(self.queue) < self.max_batch:
            self.timer = asyncio.get_running_loop().call_later(self.window_s, self._fire)
        else:
            self._fire()

    def cancel(self) -> None:
        """Answer every queued request with "shutting down" (the engine is stopping)."""
        if self.timer is not None:
            self.timer.cancel()
        while self.queue:
            _, on_answer = self.queue.popleft()
            self._deliver(on_answer, UnavailableError("the engine is shutting down"))

    @staticmethod
    def _deliver(on_answer: OnAnswer, result: GrabAnswer | Exception) -> None:
        try:
            on_answer(result)
        except Exception:
            log.exception("a grab answer callback failed")

    def _fire(self) -> None:
        self.timer = None
        if not self.queue or self.in_flight:
            return
        batch = [self.queue.popleft() for _ in range(min(self.max_batch, len(self.queue)))]
        self.in_flight = True
        self.batches += 1
        METRICS.grab_batch_size.observe(len(batch))
        asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[GrabRequest, OnAnswer]]) -> None:
        results: list[GrabAnswer] | Exception
        try:
            results = await self.run([request for request, _ in batch])
        except Exception as exc:  # the whole batch failed (Redis down): fail each request
            results = exc
        except BaseException:  # cancelled: the engine is stopping
            self.in_flight = False
            raise
        self.in_flight = False
        self._kick()
        try:
            if self.in_flight:
                # Let the next batch's task send its script call before this one writes
                # its answers, so Redis runs it meanwhile. Its reply is read on a later turn
                # of the loop, after these answers are written: they go out in batch order.
                await asyncio.sleep(0)
        finally:
            if isinstance(results, Exception):
                for _, on_answer in batch:
                    self._deliver(on_answer, results)
            else:
                for (_, on_answer), answer in zip(batch, results, strict=True):
                    self._deliver(on_answer, answer)
            if not self.queue and not self.in_flight:
                self.on_idle()


class Stock:
    def __init__(self, redis: Redis, scripts: Scripts, *, outbox_maxlen: int, max_batch: int = 256,
                 window_s: float = 0.0, meter: Meter | None = None) -> None:  # fmt: skip
        self.redis = redis
        self.meter = meter or off()
        self.scripts = scripts
        self.outbox_maxlen = outbox_maxlen
        self.max_batch = max_batch
        self.window_s = window_s
        self.batchers: dict[tuple[str, str], GrabBatcher] = {}
        # When each (room, sale) last had a batch answered on this process (monotonic s):
        # a rush. Only sales that exist are noted, so it grows with the rooms' sales.
        self.grabbed_at: dict[tuple[str, str], float] = {}

    # ---- grab -----------------------------------------------------------------------------

    async def grab(self, room: str, sale_id: str, request: GrabRequest) -> GrabAnswer:
        """One viewer's grab, batched with others arriving for the same sale."""
        return await self._batcher(room, sale_id).submit(request)

    def grab_nowait(
        self, room: str, sale_id: str, request: GrabRequest, on_answer: OnAnswer
    ) -> None:
        """The same, answering through `on_answer` (called from the batch's completion)."""
        self._batcher(room, sale_id).submit_nowait(request, on_answer)

    def answering(self, room: str) -> bool:
        """Whether grabs of the room wait for their answers on this process (queued or in
        a script call): a batcher exists exactly while it has work."""
        return any(batch_room == room for batch_room, _ in self.batchers)

    def grabbed_within(self, room: str, sale_id: str, seconds: float) -> bool:
        """Whether this process took a grab of the sale in the last `seconds`."""
        at = self.grabbed_at.get((room, sale_id))
        return at is not None and time.monotonic() - at < seconds

    def _batcher(self, room: str, sale_id: str) -> GrabBatcher:
        key = (room, sale_id)
        batcher = self.batchers.get(key)
        if batcher is None:  # only a valid sale id gets one: a sale's next grabs find it
            check_sale_id(sale_id)
            batcher = self.batchers[key] = GrabBatcher(
                lambda batch: self.grab_batch(room, sale_id, batch),
                max_batch=self.max_batch,
                window_s=self.window_s,
                on_idle=lambda: self._forget(key),
            )
        return batcher

    def _forget(self, key: tuple[str, str]) -> None:
        self.batchers.pop(key, None)

    async def grab_batch(self, room: str, sale_id: str, batch: list[GrabRequest],
                         *, at_ms: int | None = None) -> list[GrabAnswer]:  # fmt: skip
        """One script call for a batch (the batcher's runner; tests call it directly)."""
        args: list[str | bytes | int | float] = [
            "" if at_ms is None else at_ms,
            self.outbox_maxlen,
            "1" if self.meter.enabled else "0",
        ]
        for request in batch:
            args += [request.user, request.request_id, request.quantity]
        results = await self.scripts.grab(
            self.redis,
            [
                keys.sale(room, sale_id),
                keys.sale_reservations(room, sale_id),
                keys.sale_users(room, sale_id),
                keys.sale_answers(room, sale_id),
                keys.expiry(room),
                keys.outbox(room),
                keys.show_metrics(room),
            ],
            args,
        )
        # The script counted the batch's attempts, results and reservations in the show
        # metrics (each request once, when first answered: a retry gets the stored answer).
        answers = [GrabAnswer(orjson.loads(raw[1:]), raw[:1] == b"1") for raw in results]
        if answers and answers[0].status != "sale_not_found":
            self.grabbed_at[(room, sale_id)] = time.monotonic()
        return answers

    # ---- reservations ---------------------------------------------------------------------

    async def _release(self, room: str, sale_id: str, *, mode: str, owner: str, ids: list[str],
                       at_ms: int | None) -> list[str]:  # fmt: skip
        results = await self.scripts.release(
            self.redis,
            sale_keys(room, sale_id),
            [
                "" if at_ms is None else at_ms,
                self.outbox_maxlen,
                keys.room_bus(room),
                mode,
                owner,
                *ids,
            ],
        )
        return [text(r) for r in results]

    async def release(
        self, room: str, reservation_id: str, user: str, *, at_ms: int | None = None
    ) -> None:
        """A viewer gives a held reservation back."""
        sale_id = sale_of_reservation(reservation_id)
        [outcome] = await self._release(
            room, sale_id, mode="release", owner=user, ids=[reservation_id], at_ms=at_ms
        )
        if outcome == "released":
            return
        if outcome == "not_found":
            raise NotFoundError(f"no reservation {reservation_id!r}", code="reservation_not_found")
        if outcome == "not_yours":
            raise ForbiddenError("that reservation is someone else's", code="forbidden")
        if outcome == "in_order":
            raise ConflictError("the reservation is in an order; cancel the order instead",
                                code="reservation_in_order")  # fmt: skip
        state = outcome.partition(":")[2]
        raise ConflictError(f"the reservation is {state}, not held", code="reservation_not_held",
                            details={"state": state})  # fmt: skip

    async def release_many(self, room: str, sale_id: str, reservation_ids: list[str], owner: str,
                           *, at_ms: int | None = None) -> list[str]:  # fmt: skip
        """Give back several of one owner's holds (a cancelled order's)."""
        return await self._release(
            room, sale_id, mode="release", owner=owner, ids=reservation_ids, at_ms=at_ms
        )

    async def expire(self, room: str, sale_id: str, reservation_ids: list[str],
                     *, at_ms: int | None = None) -> list[str]:  # fmt: skip
        """Return holds whose time is up (the sweeper); others are left alone."""
        return await self._release(
            room, sale_id, mode="expire", owner="", ids=reservation_ids, at_ms=at_ms
        )

    async def due(self, room: str, at_ms: int, limit: int) -> list[str]:
        """Reservation ids of the room whose hold has run out by `at_ms`."""
        ids = await self.redis.zrangebyscore(keys.expiry(room), "-inf", at_ms, start=0, num=limit)
        return [text(i) for i in ids]

    async def confirm(self, room: str, reservation_id: str, order_id: str,
                      *, at_ms: int | None = None) -> tuple[str, int]:  # fmt: skip
        """Held -> sold (checkout calls this); returns (user, units). Fails cleanly, changing
        nothing, for a reservation that was released, expired or already sold."""
        sale_id = sale_of_reservation(reservation_id)
        result = await self.scripts.confirm(
            self.redis,
            [keys.sale(room, sale_id), keys.sale_reservations(room, sale_id), keys.expiry(room),
             keys.outbox(room)],
            ["" if at_ms is None else at_ms, self.outbox_maxlen, reservation_id, order_id],
        )  # fmt: skip
        if result[0] == b"ok":
            return text(result[1]), int(result[2])
        code, state = text(result[1]), text(result[2])
        if code == "not_found":
            raise NotFoundError(f"no reservation {reservation_id!r}", code="reservation_not_found")
        if code == "expired":
            raise ConflictError("the reservation's hold has expired", code="reservation_expired")
        raise ConflictError(f"the reservation is {state}, not held", code="reservation_not_held",
                            details={"state": state})  # fmt: skip

    async def reservation(self, room: str, reservation_id: str) -> dict[str, Any]:
        sale_id = sale_of_reservation(reservation_id)
        raw = await self.redis.hget(keys.sale_reservations(room, sale_id), reservation_id)
        if raw is None:
            raise NotFoundError(f"no reservation {reservation_id!r}", code="reservation_not_found")
        record: dict[str, Any] = orjson.loads(raw)
        return {
            "id": reservation_id,
            "sale": sale_id,
            "user": record["u"],
            "quantity": record["q"],
            "state": record["s"],
            "expires_at": record["e"],
            "created_at": record["c"],
            "price": record.get("p"),  # set on awards (auction lots, prizes); else the sale's
        }

    async def held_by(
        self, room: str, user: str, sale_ids: list[str], now: int
    ) -> list[dict[str, Any]]:
        """`user`'s reservations still held in these sales (not expired at `now`, not in an
        order), oldest first: what a page reloaded, or the same user's second phone, shows
        as "reserved". Only the sales where the user holds or bought units are read, whole
        (a sale's reservations are at most its allotment)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sale_id in sale_ids:
                pipe.hget(keys.sale_users(room, sale_id), user)
            units = await pipe.execute()
        held: list[dict[str, Any]] = []
        for sale_id, count in zip(sale_ids, units, strict=True):
            if not count or int(count) <= 0:
                continue
            records = await self.redis.hgetall(keys.sale_reservations(room, sale_id))
            for rid, raw in records.items():
                record = orjson.loads(raw)
                # In an order it stays "held" until paid, but is no longer open to check out.
                open_hold = record["s"] == "held" and "o" not in record and record["e"] > now
                if record["u"] == user and open_hold:
                    held.append({"id": text(rid), "sale": sale_id, "quantity": record["q"],
                                 "expires_at": record["e"], "created_at": record["c"],
                                 "price": record.get("p")})  # fmt: skip
        return sorted(held, key=lambda r: (r["created_at"], r["id"]))

    async def award(self, room: str, sale_id: str, user: str, ref: str, *, units: int,
                    price: int, hold_ms: int) -> dict[str, Any]:  # fmt: skip
        """Reserve `units` of a private sale for `user` at `price` (engine/commerce/lua/award.lua),
        once per `ref`. The answer as a grab's: status "reserved" (with the reservation) or
        "sold_out"; `replayed` when this ref was awarded before."""
        result = await self.scripts.award(
            self.redis,
            [
                *sale_keys(room, check_sale_id(sale_id))[:3],
                keys.sale_answers(room, sale_id),
                keys.expiry(room),
                keys.outbox(room),
            ],
            ["", self.outbox_maxlen, user, ref, units, price, hold_ms],
        )
        answer: dict[str, Any] = orjson.loads(result[1])
        if answer["status"] == "sale_not_found":
            raise NotFoundError(f"no sale {sale_id!r} in this room", code="sale_not_found")
        answer["replayed"] = result[0] == b"1"
        return answer

    # ---- waitlist --------------------------------------------------------------------------

    async def join_waitlist(
        self, room: str, sale_id: str, user: str, *, at_ms: int | None = None
    ) -> int:
        """Queue a viewer for units that come back; returns their 1-based position."""
        result = await self.scripts.waitlist_join(
            self.redis,
            [keys.sale(room, check_sale_id(sale_id)), keys.sale_users(room, sale_id),
             keys.sale_waitlist(room, sale_id), keys.sale_waiting(room, sale_id)],
            ["" if at_ms is None else at_ms, user],
        )  # fmt: skip
        if result[0] == b"ok":
            return int(result[1])
        code = text(result[1])
        messages = {
            "sale_not_found": (NotFoundError, f"no sale {sale_id!r} in this room"),
            "not_started": (ConflictError, "the sale has not started"),
            "ended": (ConflictError, "the sale has ended"),
            "available": (ConflictError, "units are available: grab instead"),
            "limit_reached": (ConflictError, "you already hold as many as the sale allows"),
        }
        cls, message = messages[code]
        wire = {"not_started": "sale_not_started", "ended": "sale_ended",
                "available": "sale_available"}.get(code, code)  # fmt: skip
        raise cls(message, code=wire)

    async def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.cancel()
        self.batchers.clear()
