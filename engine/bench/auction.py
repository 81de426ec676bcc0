"""`livecart bench auction`: a contested live auction. B signed-in bidders, split over E
engine processes sharing one Redis, bid against each other over their WebSockets for the
whole auction: each raises to the minimum next bid plus a random step after a short
random pause, whenever it is not leading, until the server's clock ends the auction
(sudden death, so the end is fixed). The sweeper closes it; nobody calls close.

A bidder never bids while it leads (it waits for its `auction_outbid` notice), so every
accepted bid takes the lead at its own amount and the highest one must be the final price.

Figures: bids sent, accepted and refused (`bid_too_low`: someone got there first; after
the end; `rate_limited`, then retried after the advised pause),
`highest_valid_bid` and its bidder as the bidders saw their own accepted bids, the
auction's final `price` and `winner`, whether they `match`, whether the bid log replays
to them (`replay_ok`, engine.features.auctions.rules), client-side bid latency, and `audit_ok`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from typing import Any

import httpx

from clients import LivecartClientError, ViewerClient
from engine.bench.harness import (
    bench_env,
    create_room,
    engine_process,
    host_http,
    print_result,
    redis_for,
)
from engine.bench.stats import percentiles
from engine.core.identity import Role
from engine.core.loop import loop_name
from engine.features.auctions.rules import replay
from engine.features.auctions.store import load_auction, load_bids
from engine.insights.audit import audit_room
from engine.rooms import auth
from engine.store import redis_client

LOT = {"title": "Signed sneaker", "currency": "USD",
       "skus": [{"sku": "LOT-1", "list_price": 20_000}]}  # fmt: skip
START_PRICE = 1_000


def progress(message: str) -> None:
    print(f"[bench auction] {message}", file=sys.stderr, flush=True)


class Bidder:
    def __init__(self, client: ViewerClient, rng: random.Random, think_ms: float) -> None:
        self.client = client
        self.rng = rng
        self.think_ms = think_ms
        self.user: str = ""
        self.accepted: list[tuple[int, int]] = []  # (amount, answered at ns) per accepted bid
        self.too_low = 0
        self.after_end = 0
        self.rate_limited = 0
        self.sent = 0
        self.latencies_ms: list[float] = []

    async def run(self, auction: str, ends_at_ms: int, start_price: int = START_PRICE) -> None:
        """Bid until the clock ends the auction, but never while leading: a leader waits
        for its `auction_outbid` notice. So every accepted bid takes the lead at its own
        amount, and the highest accepted bid must be the final price."""
        self.user = self.client.welcome["user"]
        min_bid, leading, seen = start_price, False, 0
        while time.time() * 1000 < ends_at_ms:
            await asyncio.sleep(self.rng.uniform(0, self.think_ms) / 1000)
            if leading:
                fresh = self.client.notices[seen:]
                seen += len(fresh)
                outbid = [n for n in fresh if n.get("kind") == "auction_outbid"]
                if not outbid:
                    continue
                leading, min_bid = False, int(outbid[-1]["min_bid"])
            amount = min_bid + self.rng.choice([0, 0, 0, 100, 200, 500])
            started = time.perf_counter()
            self.sent += 1
            try:
                ack = await self.client.request(
                    {"type": "bid", "auction": auction, "amount": amount}
                )
            except LivecartClientError as error:
                if error.code == "auction_closed":
                    self.after_end += 1
                    return
                if error.code == "rate_limited":  # as a phone would: wait, then try again
                    self.rate_limited += 1
                    await asyncio.sleep(int(error.details.get("retry_after_ms", 100)) / 1000)
                    continue
                if error.code != "bid_too_low":
                    raise
                self.too_low += 1
                min_bid = int(error.details["min_bid"])
                leading = False
                continue
            finally:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            result = ack["result"]
            self.accepted.append((amount, time.perf_counter_ns()))
            min_bid, leading = result["min_bid"], result["leader"]


async def contest(ports: list[int], secret: str, room: str, args: argparse.Namespace,
                  auction: dict[str, Any]) -> list[Bidder]:  # fmt: skip
    rng = random.Random(args.seed)
    bidders = []
    for i in range(args.bidders):
        user = f"bidder-{i}"
        token = auth.mint(secret, room=room, role=Role.VIEWER, user=user, name=f"Bidder {i}")
        client = ViewerClient(f"ws://127.0.0.1:{ports[i % len(ports)]}/ws", room, token,
                              reconnect=False)  # fmt: skip
        await client.connect()
        bidders.append(Bidder(client, random.Random(rng.random()), args.think_ms))
    progress(f"{len(bidders)} bidders connected over {len(ports)} engine processes")
    try:
        await asyncio.gather(*(b.run(auction["id"], auction["ends_at"]) for b in bidders))
    finally:
        for bidder in bidders:
            await bidder.client.close()
    return bidders


async def settle(url: str, room: str, auction_id: str) -> tuple[dict[str, Any], Any, bool]:
    """Wait for the sweeper to close the auction; its wire, the replayed log, audit_ok."""
    redis = redis_client.connect(url)
    try:
        async with asyncio.timeout(30):
            while True:
                auction = await load_auction(redis, room, auction_id)
                if auction is not None and auction.settled:
                    break
                await asyncio.sleep(0.1)
        log = await load_bids(redis, room, auction_id)
        standing = replay(auction.start_price, auction.increments, log)
        report = await audit_room(redis, room)
        return auction.to_wire(), standing, report.ok
    finally:
        await redis.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env()
    secret = env["LIVECART_SECRET"]
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        ports = [stack.enter_context(engine_process(redis_url, 100, env))[1]
                 for _ in range(args.engines)]  # fmt: skip
        room = create_room(ports[0], secret, {})
        with host_http(ports[0], secret, room) as http:
            http.post(f"/api/rooms/{room}/products", json=LOT).raise_for_status()
            opened = http.post(f"/api/rooms/{room}/auctions", json={
                "sku": "LOT-1", "start_price": START_PRICE, "duration_s": args.seconds,
                "mode": "sudden_death",
            })  # fmt: skip
            opened.raise_for_status()
        auction: dict[str, Any] = opened.json()
        progress(f"auction {auction['id']} open for {args.seconds}s (sudden death)")
        started = time.perf_counter()
        bidders = asyncio.run(contest(ports, secret, room, args, auction))
        wall_s = time.perf_counter() - started
        final, standing, audit_ok = asyncio.run(settle(redis_url, room, auction["id"]))
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[-1]}") as http:
            seen_by_other = http.get(f"/api/rooms/{room}/auctions/{auction['id']}").json()
    accepted = [(amount, at, b.user) for b in bidders for amount, at in b.accepted]
    top_amount = max((a for a, _, _ in accepted), default=None)
    top_bidder = min(
        ((at, user) for a, at, user in accepted if a == top_amount), default=(0, None)
    )[1]
    return {
        "bidders": args.bidders,
        "engines": args.engines,
        "seconds": args.seconds,
        "bids_sent": sum(b.sent for b in bidders),
        "bids_accepted": len(accepted),
        "bids_too_low": sum(b.too_low for b in bidders),
        "bids_after_end": sum(b.after_end for b in bidders),
        "bids_rate_limited": sum(b.rate_limited for b in bidders),
        "bids_logged": final["bids"],
        "highest_valid_bid": top_amount,
        "highest_bidder": top_bidder,
        "price": final["price"],
        "winner": final["winner"],
        "match": (final["price"], final["winner"]) == (top_amount, top_bidder)
        and final["bids"] == len(accepted),
        "replay_ok": (standing.price, standing.leader) == (final["price"], final["winner"]),
        "same_on_every_process": seen_by_other["winner"] == final["winner"]
        and seen_by_other["price"] == final["price"],
        "winner_offer": final["offers"][0] if final["offers"] else None,
        # over the auction's clock (bidders start as it opens and stop when it ends)
        "bids_sent_per_second": round(sum(b.sent for b in bidders) / args.seconds, 1),
        "bids_accepted_per_second": round(len(accepted) / args.seconds, 1),
        "wall_s": round(wall_s, 2),
        "latency_ms": percentiles(sorted(x for b in bidders for x in b.latencies_ms)),
        "audit_ok": audit_ok,
        "event_loop": loop_name(),
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json)
    return 0 if result["match"] and result["replay_ok"] and result["audit_ok"] else 1
