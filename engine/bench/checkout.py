"""`livecart bench checkout`: orders paid end to end. One engine process (with its built-in
simulated payment provider) and Redis; N buyers in this process.

Setup (not timed): a sale of N units and a coupon drop for half of the buyers; each buyer
joins the room over the WebSocket, grabs one unit (and claims a coupon if it is an
even-numbered buyer), and leaves.

Timed, `--concurrency` buyers at a time: each checks out its reservation (with its
coupon), creates a payment, and pays at the provider's pay API, which calls the engine
back with a signed callback before it answers. An order counts as `paid` when that
answer says the engine applied the payment; `latency_ms` is from the checkout request to
that answer. `failed` counts buyers whose order was not paid. Afterwards `livecart audit`
checks stock, coupons, orders and payments (`audit_ok`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from typing import Any

from clients import ViewerClient
from engine.bench.harness import (
    bench_env,
    create_room,
    engine_process,
    host_http,
    print_result,
    redis_for,
)
from engine.bench.leanhttp import HttpError, LeanHTTP
from engine.bench.stats import percentiles
from engine.core.identity import Role
from engine.core.loop import loop_name
from engine.insights.audit import audit_room
from engine.rooms import auth
from engine.store import redis_client

ADDRESS = {
    "name": "Bench Buyer",
    "line1": "1 Load St",
    "city": "Testville",
    "postal_code": "12345",
    "country": "US",
}
CONTACT = {"email": "buyer@example.com"}


def progress(message: str) -> None:
    print(f"[bench checkout] {message}", file=sys.stderr, flush=True)


def set_up_shop(port: int, secret: str, room: str, orders: int) -> tuple[str, str]:
    """A product, a live sale of `orders` units and a coupon drop; (sale id, drop id)."""
    with host_http(port, secret, room) as http:
        product = {
            "title": "Bench hoodie",
            "currency": "USD",
            "skus": [{"sku": "HOOD-1", "list_price": 5900}],
        }
        http.post(f"/api/rooms/{room}/products", json=product).raise_for_status()
        sale = http.post(
            f"/api/rooms/{room}/sales",
            json={
                "sku": "HOOD-1",
                "allotment": orders,
                "per_user_limit": 1,
                "duration_s": 3600,
                "hold_s": 1800,
            },
        )
        sale.raise_for_status()
        template = http.post(
            f"/api/rooms/{room}/coupons/templates",
            json={
                "kind": "amount_off",
                "title": "5 off 50",
                "amount": 500,
                "min_spend": 5000,
                "currency": "USD",
                "total": orders,
            },
        )
        template.raise_for_status()
        drop = http.post(
            f"/api/rooms/{room}/coupons/templates/{template.json()['id']}/drops",
            json={"quantity": (orders + 1) // 2, "claim_window_s": 3600},
        )
        drop.raise_for_status()
        return sale.json()["id"], drop.json()["id"]


class Buyers:
    def __init__(self, port: int, secret: str, room: str, concurrency: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.secret = secret
        self.room = room
        self.gate = asyncio.Semaphore(concurrency)
        self.http = LeanHTTP(f"http://127.0.0.1:{port}", concurrency)
        self.tokens: dict[int, str] = {}
        self.carts: dict[int, tuple[str, list[str]]] = {}
        self.failures: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.paid = 0

    def token(self, n: int) -> str:
        token = self.tokens.get(n)
        if token is None:
            token = auth.mint(self.secret, room=self.room, role=Role.VIEWER, user=f"buyer{n}")
            self.tokens[n] = token
        return token

    async def shop(self, n: int, sale: str, drop: str) -> None:
        """Join, grab one unit and (even buyers) claim a coupon; remember the cart."""
        async with self.gate:
            viewer = ViewerClient(
                self.base.replace("http", "ws", 1) + "/ws",
                self.room,
                self.token(n),
                reconnect=False,
            )
            try:
                await viewer.connect()
                grabbed = await viewer.grab(sale, request_id=f"grab-{n}")
                coupons = []
                if n % 2 == 0:
                    claimed = await viewer.claim(drop, request_id=f"claim-{n}")
                    if claimed["status"] == "claimed":
                        coupons.append(claimed["coupon"])
            finally:
                await viewer.close()
            if grabbed["status"] != "reserved":
                self.failures[f"grab_{grabbed['status']}"] += 1
                return
            self.carts[n] = (grabbed["reservation"], coupons)

    async def _call(self, n: int, path: str, body: Any) -> dict[str, Any]:
        status, data = await self.http.post(path, body, self.token(n))
        if status >= 400:
            raise RuntimeError(data.get("error", {}).get("code", status))
        result: dict[str, Any] = data
        return result

    async def buy(self, n: int) -> None:
        """Check out, create a payment and pay; timed from checkout to the engine's answer."""
        reservation, coupons = self.carts[n]
        async with self.gate:
            started = time.perf_counter()
            try:
                order = await self._call(
                    n,
                    f"/api/rooms/{self.room}/orders",
                    {
                        "reservations": [reservation],
                        "coupons": coupons,
                        "shipping_address": ADDRESS,
                        "contact": CONTACT,
                        "idempotency_key": f"bench-order-{n}",
                    },
                )
                payment = await self._call(
                    n, f"/api/rooms/{self.room}/orders/{order['id']}/payment", None
                )
                paid = await self._call(
                    n, f"/psp/pay/{payment['payment']}", {"outcome": "succeeded"}
                )
            except (RuntimeError, OSError, HttpError, asyncio.IncompleteReadError) as exc:
                self.failures[str(exc) or type(exc).__name__] += 1
                return
            outcome = paid.get("engine", {}).get("outcome")
            if outcome != "paid":
                self.failures[f"payment_{outcome}"] += 1
                return
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.paid += 1


