"""`livecart bench group-buy`: a scripted show with two group-buy teams on one engine
process (and its simulated payment provider) sharing one Redis.

The host opens a deal (teams of `--team-size`, `--window-s` to fill and pay). Team A's
leader starts a team and the others join it; every member checks out and pays at the
provider, so the team completes. Team B gets one member fewer than it needs: its leader
pays, the other member checks out and does not pay. Then the show waits for team B's
deadline: the sweeper fails it, refunds the leader's payment in full through the
provider and cancels the unpaid order. Afterwards `livecart audit` runs (`audit_ok`).

Prints both teams (state, members, each member's order: state, total, refunded by the
engine and at the provider) and exits 0 only if A completed, B failed with every payment
refunded, and the audit passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

from clients import ShopperClient
from engine.bench.checkout import ADDRESS
from engine.bench.harness import (
    bench_env,
    create_room,
    engine_process,
    host_http,
    print_result,
    redis_for,
)
from engine.commerce.orders import load_orders
from engine.core.identity import Role
from engine.features.groupbuys.store import load_teams
from engine.insights.audit import audit_room
from engine.rooms import auth
from engine.store import keys, redis_client

MUG = {"title": "Enamel mug", "currency": "EUR",
       "skus": [{"sku": "MUG-1", "list_price": 1_990}]}  # fmt: skip
GROUP_PRICE = 1_290


def progress(message: str) -> None:
    print(f"[bench group-buy] {message}", file=sys.stderr, flush=True)


def shopper(port: int, secret: str, room: str, user: str) -> ShopperClient:
    token = auth.mint(secret, room=room, role=Role.VIEWER, user=user, name=user.title())
    return ShopperClient(f"http://127.0.0.1:{port}", room, token)


async def member(port: int, secret: str, room: str, user: str, *, deal: str,
                 team: str | None, pay: bool) -> str:  # fmt: skip
    """Start (team None) or join a team, check the unit out, pay if `pay`; the team id."""
    async with shopper(port, secret, room, user) as me:
        joined = await (me.start_team(deal) if team is None else me.join_team(deal, team))
        order = await me.checkout([joined["reservation"]], address=ADDRESS,
                                  contact={"email": f"{user}@example.com"})  # fmt: skip
        if pay:
            payment = await me.start_payment(order["id"])
            answer = await me.pay(payment["payment"])
            progress(f"{user} paid order {order['id']}: {answer.get('engine', answer)}")
        team_id: str = joined["id"]
        return team_id


async def show(port: int, secret: str, room: str, deal: str, size: int) -> tuple[str, str]:
    team_a = await member(port, secret, room, "a0", deal=deal, team=None, pay=True)
    for n in range(1, size):
        await member(port, secret, room, f"a{n}", deal=deal, team=team_a, pay=True)
    team_b = await member(port, secret, room, "b0", deal=deal, team=None, pay=True)
    for n in range(1, size - 1):
        await member(port, secret, room, f"b{n}", deal=deal, team=team_b, pay=False)
    return team_a, team_b


async def outcome(url: str, room: str, deal: str, wait_s: float) -> dict[str, Any]:
    """Wait until no team is open (and the failed ones are unwound); the teams with their
    members' orders, and the audit."""
    redis = redis_client.connect(url)
    try:
        async with asyncio.timeout(wait_s):
            while True:
                teams = await load_teams(redis, room, deal)
                if all(not t.state.open and (t.state.value == "completed" or t.unwound_at)
                       for t in teams):  # fmt: skip
                    break
                await asyncio.sleep(0.2)
        orders = await load_orders(redis, room)
        by_reservation = {o.lines[0]["reservation"]: o for o in orders}
        wire = {}
        for team in teams:
            rows = []
            for m in team.members:
                order = by_reservation.get(m.reservation)
                payment = order.fields.get("payment") if order else None
                at_provider = payment and await redis.hget(keys.psp_payment(payment), "refunded")
                rows.append({"user": m.user, "order": order and order.id,
                             "state": order and order.state.value,
                             "total": order and order.total,
                             "paid": order is not None and "paid_at" in order.fields,
                             "refunded": order.refunded if order else 0,
                             "refunded_at_provider": int(at_provider or 0)})  # fmt: skip
            wire[team.id] = {"state": team.state.value, "members": len(team.members),
                             "size": team.size, "deadline": team.deadline,
                             "settled_at": team.settled_at, "paid": team.paid,
                             "orders": rows}  # fmt: skip
        report = await audit_room(redis, room)
        return {"teams": wire, "audit_ok": report.ok, "audit": report.to_wire()}
    finally:
        await redis.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    secret = env["LIVECART_SECRET"]
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        _, port = stack.enter_context(engine_process(redis_url, 100, env))
        room = create_room(port, secret, {})
        with host_http(port, secret, room) as http:
            http.post(f"/api/rooms/{room}/products", json=MUG).raise_for_status()
            opened = http.post(f"/api/rooms/{room}/group-buys", json={
                "sku": "MUG-1", "group_price": GROUP_PRICE, "team_size": args.team_size,
                "window_s": args.window_s, "units": 4 * args.team_size,
            })  # fmt: skip
            opened.raise_for_status()
        deal: str = opened.json()["id"]
        progress(f"group buy {deal}: teams of {args.team_size} within {args.window_s}s")
        started = time.perf_counter()
        team_a, team_b = asyncio.run(show(port, secret, room, deal, args.team_size))
        progress(f"team {team_a} full and paid; team {team_b} short; waiting for its deadline")
        result = asyncio.run(outcome(redis_url, room, deal, args.window_s + 30))
        wall_s = time.perf_counter() - started
    a, b = result["teams"][team_a], result["teams"][team_b]
    b_paid = [row for row in b["orders"] if row["paid"]]
    return {
        "room": room,
        "group_buy": deal,
        "team_size": args.team_size,
        "window_s": args.window_s,
        "group_price": GROUP_PRICE,
        "team_a": {"id": team_a, **a},
        "team_b": {"id": team_b, **b},
        "a_completed": a["state"] == "completed"
        and all(row["state"] == "paid" for row in a["orders"]),
        "b_failed": b["state"] == "failed",
        "b_refunded": bool(b_paid)
        and all(
            row["refunded"] == row["refunded_at_provider"] == row["total"]
            and row["state"] == "refunded"
            for row in b_paid
        ),
        "wall_s": round(wall_s, 2),
        "audit_ok": result["audit_ok"],
        "audit": result["audit"],
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json)
    good = result["a_completed"] and result["b_failed"] and result["b_refunded"]
    return 0 if good and result["audit_ok"] else 1
