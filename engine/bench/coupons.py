"""`livecart bench coupons`: a coupon rain. N signed-in viewers in one load process are in
the room when the host drops C coupons after a short countdown; at zero every viewer taps
"claim" (A taps in all, a fresh request id each time) through one engine process, with
Redis in a third.

Figures: answers by status, `over_issued` (coupons claimed beyond the drop, by the
acknowledgements and by Redis), `claims_per_second` (answered claims over the time from
the first tap to the last answer), client-side round-trip latency, the drop's counters
and `audit_ok` (`livecart audit` on the room afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from engine.bench.harness import (
    Child,
    bench_env,
    connect,
    create_room,
    engine_process,
    host_http,
    print_result,
    redis_for,
)
from engine.commerce.coupons import Drop
from engine.core.loop import loop_name
from engine.insights.audit import audit_room
from engine.store import redis_client
from engine.store.keys import coupon_drop

COUNTDOWN_S = 3


def progress(message: str) -> None:
    print(f"[bench coupons] {message}", file=sys.stderr, flush=True)


def drop_coupons(port: int, secret: str, room: str, coupons: int) -> dict[str, Any]:
    with host_http(port, secret, room) as http:
        template = http.post(
            f"/api/rooms/{room}/coupons/templates",
            json={
                "kind": "amount_off",
                "title": "5 off 50",
                "amount": 500,
                "min_spend": 5000,
                "currency": "USD",
                "total": coupons,
            },
        )
        template.raise_for_status()
        drop = http.post(
            f"/api/rooms/{room}/coupons/templates/{template.json()['id']}/drops",
            json={"quantity": coupons, "countdown_s": COUNTDOWN_S, "claim_window_s": 600},
        )
        drop.raise_for_status()
        result: dict[str, Any] = drop.json()
        return result


async def inspect(url: str, room: str, drop_id: str) -> tuple[Drop, dict[str, Any]]:
    redis = redis_client.connect(url)
    try:
        drop = Drop.from_hash(await redis.hgetall(coupon_drop(room, drop_id)))
        report = await audit_room(redis, room)
        return drop, report.to_wire()
    finally:
        await redis.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    secret = env["LIVECART_SECRET"]
    attempts = args.attempts or args.viewers
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        loader = Child([sys.executable, "-m", "engine.bench.loader"], env)
        stack.callback(loader.stop)
        with engine_process(redis_url, 100, env) as (_, port):
            room = create_room(port, secret, {})
            connect(
                loader,
                port,
                room,
                args.viewers,
                posters=args.viewers,
                mode="engine",
                report=progress,
            )
            drop = drop_coupons(port, secret, room, args.coupons)
            progress(
                f"{args.viewers} viewers tap {attempts} times when {args.coupons} coupons drop"
            )
            rain = loader.ask(
                cmd="claim",
                target=drop["id"],
                attempts=attempts,
                at_ms=drop["opens_at"],
                think_ms=0,
            )
        final, audit = asyncio.run(inspect(redis_url, room, drop["id"]))
    statuses = rain["statuses"]
    claimed = statuses.get("claimed", 0)
    return {
        "viewers": args.viewers,
        "coupons": args.coupons,
        "attempts": attempts,
        "claimed": claimed,
        "sold_out": statuses.get("sold_out", 0),
        "limit_reached": statuses.get("limit_reached", 0),
        "errors": sum(rain["errors"].values()),
        "over_issued": max(0, claimed - args.coupons, final.claimed - final.quantity),
        "claims_per_second": round(rain["answered"] / rain["window_s"]),
        "latency_ms": rain["latency_ms"],
        "audit_ok": audit["ok"],
        "drop": {
            "quantity": final.quantity,
            "claimed": final.claimed,
            "remaining": final.remaining,
        },
        "other_statuses": {
            k: v for k, v in statuses.items() if k not in {"claimed", "sold_out", "limit_reached"}
        },
        "error_codes": rain["errors"],
        "window_s": round(rain["window_s"], 3),
        "event_loop": loop_name(),
        "audit": audit,
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json)
    return 0 if result["audit_ok"] and not result["over_issued"] else 1
