"""The audit's framework and its stock half: the report (named checks, each ok or with its
problems), the room's atomic snapshot, and the checks of every sale. Every context adds its
own checks on the same snapshot (engine/commerce/audit_orders.py, the interactive features'
audit modules); engine/insights/audit.py runs them all (`livecart audit ROOM`).

The room is read in one atomic snapshot (MULTI/EXEC) and each sale is checked:
- stock adds up: available + reserved + sold = allotment + top-ups, none negative;
- the counters match the reservation records (held units = reserved, sold units = sold);
- every user's units match their reservations and stay within the per-user limit;
- the expiry index holds exactly the held reservations, at their expiry time;
- the waitlist has no one twice and matches its member set.
Coupons, orders and payments are checked against each other and against the stock in
engine/commerce/audit_orders.py.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.commerce.sales import Sale
from engine.store import keys
from engine.store.redis_client import text


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Report:
    room: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, problems: list[str], fine: str) -> None:
        self.checks.append(Check(name, not problems, "; ".join(problems[:20]) or fine))

    def to_wire(self) -> dict[str, Any]:
        return {"room": self.room, "ok": self.ok, "checks": [c.to_wire() for c in self.checks]}

    def render(self) -> str:
        lines = [f"audit of room {self.room}: {'OK' if self.ok else 'FAILED'}"]
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _stock_adds_up(sale: Sale) -> tuple[list[str], str]:
    counters = {"available": sale.available, "reserved": sale.reserved, "sold": sale.sold}
    problems = [f"{label} is {value}" for label, value in counters.items() if value < 0]
    total = sum(counters.values())
    if total != sale.units:
        problems.append(
            f"available {sale.available} + reserved {sale.reserved} + sold {sale.sold} = "
            f"{total}, not allotment {sale.allotment} + top-ups {sale.topups} = {sale.units}"
        )
    fine = (
        f"{sale.available} available + {sale.reserved} reserved + {sale.sold} sold = {sale.units}"
    )
    return problems, fine


def _records_match(sale: Sale, reservations: dict[str, Any]) -> tuple[list[str], str]:
    units: Counter[str] = Counter()
    for record in reservations.values():
        units[record["s"]] += record["q"]
    problems = []
    if units["held"] != sale.reserved:
        problems.append(f"held reservations hold {units['held']} units, counter {sale.reserved}")
    if units["sold"] != sale.sold:
        problems.append(f"sold reservations hold {units['sold']} units, counter {sale.sold}")
    states = ", ".join(f"{state} {n}" for state, n in sorted(units.items()))
    return problems, f"{len(reservations)} reservations; units {states or 'none'}"


def _users_within_limit(
    sale: Sale, reservations: dict[str, Any], counted: dict[str, int]
) -> tuple[list[str], str]:
    units: dict[str, int] = defaultdict(int)
    for record in reservations.values():
        if record["s"] in {"held", "sold"}:
            units[record["u"]] += record["q"]
    problems = []
    for user in sorted(set(units) | {u for u, n in counted.items() if n}):
        if counted.get(user, 0) != units.get(user, 0):
            problems.append(
                f"{user} is counted at {counted.get(user, 0)} but holds {units.get(user, 0)}"
            )
        if units.get(user, 0) > sale.limit:
            problems.append(f"{user} holds {units[user]}, above the limit {sale.limit}")
    return problems, f"{len(units)} buyers, at most {max(units.values(), default=0)} units each"


def _holds_indexed(reservations: dict[str, Any], expiry: dict[str, int]) -> tuple[list[str], str]:
    held = {rid: rec for rid, rec in reservations.items() if rec["s"] == "held"}
    problems = [f"held {rid} is not in the expiry index" for rid in sorted(set(held) - set(expiry))]
    for rid in sorted(set(expiry) - set(held)):
        state = reservations[rid]["s"] if rid in reservations else "missing"
        problems.append(f"{rid} is in the expiry index but {state}")
    for rid in sorted(set(held) & set(expiry)):
        if expiry[rid] != held[rid]["e"]:
            problems.append(f"{rid} expires at {held[rid]['e']}, indexed at {expiry[rid]}")
    return problems, f"{len(held)} holds indexed"


def audit_sale(report: Report, sale: Sale, snapshot: list[Any]) -> None:
    _, raw_reservations, raw_users, raw_expiry, raw_waitlist, raw_waiting = snapshot
    reservations = {rid: orjson.loads(rec) for rid, rec in _pairs(raw_reservations).items()}
    counted = {user: int(units) for user, units in _pairs(raw_users).items()}
    expiry = {
        rid: int(float(score))
        for rid, score in _pairs(raw_expiry).items()
        if rid.split(".")[0] == sale.id
    }
    name = f"sale {sale.id}"
    report.add(f"{name}: stock adds up", *_stock_adds_up(sale))
    report.add(f"{name}: reservations match the counters", *_records_match(sale, reservations))
    report.add(
        f"{name}: no user above the limit of {sale.limit}",
        *_users_within_limit(sale, reservations, counted),
    )
    report.add(f"{name}: every hold will expire", *_holds_indexed(reservations, expiry))
    waitlist = [text(u) for u in raw_waitlist]
    problems = []
    if len(waitlist) != len(set(waitlist)):
        problems.append("someone is on the waitlist twice")
    if set(waitlist) != {text(u) for u in raw_waiting}:
        problems.append("the waitlist and its member set differ")
    report.add(f"{name}: waitlist is consistent", problems, f"{len(waitlist)} waiting")


@dataclass
class Snapshot:
    """Everything the audit reads of one room, read in one MULTI/EXEC (atomic: a consistent
    picture even while grabs, checkouts, payments and the sweepers keep running)."""

    room_exists: bool
    sales: dict[str, list[Any]]  # sale id -> [hash, reservations, users, expiry, waitlist, waiting]
    coupons: dict[str, dict[str, Any]]
    templates: dict[str, dict[str, Any]]
    issued: dict[str, int]
    drops: dict[str, dict[str, str]]
    holders: dict[str, int]
    orders: dict[str, dict[str, str]]
    payments: dict[str, dict[str, Any]]
    # Every sale's reservation records by id (decoded), for the checks of what holds them
    # (an auction's offer, a team's member): filled by the audit as it goes through sales.
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def order_lines(self, sale_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(order id, line) for every order line on `sale_id`, in order id order."""
        for order_id, order in sorted(self.orders.items()):
            for line in orjson.loads(order["detail"])["lines"]:
                if line["sale"] == sale_id:
                    yield order_id, line


