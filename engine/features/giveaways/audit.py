"""The giveaway half of `livecart audit`: every closed giveaway's draw re-verifies from its
record, its exclusions are exactly what the limits give when the room's closed giveaways
are replayed in closing order, and every winner has exactly their prize (a product: one
reservation of the giveaway's private sale, at price 0, and nobody else has one; a coupon:
one coupon of its private drop, and nobody else has one).

Giveaways (with their awards) are read first and the prize records after: a prize record is
written before its award is, and never removed, so an award that was read always finds its
record, while a winner whose award is still being given may already have one.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis

from engine.features.giveaways.draw import excluded_entrants
from engine.features.giveaways.model import Giveaway, GiveawayState, PrizeKind
from engine.store import keys
from engine.store.redis_client import text

if TYPE_CHECKING:
    from engine.commerce.audit import Report


async def _giveaways(redis: Redis, room: str) -> tuple[list[Giveaway], list[str], dict[str, str]]:
    """The room's giveaways, its closing order and its winners index, in one MULTI."""
    ids = [text(g) for g in await redis.zrange(keys.giveaways(room), 0, -1)]
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lrange(keys.giveaways_closed(room), 0, -1)
        pipe.hgetall(keys.giveaway_room_winners(room))
        for giveaway_id in ids:
            pipe.hgetall(keys.giveaway(room, giveaway_id))
            pipe.hlen(keys.giveaway_entrants(room, giveaway_id))
            pipe.hgetall(keys.giveaway_awards(room, giveaway_id))
        closed, won, *rest = await pipe.execute()
    giveaways = [
        Giveaway.from_hash(raw, int(count), awards)
        for raw, count, awards in zip(rest[::3], rest[1::3], rest[2::3], strict=True)
        if raw
    ]
    return giveaways, [text(g) for g in closed], {text(u): text(v) for u, v in won.items()}


async def _prize_records(redis: Redis, room: str,
                         giveaways: list[Giveaway]) -> dict[str, tuple[Any, Any]]:  # fmt: skip
    """Per giveaway with a prize: its sale's owner and reservations, or its drop and the
    awarded coupons' records (user -> record)."""
    with_prizes = [g for g in giveaways if g.prize_sale or g.prize_drop]
    given = {g.id: [(u, a["coupon"]) for u, a in g.awards.items() if "coupon" in a]
             for g in with_prizes}  # fmt: skip
    async with redis.pipeline(transaction=True) as pipe:
        for g in with_prizes:
            if g.prize_sale:
                pipe.hget(keys.sale(room, g.prize_sale), "private")
                pipe.hgetall(keys.sale_reservations(room, g.prize_sale))
            else:
                assert g.prize_drop is not None
                pipe.hgetall(keys.coupon_drop(room, g.prize_drop))
                for _, coupon in given[g.id]:
                    pipe.hget(keys.coupons(room), coupon)
        replies = iter(await pipe.execute())
    found: dict[str, tuple[Any, Any]] = {}
    for g in with_prizes:
        first = next(replies)
        if g.prize_sale:
            found[g.id] = (first, next(replies))
        else:
            found[g.id] = (first, {user: next(replies) for user, _ in given[g.id]})
    return found


def _draws(giveaways: list[Giveaway]) -> tuple[list[str], str]:
    problems, closed = [], 0
    for g in giveaways:
        if g.state is not GiveawayState.CLOSED:
            continue
        closed += 1
        if not g.seed_matches():
            problems.append(f"giveaway {g.id}: the seed does not match its commitment")
        elif not g.entrants_recorded():
            problems.append(f"giveaway {g.id}: the entrants are not a sorted list of "
                            f"{g.entrants_count} distinct users")  # fmt: skip
        elif not g.winners_drawn():
            problems.append(f"giveaway {g.id}: the winners are not the draw from its seed")
    return problems, f"{closed} draws recomputed"


def _exclusions(giveaways: list[Giveaway], order: list[str],
                won_index: dict[str, str]) -> tuple[list[str], str]:  # fmt: skip
    problems = []
    by_id = {g.id: g for g in giveaways}
    closed = sorted(g.id for g in giveaways if g.state is GiveawayState.CLOSED)
    if sorted(order) != closed:
        problems.append(f"the closing order lists {order}, the closed giveaways are {closed}")
    won: dict[str, list[str]] = {}
    for position, giveaway_id in enumerate(order):
        g = by_id.get(giveaway_id)
        if g is None or g.state is not GiveawayState.CLOSED:
            continue
        recent = order[max(0, position - g.exclude_recent) : position]
        expected = excluded_entrants(g.entrants, won, recent, g.one_win_per_show)
        if list(g.excluded) != expected:
            problems.append(f"giveaway {g.id}: excluded {list(g.excluded)}, the limits give "
                            f"{expected}")  # fmt: skip
        for user in g.winners:
            won.setdefault(user, []).append(g.id)
    index = {user: " ".join(ids) for user, ids in won.items()}
    if index != won_index:
        problems.append("the room's winners index does not match the closed giveaways")
    excluded = sum(len(g.excluded) for g in giveaways)
    return problems, f"{excluded} entrants excluded, as the limits give"


