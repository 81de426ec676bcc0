"""`livecart audit`: passes on honest state, and names precisely what is wrong otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from engine.commerce.stock import GrabRequest
from engine.insights.audit import audit_room
from engine.store import keys
from tests.conftest import T0, Shop, Store
from tests.test_cli import serving

Corruption = Callable[[aioredis.Redis, str, str], Awaitable[None]]


async def busy_sale(shop: Shop) -> str:
    sale = await shop.sale(allotment=6, per_user_limit=2, hold_s=60)
    await shop.stock.grab_batch(
        shop.room, sale, [GrabRequest(u, "1", 2) for u in ("a", "b", "c")], at_ms=T0
    )
    await shop.stock.confirm(shop.room, f"{sale}.1", "order-1", at_ms=T0 + 1)
    await shop.stock.release(shop.room, f"{sale}.2", "b", at_ms=T0 + 1)
    return sale


async def bump_available(redis: aioredis.Redis, room: str, sale: str) -> None:
    await redis.hincrby(keys.sale(room, sale), "available", 1)


async def lose_a_sold_record(redis: aioredis.Redis, room: str, sale: str) -> None:
    await redis.hdel(keys.sale_reservations(room, sale), f"{sale}.1")


async def overcount_a_user(redis: aioredis.Redis, room: str, sale: str) -> None:
    await redis.hset(keys.sale_users(room, sale), "c", 3)


async def unindex_a_hold(redis: aioredis.Redis, room: str, sale: str) -> None:
    await redis.zrem(keys.expiry(room), f"{sale}.3")


async def index_a_sold_one(redis: aioredis.Redis, room: str, sale: str) -> None:
    await redis.zadd(keys.expiry(room), {f"{sale}.1": T0})


async def double_waitlist(redis: aioredis.Redis, room: str, sale: str) -> None:
    await redis.rpush(keys.sale_waitlist(room, sale), "d", "d")
    await redis.sadd(keys.sale_waiting(room, sale), "d")


LIMIT = "no user above the limit of 2"


@pytest.mark.parametrize(
    ("corrupt", "failures"),
    [
        (bump_available, {"stock adds up": "available 3 + reserved 2 + sold 2 = 7"}),
        (
            lose_a_sold_record,
            {
                "reservations match the counters": "sold reservations hold 0 units",
                LIMIT: "a is counted at 2 but holds 0",
            },
        ),
        (overcount_a_user, {LIMIT: "c is counted at 3 but holds 2"}),
        (unindex_a_hold, {"every hold will expire": "is not in the expiry index"}),
        (index_a_sold_one, {"every hold will expire": "is in the expiry index but sold"}),
        (double_waitlist, {"waitlist is consistent": "someone is on the waitlist twice"}),
    ],
)
async def test_each_kind_of_damage_is_reported(
    shop: Shop, corrupt: Corruption, failures: dict[str, str]
) -> None:
    sale = await busy_sale(shop)
    clean = await audit_room(shop.redis, shop.room)
    assert clean.ok, clean.render()
    await corrupt(shop.redis, shop.room, sale)
    report = await audit_room(shop.redis, shop.room)
    assert not report.ok
    failed = {c.name.removeprefix(f"sale {sale}: "): c.detail for c in report.checks if not c.ok}
    assert set(failed) == set(failures)
    for check, detail in failures.items():
        assert detail in failed[check]


# ---- the money half (engine/commerce/audit_orders.py) --------------------------------------

COUPONS = "coupons: issued = claimed + unclaimed"
STOCK_SOLD = "orders: stock sold matches paid order lines"
Ids = dict[str, str]
Damage = Callable[[aioredis.Redis, str, Ids], Awaitable[None]]


async def paid_order_with_coupon(store: Store) -> Ids:
    """ana's paid order for one unit with a coupon (1 of a drop of 10 claimed), and bob's
    hold outside any order: the ids the damage below needs."""
    sale = await store.sale(allotment=5)
    line = await store.reserve(sale, "ana")
    order = await store.checkout("ana", [line], [await store.coupon("ana", amount=300)])
    assert (await store.pay(order))["outcome"] == "paid"
    coupon = await store.coupons.record(store.room, order.coupons[0])
    held = await store.reserve(sale, "bob")
    return {"sale": sale, "order": order.id, "line": line, "held": held,
            "template": coupon["t"], "drop": coupon["d"]}  # fmt: skip


async def claim_counted_twice(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    await redis.hincrby(keys.coupon_drop(room, ids["drop"]), "claimed", 1)


async def a_coupon_left_vanishes(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    await redis.hincrby(keys.coupon_drop(room, ids["drop"]), "remaining", -1)


async def issued_overcounted(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    await redis.hincrby(keys.coupon_issued(room), ids["template"], 1)


async def holder_overcounted(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    await redis.hincrby(keys.coupon_holders(room), f"{ids['template']} ana", 1)


async def _edit_line(redis: aioredis.Redis, room: str, ids: Ids, **changes: object) -> None:
    key = keys.order(room, ids["order"])
    detail = orjson.loads(await redis.hget(key, "detail") or b"{}")
    detail["lines"][0].update(changes)
    await redis.hset(key, "detail", orjson.dumps(detail))


async def paid_line_quantity_changed(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    await _edit_line(redis, room, ids, quantity=2)


async def paid_line_on_a_held_unit(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    await _edit_line(redis, room, ids, reservation=ids["held"])


async def sold_unit_on_a_missing_order(redis: aioredis.Redis, room: str, ids: Ids) -> None:
    key = keys.sale_reservations(room, ids["sale"])
    record = orjson.loads(await redis.hget(key, ids["line"]) or b"{}")
    await redis.hset(key, ids["line"], orjson.dumps({**record, "o": "o999999"}))


@pytest.mark.parametrize(
    ("damage", "failures"),
    [
        (claim_counted_twice, {COUPONS: "drop {drop}: 2 claimed + 9 left != 10; "
                                        "drop {drop}: 1 coupons, counter 2"}),
        (a_coupon_left_vanishes, {COUPONS: "drop {drop}: 1 claimed + 8 left != 10"}),
        (issued_overcounted, {COUPONS: "template {template}: 10 in drops, 11 counted"}),
        (holder_overcounted, {COUPONS: "{template} ana holds 1, counted 2"}),
        (paid_line_quantity_changed,
         {STOCK_SOLD: "order {order}: line {line} quantity differs"}),
        (paid_line_on_a_held_unit, {STOCK_SOLD: "paid order {order}: line {held} is held"}),
        (sold_unit_on_a_missing_order,
         {STOCK_SOLD: "sold {line} -> order o999999 missing; "
                      "paid order {order}: line {line} is sold"}),
    ],
)  # fmt: skip
async def test_each_kind_of_commerce_damage_is_reported(
    store: Store, damage: Damage, failures: dict[str, str]
) -> None:
    ids = await paid_order_with_coupon(store)
    await store.audit_ok()
    await damage(store.shop.redis, store.room, ids)
    report = await audit_room(store.shop.redis, store.room)
    assert not report.ok, f"the damage went unreported:\n{report.render()}"
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert set(failed) == set(failures), report.render()
    for check, detail in failures.items():
        assert detail.format(**ids) in failed[check], report.render()


async def test_unknown_room_fails(shop: Shop) -> None:
    report = await audit_room(shop.redis, "no-such-room")
    assert report.to_wire() == {
        "room": "no-such-room",
        "ok": False,
        "checks": [{"name": "room exists", "ok": False, "detail": "no room 'no-such-room'"}],
    }


def run_audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "audit", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


async def test_cli_json_contract_and_exit_codes(shop: Shop, redis_url: str) -> None:
    sale = await busy_sale(shop)
    result = run_audit(shop.room, "--redis-url", redis_url, "--json")
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert set(report) == {"room", "ok", "checks"}
    assert report["ok"] is True
    assert all(set(check) == {"name", "ok", "detail"} for check in report["checks"])
    await bump_available(shop.redis, shop.room, sale)
    failed = run_audit(shop.room, env={"REDIS_URL": redis_url})
    assert failed.returncode == 1
    assert f"FAIL sale {sale}: stock adds up" in failed.stdout


def test_cli_finds_a_running_engines_embedded_redis(tmp_path: Path) -> None:
    missing = run_audit("demo", "--data-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "no Redis to read" in missing.stderr
    with serving("--data-dir", str(tmp_path), env={"REDIS_URL": ""}):
        result = run_audit("no-such-room", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 1
    assert orjson.loads(result.stdout)["checks"][0]["name"] == "room exists"


def test_cli_unreachable_redis_is_exit_2_not_a_failed_audit() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_audit("demo", "--redis-url", f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 2
    assert "livecart: Redis:" in result.stderr