async def _read(redis: Redis, room: str, sale_ids: list[str], drop_ids: list[str],
                order_ids: list[str]) -> tuple[list[Any], list[Any]]:  # fmt: skip
    async with redis.pipeline(transaction=True) as pipe:
        pipe.exists(keys.room_meta(room))
        pipe.zrange(keys.sales(room), 0, -1)
        pipe.zrange(keys.coupon_drops(room), 0, -1)
        pipe.zrange(keys.orders(room), 0, -1)
        pipe.hgetall(keys.coupons(room))
        pipe.hgetall(keys.coupon_templates(room))
        pipe.hgetall(keys.coupon_issued(room))
        pipe.hgetall(keys.coupon_holders(room))
        pipe.hgetall(keys.payments(room))
        pipe.zrange(keys.expiry(room), 0, -1, withscores=True)
        for sale_id in sale_ids:
            pipe.hgetall(keys.sale(room, sale_id))
            pipe.hgetall(keys.sale_reservations(room, sale_id))
            pipe.hgetall(keys.sale_users(room, sale_id))
            pipe.lrange(keys.sale_waitlist(room, sale_id), 0, -1)
            pipe.smembers(keys.sale_waiting(room, sale_id))
        for drop_id in drop_ids:
            pipe.hgetall(keys.coupon_drop(room, drop_id))
        for order_id in order_ids:
            pipe.hgetall(keys.order(room, order_id))
        results = await pipe.execute()
    return results[:10], results[10:]


def decoded(raw: dict[Any, Any]) -> dict[str, Any]:
    return {text(k): orjson.loads(v) for k, v in raw.items()}


async def snapshot(redis: Redis, room: str) -> Snapshot:
    ids: tuple[list[str], list[str], list[str]] = ([], [], [])
    for _ in range(5):
        head, rest = await _read(redis, room, *ids)
        listed = (
            [text(i) for i in head[1]],
            [text(i) for i in head[2]],
            [text(i) for i in head[3]],
        )
        if listed == ids:
            break
        ids = listed  # new sales, drops or orders appeared meanwhile: read again
    sale_ids, drop_ids, order_ids = ids
    expiry = head[9]
    sales = {}
    for n, sale_id in enumerate(sale_ids):
        sale_hash, reservations, users, waitlist, waiting = rest[5 * n : 5 * n + 5]
        sales[sale_id] = [sale_hash, reservations, users, expiry, waitlist, waiting]
    rest = rest[5 * len(sale_ids) :]
    return Snapshot(
        room_exists=bool(head[0]),
        sales=sales,
        coupons=decoded(head[4]),
        templates=decoded(head[5]),
        issued={text(k): int(v) for k, v in head[6].items()},
        holders={text(k): int(v) for k, v in head[7].items()},
        payments=decoded(head[8]),
        drops={d: {text(k): text(v) for k, v in raw.items()}
               for d, raw in zip(drop_ids, rest[: len(drop_ids)], strict=True)},
        orders={o: {text(k): text(v) for k, v in raw.items()}
                for o, raw in zip(order_ids, rest[len(drop_ids) :], strict=True)},
    )  # fmt: skip


def flat(mapping: dict[Any, Any]) -> list[Any]:
    return [item for pair in mapping.items() for item in pair]
