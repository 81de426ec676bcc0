"""The group-buy half of `livecart audit`: no team has more than K members and its state
agrees with its size; every member holds exactly one unit of the deal's private sale at
the group price, and every unit of that sale is a member's; every order line on it is
priced at the group price; a completed team has K orders paid before its deadline; a
failed team, once unwound, has no held unit and every member order that was paid is
refunded in full (refunds equal payments). A failed team still being unwound (for at most
`UNWIND_GRACE_MS`) passes: the order and payment checks cover its money meanwhile.

The deal's teams are read in one MULTI/EXEC; reservations and orders come from the
commerce audit's snapshot (engine/commerce/audit.py), which `livecart audit` hands to every
feature's checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from engine.core.clock import now_ms
from engine.features.groupbuys.store import (
    OWNER_PREFIX,
    Deal,
    Team,
    TeamState,
    load_deal,
    load_teams,
)
from engine.store import keys
from engine.store.redis_client import text

if TYPE_CHECKING:
    from engine.commerce.audit import Report, Snapshot

# How long a failed team may take to be unwound before the audit calls it a problem.
UNWIND_GRACE_MS = 60_000


def _check_failed(name: str, team: Team, held: int, paid: int, refunded: int) -> list[str]:
    if team.unwound_at is None:
        # Being unwound right now (cancel, release, refund: each sweep retries what is left).
        # Money and stock invariants still hold meanwhile; only a long wait is a problem.
        since = now_ms() - (team.settled_at or team.deadline)
        if since > UNWIND_GRACE_MS:
            return [f"{name}: failed {since // 1000} s ago and still not unwound "
                    "(a refund the provider keeps refusing?)"]  # fmt: skip
        return []
    problems = []
    if held:
        problems.append(f"{name}: failed but {held} members still hold a unit")
    if refunded != paid:
        problems.append(f"{name}: failed; members paid {paid}, refunded {refunded}")
    return problems


def _check_team(deal: Deal, team: Team, snap: Snapshot,
                reservations: dict[str, dict[str, Any]]) -> list[str]:  # fmt: skip
    name = f"team {team.ref}"
    problems = []
    count = len(team.members)
    if count > team.size or team.size != deal.size:
        problems.append(f"{name}: {count} members, team size {team.size} (deal {deal.size})")
    if (team.state is TeamState.FORMING and count >= team.size) or (
        team.state in (TeamState.FULL, TeamState.COMPLETED) and count != team.size
    ):
        problems.append(f"{name}: {team.state.value} with {count} of {team.size} members")
    if len({m.user for m in team.members}) != count:
        problems.append(f"{name}: a user is a member twice")
    paid_in_time = held = paid_total = refunded_total = 0
    for member in team.members:
        record = reservations.get(member.reservation)
        if record is None or (record["u"], record.get("p"), record["q"]) != (
            member.user, deal.price, 1
        ):  # fmt: skip
            problems.append(f"{name}: {member.user} has no unit at {deal.price} "
                            f"({member.reservation}: {record})")  # fmt: skip
            continue
        held += record["s"] == "held"
        order = snap.orders.get(record.get("o", ""))
        if order is None or "paid_at" not in order:
            continue
        paid_in_time += int(order["paid_at"]) < team.deadline
        paid_total += int(order["total"])
        refunded_total += int(order.get("refunded", 0))
    if team.state is TeamState.COMPLETED and paid_in_time != team.size:
        problems.append(f"{name}: completed with {paid_in_time} of {team.size} orders paid "
                        "before the deadline")  # fmt: skip
    if team.state is TeamState.FAILED:
        problems += _check_failed(name, team, held, paid_total, refunded_total)
    return problems


def _check_deal(deal: Deal, teams: list[Team], snap: Snapshot,
                reservations: dict[str, dict[str, Any]]) -> list[str]:  # fmt: skip
    problems = []
    sale = snap.sales.get(deal.sale)
    owner = text(sale[0].get(b"private", b"")) if sale and sale[0] else ""
    if owner != OWNER_PREFIX + deal.id:
        problems.append(f"group buy {deal.id}: {deal.sale} is not its private sale")
    members = {m.reservation for team in teams for m in team.members}
    units = {rid for rid in reservations if rid.startswith(f"{deal.sale}.")}
    if units != members:
        problems.append(f"group buy {deal.id}: units {sorted(units - members)} are no "
                        f"member's, members {sorted(members - units)} have none")  # fmt: skip
    for team in teams:
        problems += _check_team(deal, team, snap, reservations)
    for order_id, line in snap.order_lines(deal.sale):
        if line["unit_price"] != deal.price:
            problems.append(f"order {order_id}: group buy {deal.id} unit priced "
                            f"{line['unit_price']}, not {deal.price}")  # fmt: skip
    return problems


async def audit_groupbuys(redis: Redis, report: Report, room: str, snap: Snapshot) -> None:
    ids = [text(d) for d in await redis.zrange(keys.groupbuys(room), 0, -1)]
    if not ids:
        return
    problems: list[str] = []
    states: dict[str, int] = {}
    for deal_id in ids:
        deal = await load_deal(redis, room, deal_id)
        if deal is None:
            problems.append(f"group buy {deal_id} is indexed but has no data")
            continue
        teams = await load_teams(redis, room, deal_id)
        for team in teams:
            states[team.state.value] = states.get(team.state.value, 0) + 1
        problems += _check_deal(deal, teams, snap, snap.reservations)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "no teams"
    report.add(
        "group buys: teams within K, units at the group price, failed teams refunded",
        problems,
        f"{len(ids)} deals; teams: {summary}",
    )