def _product(g: Giveaway, owner: Any, raw: dict[Any, Any]) -> list[str]:
    problems = []
    if text(owner) != g.owner:
        problems.append(f"giveaway {g.id}: sale {g.prize_sale} is not its private sale")
    records = {text(rid): orjson.loads(rec) for rid, rec in raw.items()}
    per_user = Counter(record["u"] for record in records.values())
    for user in sorted(set(per_user) - set(g.winners)):
        problems.append(f"giveaway {g.id}: {user} holds a prize unit but did not win")
    for user in g.winners:
        award = g.awards.get(user)
        if award is None:
            if g.awarded or per_user[user] > 1:
                problems.append(f"giveaway {g.id}: winner {user} has {per_user[user]} prize "
                                "reservations and no award")  # fmt: skip
            continue
        record = records.get(award.get("reservation", ""))
        if record is None or record["u"] != user or record["q"] != 1 or record.get("p") != 0:
            problems.append(f"giveaway {g.id}: winner {user}'s award {award} is not one "
                            "unit of the prize at price 0")  # fmt: skip
        elif per_user[user] != 1:
            problems.append(f"giveaway {g.id}: winner {user} has {per_user[user]} prize units")
    return problems


def _coupon(g: Giveaway, raw_drop: dict[Any, Any], records: dict[str, Any]) -> list[str]:
    problems = []
    drop = {text(k): text(v) for k, v in raw_drop.items()}
    if drop.get("private") != g.owner:
        problems.append(f"giveaway {g.id}: drop {g.prize_drop} is not its private drop")
    for user, raw in records.items():
        record = orjson.loads(raw) if raw else None
        if record is None or record["u"] != user or record["d"] != g.prize_drop:
            problems.append(f"giveaway {g.id}: winner {user}'s coupon {g.awards[user]} is "
                            "not theirs from the prize drop")  # fmt: skip
    # Nobody else has one: the drop's claims are the awarded coupons (and, while awards
    # are being given, at most one per winner still without a recorded award).
    claimed = int(drop.get("claimed", 0))
    pending = 0 if g.awarded else len(set(g.winners) - set(g.awards))
    if not len(records) <= claimed <= len(records) + pending:
        problems.append(f"giveaway {g.id}: {claimed} prize coupons claimed, "
                        f"{len(records)} awarded")  # fmt: skip
    return problems


def _prizes(giveaways: list[Giveaway], records: dict[str, Any]) -> tuple[list[str], str]:
    problems, awarded = [], 0
    for g in giveaways:
        if g.state is not GiveawayState.CLOSED:
            continue
        awarded += len(g.awards)
        if not set(g.awards) <= set(g.winners):
            problems.append(f"giveaway {g.id}: awards for non-winners "
                            f"{sorted(set(g.awards) - set(g.winners))}")  # fmt: skip
        if g.awarded and set(g.awards) != set(g.winners):
            problems.append(f"giveaway {g.id}: marked awarded, winners without an award "
                            f"{sorted(set(g.winners) - set(g.awards))}")  # fmt: skip
        if g.prize_kind is PrizeKind.PRODUCT:
            problems += _product(g, *records[g.id])
        elif g.prize_kind is PrizeKind.COUPON:
            problems += _coupon(g, *records[g.id])
    return problems, f"{awarded} prizes given, each to its winner only"


async def audit_giveaways(redis: Redis, report: Report, room: str, snap: Any) -> None:
    """Add the giveaway checks to `report` (none for a room without giveaways). They read
    their own records, not the commerce audit's snapshot `snap`."""
    giveaways, order, won_index = await _giveaways(redis, room)
    if not giveaways:
        return
    records = await _prize_records(redis, room, giveaways)
    report.add("giveaways: every draw re-verifies", *_draws(giveaways))
    report.add("giveaways: exclusions follow the limits",
               *_exclusions(giveaways, order, won_index))  # fmt: skip
    report.add("giveaways: winners have exactly their prizes", *_prizes(giveaways, records))