async def rush(
    port: int, secret: str, room: str, target: tuple[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    buyers = Buyers(port, secret, room, args.concurrency)
    sale, drop = target
    try:
        started = time.perf_counter()
        await asyncio.gather(*(buyers.shop(n, sale, drop) for n in range(args.orders)))
        progress(f"{len(buyers.carts)} carts filled in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        await asyncio.gather(*(buyers.buy(n) for n in sorted(buyers.carts)))
        elapsed = time.perf_counter() - started
    finally:
        await buyers.http.close()
    return {
        "paid": buyers.paid,
        "failed": args.orders - buyers.paid,
        "orders_per_second": round(buyers.paid / elapsed, 1),
        "latency_ms": percentiles(buyers.latencies),
        "coupons_used": sum(1 for _, coupons in buyers.carts.values() if coupons),
        "failures": dict(buyers.failures),
        "window_s": round(elapsed, 3),
    }


async def audit(url: str, room: str) -> dict[str, Any]:
    redis = redis_client.connect(url)
    try:
        return (await audit_room(redis, room)).to_wire()
    finally:
        await redis.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env(LIVECART_REVIEW_THRESHOLD=str(10**9))
    secret = env["LIVECART_SECRET"]
    with contextlib.ExitStack() as stack:
        redis_url = redis_for(stack, args.redis_url)
        with engine_process(redis_url, 100, env) as (_, port):
            room = create_room(port, secret, {})
            sale, drop = set_up_shop(port, secret, room, args.orders)
            progress(f"{args.orders} buyers grab, check out and pay, {args.concurrency} at a time")
            result = asyncio.run(rush(port, secret, room, (sale, drop), args))
        report = asyncio.run(audit(redis_url, room))
    return {
        "orders": args.orders,
        **result,
        "audit_ok": report["ok"],
        "concurrency": args.concurrency,
        "room": room,
        "event_loop": loop_name(),
        "audit": report,
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json)
    return 0 if result["audit_ok"] and not result["failed"] else 1
