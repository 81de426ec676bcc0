"""engine.commerce.stock against a model: random grabs, releases, expiry sweeps, confirmations,
top-ups, stops and waitlist joins run on the real Lua scripts in Redis and on a plain-Python
model of what those scripts should do. After every step the two must agree on every answer,
the sale's counters, each reservation, each user's units and the waitlist; stock must add up,
no user may exceed the limit, and `audit_room` must pass.

The machine owns the clock (every script takes `at_ms`). Hypothesis rules are synchronous,
so the Redis calls run on one event loop (an `asyncio.Runner`) and one client that the test
function owns and every example shares; each example has a fresh room and sale.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from engine.commerce.catalog import Catalog, ProductTerms
from engine.commerce.sales import Sale, SaleState, SaleStore, SaleTerms
from engine.commerce.stock import GrabRequest, Stock
from engine.core.errors import LivecartError
from engine.insights.audit import Report, audit_room
from engine.rooms.rooms import RoomStore, RoomTerms
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

T = TypeVar("T")
USERS = ("ana", "ben", "cyd", "dee")
SKU = "TEE-M"
PRICE = 2500
CURRENCY = "EUR"
BASE_MS = 1_760_000_000_000
SCRIPTS = Scripts()  # loaded into Redis once, by the test function

# ("ok", value) or ("error", exception class name, wire code, details)
Outcome = tuple[Any, ...]


def ok(value: Any = None) -> Outcome:
    return ("ok", value)


def error(kind: str, code: str, details: dict[str, Any] | None = None) -> Outcome:
    return ("error", kind, code, details or {})


@dataclass
class SaleModel:
    """What the stock scripts should do to one sale, in plain Python.

    `records` mirror the reservation JSON stored in Redis, `users` the per-user units hash
    (entries stay once created, at 0 after a release), `answers` the idempotency hash.
    """

    id: str
    limit: int
    hold_ms: int
    allotment: int
    created_at: int
    starts_at: int
    ends_at: int
    topups: int = 0
    available: int = 0
    reserved: int = 0
    sold: int = 0
    seq: int = 0
    stopped_at: int | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    waitlist: list[str] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)  # reservation ids touched since last check

    def __post_init__(self) -> None:
        self.available = self.allotment

    @property
    def units(self) -> int:
        return self.allotment + self.topups

    def state(self, now: int) -> SaleState:
        if now >= self.ends_at:
            return SaleState.ENDED
        if now < self.starts_at:
            return SaleState.SCHEDULED
        return SaleState.LIVE if self.available > 0 else SaleState.SOLD_OUT

    def summary(self) -> tuple[int, int, int, int]:
        return self.ends_at, self.units, self.available, self.reserved

    def held(self) -> dict[str, int]:
        return {rid: r["e"] for rid, r in self.records.items() if r["s"] == "held"}

    # ---- changes -----------------------------------------------------------------------

    def _reserve(self, now: int, user: str, quantity: int, *, waitlist: bool) -> str:
        self.seq += 1
        rid = f"{self.id}.{self.seq}"
        self.available -= quantity
        self.reserved += quantity
        self.users[user] = self.users.get(user, 0) + quantity
        record: dict[str, Any] = {
            "u": user, "q": quantity, "s": "held", "e": now + self.hold_ms, "c": now,
        }  # fmt: skip
        if waitlist:
            record["w"] = 1
        self.records[rid] = record
        self.changed.add(rid)
        return rid

    def _give_back(self, now: int, rid: str, state: str) -> None:
        record = self.records[rid]
        record["s"] = state
        record["x"] = now
        self.changed.add(rid)
        self.users[record["u"]] -= record["q"]
        self.reserved -= record["q"]
        self.available += record["q"]

    def serve_waitlist(self, now: int) -> None:
        """Units back in stock go one each to waiting users in arrival order; users at their
        limit lose their place; nothing is served once the sale has ended."""
        if now >= self.ends_at:
            return
        while self.available > 0 and self.waitlist:
            user = self.waitlist.pop(0)
            if self.users.get(user, 0) + 1 <= self.limit:
                self._reserve(now, user, 1, waitlist=True)

    # ---- operations ----------------------------------------------------------------------

    def grab(self, now: int, user: str, request: str, quantity: int) -> tuple[dict[str, Any], bool]:
        key = f"{user} {request}"
        if key in self.answers:
            return self.answers[key], True
        holding = self.users.get(user, 0)
        answer: dict[str, Any]
        # The end is checked before the start, as grab.lua does: a sale stopped during its
        # countdown (ends_at < starts_at) has ended, as its state says.
        if now >= self.ends_at:
            answer = {"status": "ended"}
        elif now < self.starts_at:
            answer = {"status": "not_started", "starts_at": self.starts_at}
        elif holding + quantity > self.limit:
            answer = {"status": "limit_reached", "limit": self.limit, "holding": holding}
        elif quantity > self.available:
            answer = {"status": "sold_out", "available": self.available}
        else:
            rid = self._reserve(now, user, quantity, waitlist=False)
            answer = {
                "status": "reserved", "reservation": rid, "quantity": quantity,
                "expires_at": now + self.hold_ms, "price": PRICE, "currency": CURRENCY,
            }  # fmt: skip
        self.answers[key] = answer
        return answer, False

    def release(self, now: int, user: str, rid: str) -> Outcome:
        record = self.records.get(rid)
        if record is None:
            return error("NotFoundError", "reservation_not_found")
        if record["s"] != "held":
            return error("ConflictError", "reservation_not_held", {"state": record["s"]})
        if record["u"] != user:
            return error("ForbiddenError", "forbidden")
        self._give_back(now, rid, "released")
        self.serve_waitlist(now)
        return ok()

    def due(self, now: int) -> list[str]:
        """What the sweeper finds: held ids with expires_at <= now, by (time, id)."""
        return [rid for e, rid in sorted((e, rid) for rid, e in self.held().items()) if e <= now]

    def expire(self, now: int, ids: list[str]) -> list[str]:
        results = []
        for rid in ids:
            record = self.records.get(rid)
            if record is None:
                results.append("not_found")
            elif record["s"] != "held":
                results.append(f"not_held:{record['s']}")
            elif record["e"] > now:
                results.append("not_expired")
            else:
                self._give_back(now, rid, "expired")
                results.append("expired")
        if "expired" in results:
            self.serve_waitlist(now)
        return results

    def confirm(self, now: int, rid: str, order: str) -> Outcome:
        record = self.records.get(rid)
        if record is None:
            return error("NotFoundError", "reservation_not_found")
        if record["s"] != "held":
            return error("ConflictError", "reservation_not_held", {"state": record["s"]})
        if record["e"] <= now:
            return error("ConflictError", "reservation_expired")
        record.update(s="sold", o=order, x=now)
        self.changed.add(rid)
        self.reserved -= record["q"]
        self.sold += record["q"]
        return ok((record["u"], record["q"]))

    def top_up(self, now: int, units: int) -> Outcome:
        if now >= self.ends_at:
            return error("ConflictError", "sale_ended")
        self.topups += units
        self.available += units
        self.serve_waitlist(now)
        return ok(self.summary())

    def stop(self, now: int) -> Outcome:
        if now >= self.ends_at:
            return error("ConflictError", "sale_ended")
        self.ends_at = now
        self.stopped_at = now
        self.waitlist.clear()
        return ok(self.summary())

    def join(self, now: int, user: str) -> Outcome:
        if now >= self.ends_at:
            return error("ConflictError", "sale_ended")
        if now < self.starts_at:
            return error("ConflictError", "sale_not_started")
        if user in self.waitlist:
            return ok(self.waitlist.index(user) + 1)
        if self.available > 0:
            return error("ConflictError", "sale_available")
        if self.users.get(user, 0) + 1 > self.limit:
            return error("ConflictError", "limit_reached")
        self.waitlist.append(user)
        return ok(len(self.waitlist))


@dataclass(frozen=True)
class Observed:
    sale: Sale
    records: dict[str, dict[str, Any]]  # reservation id -> the stored JSON record
    reservations: list[dict[str, Any]]  # Stock.reservation of the ids the last step touched
    users: dict[str, int]
    waitlist: list[str]
    waiting: set[str]
    answers: dict[str, dict[str, Any]]
    expiry: dict[str, int]
    audit: Report


def started(machine: StockMachine) -> bool:
    """Most rules wait for the sale to start: before it nothing can be reserved."""
    return machine.model is not None and machine.now >= machine.model.starts_at


class StockMachine(RuleBasedStateMachine):
    # One event loop and one client on it for every example, set by the test function
    # (a client per example would pay for a new connection each time, shrinking included).
    runner: ClassVar[asyncio.Runner]
    client: ClassVar[aioredis.Redis]

    def __init__(self) -> None:
        super().__init__()
        self.redis = self.client
        self.catalog = Catalog(self.redis, SCRIPTS, 1000)
        self.sales = SaleStore(self.redis, SCRIPTS, self.catalog, 1000, 10000)
        self.stock = Stock(self.redis, SCRIPTS, outbox_maxlen=10000)
        self.room = f"model-{secrets.token_hex(5)}"
        self.now = 0
        self.model: SaleModel | None = None
        self.requests: list[str] = []  # request ids used so far, by anyone
        self.orders = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def attempt(self, coro: Coroutine[Any, Any, Any]) -> Outcome:
        try:
            return ok(self.run(coro))
        except LivecartError as exc:
            return error(type(exc).__name__, exc.code, exc.details)

    @property
    def sale(self) -> SaleModel:
        assert self.model is not None
        return self.model

    def pick_reservation(self, data: st.DataObject) -> str:
        """Mostly a reservation seen so far (anyone's, in any state), rarely one that never
        existed."""
        seen = sorted(self.sale.records)
        if not seen or data.draw(st.integers(0, 9), label="unknown id") == 0:
            return f"{self.sale.id}.{self.sale.seq + 1}"
        return data.draw(st.sampled_from(seen), label="reservation")

    def teardown(self) -> None:
        async def clean() -> None:
            room, sale_id = self.room, "s1"
            await self.redis.delete(
                keys.room_meta(room), keys.room_stream(room), keys.product_counter(room),
                keys.products(room), keys.skus(room), keys.lineup(room),
                keys.sale_counter(room), keys.sales(room), keys.expiry(room), keys.outbox(room),
                keys.sale(room, sale_id), keys.sale_reservations(room, sale_id),
                keys.sale_users(room, sale_id), keys.sale_answers(room, sale_id),
                keys.sale_waitlist(room, sale_id), keys.sale_waiting(room, sale_id),
            )  # fmt: skip
            await self.redis.srem(keys.rooms_index(), room)

        self.run(clean())

    # ---- setup ---------------------------------------------------------------------------

    @initialize(
        terms=st.fixed_dictionaries(
            {
                "allotment": st.integers(1, 6),
                "per_user_limit": st.integers(1, 3),
                "hold_s": st.integers(10, 60),
                "countdown_s": st.integers(0, 5),
                "duration_s": st.integers(30, 120),
            }
        ),
        offset_ms=st.integers(0, 10**6),
        skip_countdown=st.booleans(),
    )
    def create_sale(self, terms: dict[str, int], offset_ms: int, skip_countdown: bool) -> None:
        """A fresh room with one product and one sale; half the examples skip the countdown."""
        self.now = BASE_MS + offset_ms

        async def setup() -> str:
            await RoomStore(self.redis, SCRIPTS, 1000).create(
                "host-1", RoomTerms(id=self.room, title="Model show")
            )
            await self.catalog.create(
                self.room,
                ProductTerms(title="Tee", currency=CURRENCY,
                             skus=[{"sku": SKU, "list_price": PRICE}]),
            )  # fmt: skip
            sale_terms = SaleTerms(sku=SKU, **terms)
            sale = await self.sales.create(self.room, sale_terms, at_ms=self.now)
            return sale.id

        sale_id = self.run(setup())
        assert sale_id == "s1"
        starts = self.now + terms["countdown_s"] * 1000
        self.model = SaleModel(
            id=sale_id,
            limit=terms["per_user_limit"],
            hold_ms=terms["hold_s"] * 1000,
            allotment=terms["allotment"],
            created_at=self.now,
            starts_at=starts,
            ends_at=starts + terms["duration_s"] * 1000,
        )
        if skip_countdown:
            self.now = starts

    # ---- the clock -----------------------------------------------------------------------

    def boundaries(self) -> list[int]:
        times = {self.sale.starts_at, self.sale.ends_at, *self.sale.held().values()}
        return sorted(t for t in times if t >= self.now)

    @rule(data=st.data(), how=st.sampled_from(["a little", "a lot", "to a boundary"]))
    def advance(self, data: st.DataObject, how: str) -> None:
        """Let time pass: up to 3 s, up to 70 s, or onto (or 1 ms around) the start, the
        end or a hold's expiry."""
        if how == "to a boundary" and self.boundaries():
            target = data.draw(st.sampled_from(self.boundaries()), label="boundary")
            self.now = max(self.now, target + data.draw(st.sampled_from([-1, 0, 0, 1])))
        else:
            self.now += data.draw(st.integers(0, 3_000 if how == "a little" else 70_000))

    # ---- grabs ---------------------------------------------------------------------------

    def draw_request(self, data: st.DataObject) -> GrabRequest:
        user = data.draw(st.sampled_from(USERS), label="user")
        quantity = data.draw(st.integers(1, 3), label="quantity")
        if self.requests and data.draw(st.booleans(), label="reuse a request id"):
            request = data.draw(st.sampled_from(self.requests), label="request")
        else:
            request = self.new_request()
        return GrabRequest(user, request, quantity)

    def new_request(self) -> str:
        self.requests.append(f"q{len(self.requests) + 1}")
        return self.requests[-1]

    @rule(data=st.data(), size=st.sampled_from([1, 1, 2, 3, 4]))
    def grab(self, data: st.DataObject, size: int) -> None:
        """One script call for a batch of grabs, answered in order; a reused request id
        must get its first answer back, marked replayed (another user's id is a new
        request)."""
        self.grab_many([self.draw_request(data) for _ in range(size)])

    @precondition(started)
    @rule(quantities=st.lists(st.integers(1, 3), min_size=len(USERS), max_size=len(USERS)))
    def rush(self, quantities: list[int]) -> None:
        """The opening rush: every viewer grabs in one batch, then every viewer asks for
        the waitlist (most are refused; those who missed out queue in order)."""
        batch = [
            GrabRequest(u, self.new_request(), q) for u, q in zip(USERS, quantities, strict=True)
        ]
        self.grab_many(batch)
        self.join(list(USERS))

    def grab_many(self, batch: list[GrabRequest]) -> None:
        answers = self.run(self.stock.grab_batch(self.room, self.sale.id, batch, at_ms=self.now))
        for request, answer in zip(batch, answers, strict=True):
            body, replayed = self.sale.grab(self.now, request.user, request.request_id,
                                            request.quantity)  # fmt: skip
            assert (answer.body, answer.replayed) == (body, replayed), request

    # ---- reservations --------------------------------------------------------------------

    @precondition(started)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = self.pick_reservation(data)
        owner = self.sale.records.get(rid, {}).get("u", USERS[0])
        user = data.draw(st.one_of(st.just(owner), st.sampled_from(USERS)), label="user")
        got = self.attempt(self.stock.release(self.room, rid, user, at_ms=self.now))
        assert got == self.sale.release(self.now, user, rid), (rid, user)

    @precondition(started)
    @rule(data=st.data(), when=st.sampled_from(["now", "later", "at the next expiry"]))
    def sweep(self, data: st.DataObject, when: str) -> None:
        """The sweeper wakes up (now, up to 70 s later, or the very ms the next hold runs
        out), finds the holds that are due and expires them."""
        upcoming = [e for e in self.sale.held().values() if e >= self.now]
        if when == "later":
            self.now += data.draw(st.integers(0, 70_000))
        elif when == "at the next expiry" and upcoming:
            self.now = min(upcoming)
        ids = self.run(self.stock.due(self.room, self.now, 1000))
        assert ids == self.sale.due(self.now)
        results = self.run(self.stock.expire(self.room, self.sale.id, ids, at_ms=self.now))
        assert results == self.sale.expire(self.now, ids)
        assert results == ["expired"] * len(ids)

    @precondition(started)
    @rule(data=st.data())
    def expire_any(self, data: st.DataObject) -> None:
        """A late or duplicate sweeper: any ids, some not due, held twice or gone."""
        ids = [self.pick_reservation(data) for _ in range(data.draw(st.integers(1, 3)))]
        results = self.run(self.stock.expire(self.room, self.sale.id, ids, at_ms=self.now))
        assert results == self.sale.expire(self.now, ids), ids

    @precondition(started)
    @rule(data=st.data(), late=st.sampled_from([None, None, None, 0, 1]))
    def confirm(self, data: st.DataObject, late: int | None) -> None:
        """Checkout confirms a reservation; `late`: payment lands that many ms after the
        hold ran out (and the sweeper has not run), which must fail as expired."""
        rid = self.pick_reservation(data)
        record = self.sale.records.get(rid)
        if late is not None and record is not None and record["s"] == "held":
            self.now = max(self.now, record["e"] + late)
        self.orders += 1
        order = f"o-{self.orders}"
        got = self.attempt(self.stock.confirm(self.room, rid, order, at_ms=self.now))
        assert got == self.sale.confirm(self.now, rid, order), rid

    # ---- the host ------------------------------------------------------------------------

    async def _adjust(self, action: str, amount: int = 0) -> tuple[int, int, int, int]:
        sale = await self.sales.adjust(self.room, self.sale.id, action, amount, at_ms=self.now)
        return sale.ends_at, sale.units, sale.available, sale.reserved

    @rule(units=st.integers(1, 3))
    def top_up(self, units: int) -> None:
        got = self.attempt(self._adjust("topup", units))
        assert got == self.sale.top_up(self.now, units)

    @rule(chance=st.integers(0, 3))
    def stop(self, chance: int) -> None:
        """The host ends the sale now: rarely (it ends the interesting part of an example),
        more often while viewers wait (the waitlist must be emptied)."""
        if chance > (1 if self.sale.waitlist else 0):
            return
        got = self.attempt(self._adjust("stop"))
        assert got == self.sale.stop(self.now)

    # ---- the waitlist --------------------------------------------------------------------

    def sold_out(self) -> bool:
        return self.model is not None and self.sale.state(self.now) is SaleState.SOLD_OUT

    @rule(users=st.lists(st.sampled_from(USERS), min_size=1, max_size=4))
    def join_waitlist(self, users: list[str]) -> None:
        """A few viewers ask in a row (someone asking twice keeps their position)."""
        self.join(users)

    @precondition(sold_out)
    @rule(users=st.lists(st.sampled_from(USERS), min_size=1, max_size=4))
    def join_sold_out(self, users: list[str]) -> None:
        """The same, more often while it matters: the sale is sold out."""
        self.join(users)

    def join(self, users: list[str]) -> None:
        for user in users:
            got = self.attempt(
                self.stock.join_waitlist(self.room, self.sale.id, user, at_ms=self.now)
            )
            assert got == self.sale.join(self.now, user), user

    # ---- invariants ----------------------------------------------------------------------

    async def observe(self) -> Observed:
        """Everything Redis holds about the sale."""
        room, sale_id = self.room, self.sale.id

        async def hashes() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.sale_reservations(room, sale_id))
                pipe.hgetall(keys.sale_users(room, sale_id))
                pipe.lrange(keys.sale_waitlist(room, sale_id), 0, -1)
                pipe.smembers(keys.sale_waiting(room, sale_id))
                pipe.hgetall(keys.sale_answers(room, sale_id))
                pipe.zrange(keys.expiry(room), 0, -1, withscores=True)
                return await pipe.execute()

        records, users, waitlist, waiting, answers, expiry = await hashes()
        reservations = [
            await self.stock.reservation(room, rid) for rid in sorted(self.sale.changed)
        ]
        return Observed(
            sale=await self.sales.get(room, sale_id),
            records={text(rid): orjson.loads(record) for rid, record in records.items()},
            reservations=reservations,
            users={text(user): int(units) for user, units in users.items()},
            waitlist=[text(user) for user in waitlist],
            waiting={text(user) for user in waiting},
            answers={text(key): orjson.loads(answer) for key, answer in answers.items()},
            expiry={text(rid): int(score) for rid, score in expiry},
            audit=await audit_room(self.redis, room),
        )

    @invariant()
    def redis_agrees_with_model(self) -> None:
        seen, m = self.run(self.observe()), self.sale
        sale = seen.sale
        # the sale: counters, terms, clock and derived state
        assert (sale.allotment, sale.topups, sale.available, sale.reserved, sale.sold) == (
            m.allotment, m.topups, m.available, m.reserved, m.sold,
        )  # fmt: skip
        assert (sale.limit, sale.hold_ms, sale.created_at, sale.starts_at, sale.ends_at) == (
            m.limit, m.hold_ms, m.created_at, m.starts_at, m.ends_at,
        )  # fmt: skip
        assert (sale.stopped_at, sale.price, sale.currency) == (m.stopped_at, PRICE, CURRENCY)
        assert sale.state(self.now) == m.state(self.now)
        # each reservation, as stored and as Stock.reservation reads it; the expiry index
        assert seen.records == m.records
        assert [
            (r["id"], r["user"], r["quantity"], r["state"], r["expires_at"], r["created_at"])
            for r in seen.reservations
        ] == [(rid, m.records[rid]["u"], m.records[rid]["q"], m.records[rid]["s"],
               m.records[rid]["e"], m.records[rid]["c"]) for rid in sorted(m.changed)]  # fmt: skip
        m.changed.clear()
        assert seen.expiry == m.held()
        # each user's units, the waitlist in order, the stored grab answers
        assert seen.users == m.users
        assert seen.waitlist == m.waitlist
        assert seen.waiting == set(m.waitlist)
        assert seen.answers == m.answers
        assert seen.audit.ok, seen.audit.render()

    @invariant()
    def stock_adds_up(self) -> None:
        """On the model, which the invariant above ties to Redis (the audit checks Redis)."""
        m = self.sale
        assert m.available + m.reserved + m.sold == m.units
        assert min(m.available, m.reserved, m.sold) >= 0
        units: dict[str, int] = {}
        for record in m.records.values():
            if record["s"] in {"held", "sold"}:
                units[record["u"]] = units.get(record["u"], 0) + record["q"]
        assert {user: n for user, n in m.users.items() if n} == units
        assert all(n <= m.limit for n in units.values()), units
        assert m.reserved == sum(r["q"] for r in m.records.values() if r["s"] == "held")
        assert m.sold == sum(r["q"] for r in m.records.values() if r["s"] == "sold")


# A pass takes seconds; shrinking a failure can take minutes (Hypothesis stops at 5): let it
# finish and report the minimal example instead of being cut off by the default timeout.
@pytest.mark.timeout(420)
def test_stock_agrees_with_model(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with asyncio.Runner() as runner:
        client = aioredis.Redis.from_url(redis_url)
        monkeypatch.setattr(StockMachine, "runner", runner, raising=False)
        monkeypatch.setattr(StockMachine, "client", client, raising=False)
        try:
            runner.run(SCRIPTS.load(client))
            run_state_machine_as_test(
                StockMachine,
                settings=settings(
                    max_examples=100,
                    stateful_step_count=30,
                    deadline=None,
                    # one mismatch is enough to report; skip the slow "explain" phase
                    report_multiple_bugs=False,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                ),
            )
        finally:
            runner.run(client.aclose())
