"""The simulated payment provider inside a real engine: its pay page and API, and its
signed callbacks into the engine over HTTP (POST /api/payments/callback)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from clients import HostClient, ShopperClient
from clients.errors import LivecartClientError
from engine.commerce.payments import SIGNATURE_HEADER, SettlementLine, sign
from engine.commerce.psp import SimulatedProvider, charge_fee, utc_day
from engine.core.errors import ConflictError
from engine.core.settings import Settings
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import (
    ADDRESS,
    PAYMENT_SECRET,
    EngineFactory,
    RoomFactory,
    Store,
    ViewerFactory,
    token,
)
from tests.test_api_catalog import JACKET

UNKNOWN = "pay_000000000000000000000000"


@dataclass
class Checkout:
    shopper: ShopperClient
    order: dict[str, Any]
    payment: str


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url) as client:
        yield client


@pytest.fixture
async def checkout(
    engine: Engine, host: HostClient, room: str, viewer_factory: ViewerFactory
) -> AsyncIterator[Checkout]:
    """Ana's pending order for one DJ-M at 5000 (+600 shipping) and a payment for it."""
    await host.create_product(**JACKET)
    sale = await host.launch_sale("DJ-M", 5, price=5000)
    viewer = await viewer_factory(room, user="ana")
    grabbed = await viewer.grab(sale["id"])
    ana = ShopperClient(engine.base_url, room, token(room, "viewer", "ana"))
    async with ana:
        order = await ana.checkout([grabbed["reservation"]], address=ADDRESS,
                                   contact={"email": "ana@example.com"})  # fmt: skip
        payment = await ana.start_payment(order["id"])
        assert payment["amount"] == order["pricing"]["total"] == 5600
        assert payment["pay_url"] == f"{engine.base_url}/psp/pay/{payment['payment']}"
        yield Checkout(ana, order, payment["payment"])


async def order_state(checkout: Checkout) -> str:
    state: str = (await checkout.shopper.order(checkout.order["id"]))["state"]
    return state


async def test_the_pay_page_names_the_order_and_amount(
    http: httpx.AsyncClient, checkout: Checkout, room: str
) -> None:
    response = await http.get(f"/psp/pay/{checkout.payment}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert f"Order <b>{checkout.order['id']}</b> in room <b>{room}</b>" in page
    assert "<b>5600 USD</b>" in page
    assert '<b id="state">created</b>' in page


async def test_a_declined_payment_then_a_paid_one(checkout: Checkout) -> None:
    declined = await checkout.shopper.pay(checkout.payment, "failed")
    assert (declined["state"], declined["delivered"], declined["status"]) == ("failed", True, 200)
    assert declined["engine"]["outcome"] == "failed"
    assert declined["engine"]["detail"] == "pending_payment"
    assert await order_state(checkout) == "pending_payment"
    paid = await checkout.shopper.pay(checkout.payment, "succeeded")
    assert paid["engine"]["outcome"] == "paid", paid
    order = await checkout.shopper.order(checkout.order["id"])
    assert (order["state"], order["payment"]) == ("paid", checkout.payment)


async def test_a_redelivery_is_a_duplicate(http: httpx.AsyncClient, checkout: Checkout) -> None:
    await checkout.shopper.pay(checkout.payment)
    paid = await checkout.shopper.order(checkout.order["id"])
    response = await http.post(f"/psp/payments/{checkout.payment}/redeliver")
    assert response.status_code == 200
    answer = response.json()
    assert (answer["delivered"], answer["status"]) == (True, 200)
    assert (answer["engine"]["outcome"], answer["engine"]["detail"]) == ("duplicate", "succeeded")
    assert await checkout.shopper.order(checkout.order["id"]) == paid


async def test_a_succeeded_payment_cannot_be_completed_again(checkout: Checkout) -> None:
    await checkout.shopper.pay(checkout.payment)
    for outcome in ("succeeded", "failed"):
        with pytest.raises(LivecartClientError) as caught:
            await checkout.shopper.pay(checkout.payment, outcome)
        assert (caught.value.status, caught.value.code) == (409, "psp_refused")
    assert await order_state(checkout) == "paid"


async def test_nothing_to_redeliver_before_an_outcome(
    http: httpx.AsyncClient, checkout: Checkout
) -> None:
    response = await http.post(f"/psp/payments/{checkout.payment}/redeliver")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "psp_refused"
    assert await order_state(checkout) == "pending_payment"


async def test_the_provider_record(http: httpx.AsyncClient, checkout: Checkout, room: str) -> None:
    await checkout.shopper.pay(checkout.payment)
    record = (await http.get(f"/psp/payments/{checkout.payment}")).json()
    assert {k: record[k] for k in ("id", "room", "order", "amount", "currency", "state")} == {
        "id": checkout.payment, "room": room, "order": checkout.order["id"], "amount": 5600,
        "currency": "USD", "state": "succeeded",
    }  # fmt: skip
    assert record["refunded"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/psp/pay/{id}"),
        ("POST", "/psp/pay/{id}"),
        ("GET", "/psp/payments/{id}"),
        ("POST", "/psp/payments/{id}/redeliver"),
    ],
)
@pytest.mark.parametrize("payment", [UNKNOWN, "not-a-payment"])
async def test_an_unknown_payment_is_not_found(
    http: httpx.AsyncClient, method: str, path: str, payment: str
) -> None:
    body = {"outcome": "succeeded"} if method == "POST" else None
    response = await http.request(method, path.format(id=payment), json=body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "payment_not_found"


async def test_a_form_post_pays_like_the_json_api(
    http: httpx.AsyncClient, checkout: Checkout
) -> None:
    response = await http.post(f"/psp/pay/{checkout.payment}", data={"outcome": "succeeded"})
    assert response.status_code == 200
    assert response.json()["engine"]["outcome"] == "paid"
    assert await order_state(checkout) == "paid"


@pytest.mark.parametrize("form", [True, False])
async def test_an_unknown_outcome_is_an_invalid_field(
    http: httpx.AsyncClient, checkout: Checkout, form: bool
) -> None:
    url = f"/psp/pay/{checkout.payment}"
    response = await (
        http.post(url, data={"outcome": "maybe"}) if form else http.post(url, json={})
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("invalid_field", {"field": "outcome"})
    assert await order_state(checkout) == "pending_payment"


async def test_a_json_outcome_of_the_wrong_type_is_an_invalid_field(
    http: httpx.AsyncClient, checkout: Checkout
) -> None:
    url = f"/psp/pay/{checkout.payment}"
    for body in ({"outcome": True}, {"outcome": ["succeeded"]}, {"outcome": None}):
        response = await http.post(url, json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["details"]) == ("invalid_field", {"field": "outcome"})
    response = await http.post(url, json=["succeeded"])
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")
    assert await order_state(checkout) == "pending_payment"


# ---- the engine's callback route ------------------------------------------------------------


async def test_an_unsigned_or_forged_callback_is_refused(
    http: httpx.AsyncClient, checkout: Checkout
) -> None:
    body = b'{"event":"payment.succeeded"}'
    forged = [(k.encode(), v.encode()) for k, v in sign(b"not-the-secret", body, now_s=0).items()]
    # Anyone can send a non-ASCII signature (the server reads it as latin-1 text).
    garbled = [*forged[:2], (SIGNATURE_HEADER.encode(), b"\xe9" * 64)]
    for sent in ([], forged, garbled):
        response = await http.post("/api/payments/callback", content=body, headers=sent)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "signature_invalid"
    assert await order_state(checkout) == "pending_payment"


async def test_an_oversized_callback_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/payments/callback", content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_large"


async def test_a_forged_host_header_cannot_redirect_the_signed_callback(
    engine: Engine, host: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await host.create_product(**JACKET)
    sale = await host.launch_sale("DJ-M", 5, price=5000)
    grabbed = await (await viewer_factory(room, user="ana")).grab(sale["id"])
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        order = await ana.checkout([grabbed["reservation"]], address=ADDRESS,
                                   contact={"email": "ana@example.com"})  # fmt: skip
        response = await ana.http.post(f"/api/rooms/{room}/orders/{order['id']}/payment",
                                       headers={"Host": "attacker.example:9"})  # fmt: skip
        assert response.status_code == 201, response.text
        payment = response.json()
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        record = (await http.get(f"/psp/payments/{payment['payment']}")).json()
    # The provider calls back the engine's own address; only the buyer's pay link (their
    # own page) follows the Host they sent.
    assert record["callback_url"] == f"{engine.base_url}/api/payments/callback"
    assert payment["pay_url"].startswith("http://attacker.example:9/psp/pay/")


async def ana_order(engine: Engine, room: str, viewer_factory: ViewerFactory) -> str:
    """The id of ana's order, awaiting payment, for one unit of a sale in `room`."""
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as seller:
        await seller.create_product(**JACKET)
        sale = await seller.launch_sale("DJ-M", 5, price=5000)
    grab = await (await viewer_factory(room, user="ana", target=engine)).grab(sale["id"])
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        order = await ana.checkout([grab["reservation"]], address=ADDRESS,
                                   contact={"email": "ana@example.com"})  # fmt: skip
    return str(order["id"])


async def test_the_public_url_names_where_the_provider_calls_back(
    engine_factory: EngineFactory, room_factory: RoomFactory, viewer_factory: ViewerFactory
) -> None:
    public = await engine_factory(public_url="https://shop.example/")
    room = await room_factory()
    order = await ana_order(public, room, viewer_factory)
    async with ShopperClient(public.base_url, room, token(room, "viewer", "ana")) as ana:
        payment = await ana.start_payment(order)
    async with httpx.AsyncClient(base_url=public.base_url) as http:
        record = (await http.get(f"/psp/payments/{payment['payment']}")).json()
    assert record["callback_url"] == "https://shop.example/api/payments/callback"


async def test_switched_off_the_simulated_provider_is_gone(
    engine_factory: EngineFactory, room_factory: RoomFactory, viewer_factory: ViewerFactory
) -> None:
    production = await engine_factory(simulated_psp=False)
    room = await room_factory()
    order = await ana_order(production, room, viewer_factory)
    async with ShopperClient(production.base_url, room, token(room, "viewer", "ana")) as ana:
        with pytest.raises(LivecartClientError) as refused:
            await ana.start_payment(order)
    assert (refused.value.status, refused.value.code) == (409, "payments_disabled")
    async with httpx.AsyncClient(base_url=production.base_url) as http:
        for path in ("/psp/payments/pay_0123456789abcdef", "/psp/pay/pay_0123456789abcdef"):
            assert (await http.get(path)).status_code == 404
        paid = await http.post("/psp/pay/pay_0123456789abcdef", json={"outcome": "succeeded"})
        assert paid.status_code in {404, 405}


def test_serve_leaves_the_simulated_provider_off_unless_asked(tmp_path: Path) -> None:
    """`livecart serve` with LIVECART_SIMULATED_PSP unset: no /psp/ routes and /readyz
    says nothing of it; with it on, /readyz says so and the log warns at start."""
    assert Settings().simulated_psp is False
    assert Settings.from_env({}).simulated_psp is False
    base = {k: v for k, v in os.environ.items() if k != "LIVECART_SIMULATED_PSP"}
    for env, on in ((base, False), ({**base, "LIVECART_SIMULATED_PSP": "on"}, True)):
        data = tmp_path / ("on" if on else "off")
        log = tmp_path / f"{data.name}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--workers", "1",
                 "--data-dir", str(data)],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
            )  # fmt: skip
        assert process.stdout is not None
        with process.stdout:
            try:
                url = process.stdout.readline().split("listening on ", 1)[1].split()[0]
                ready = httpx.get(f"{url}/readyz", timeout=10).json()
                page = httpx.get(f"{url}/psp/payments/pay_0123456789abcdef", timeout=10)
            finally:
                process.terminate()
                process.wait(30)
        assert ready.get("simulated_psp", False) is on
        # Mounted: an unknown payment is the provider's own 404; not mounted: no such route.
        assert (page.headers["content-type"].startswith("application/json") and
                page.json()["error"]["code"] == "payment_not_found") is on  # fmt: skip
        assert ("simulated payment provider is ON" in log.read_text()) is on


async def test_the_pay_page_escapes_what_it_shows(
    engine: Engine, room_factory: RoomFactory, viewer_factory: ViewerFactory,
    redis: aioredis.Redis,
) -> None:  # fmt: skip
    """Threat 25 (docs/security.md): every field on the pay page is escaped. The engine
    validates them all (ids, integer amounts, ISO currencies), so markup can only come
    from a tampered record: written here straight into Redis."""
    room = await room_factory()
    order = await ana_order(engine, room, viewer_factory)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        payment = (await ana.start_payment(order))["payment"]
    markup = '<script>window.__xss=1</script><img src=x onerror="alert(1)">'
    await redis.hset(keys.psp_payment(payment), mapping={"order": markup, "currency": markup})
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        page = (await http.get(f"/psp/pay/{payment}")).text
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page


async def test_one_refund_id_refunds_once_however_many_ask_at_once(
    store: Store, redis_url: str
) -> None:
    """The provider's idempotency by refund id is atomic: five unwinds asking for the same
    refund at the same moment refund it once; a different id cannot take more than paid."""
    sale = await store.sale(allotment=5)
    order = await store.checkout("ana", [await store.reserve(sale, "ana")])
    payment = await store.start_payment(order)
    # The buyer paid at the provider (its own record; the engine's callback is not needed).
    await store.shop.redis.hset(keys.psp_payment(payment), "state", "succeeded")
    # Five processes' unwinds (each its own provider client and Redis connection).
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(5)]
    providers = [SimulatedProvider(c, store.shop.scripts, PAYMENT_SECRET) for c in clients]
    try:
        answers = await asyncio.gather(
            *(provider.refund(payment, order.total, "team-gb1-t2") for provider in providers)
        )
    finally:
        for provider, client in zip(providers, clients, strict=True):
            await provider.close()
            await client.aclose()
    assert answers == ["team-gb1-t2"] * 5
    record = await store.provider.get(payment)
    assert record["refunded"] == order.total
    assert record["refund:team-gb1-t2"] == str(order.total)
    with pytest.raises(ConflictError, match="above the amount paid"):
        await store.provider.refund(payment, 1, "another")


# ---- settlement data ----------------------------------------------------------------------------


async def settled(http: httpx.AsyncClient, since_ms: int) -> list[dict[str, Any]]:
    """Every settlement line from `since_ms` on, through the route (its day, and the next
    one should the clock have passed midnight UTC meanwhile)."""
    days = sorted({utc_day(since_ms), utc_day(int(time.time() * 1000))})
    lines: list[dict[str, Any]] = []
    for day in days:
        response = await http.get(f"/psp/settlements/{day.isoformat()}")
        assert response.status_code == 200, response.text
        assert response.json()["day"] == day.isoformat()
        lines += response.json()["lines"]
    return [line for line in lines if line["at_ms"] >= since_ms]


def test_the_simulated_fee_is_2_9_percent_and_30_rounded_half_up() -> None:
    assert charge_fee(5600) == 162 + 30  # 162.4
    assert charge_fee(500) == 15 + 30  # 14.5: half up
    assert charge_fee(1500) == 44 + 30  # 43.5
    assert charge_fee(0) == 30


async def test_a_payment_that_succeeds_is_one_charge_line_with_its_fee(
    http: httpx.AsyncClient, checkout: Checkout, room: str
) -> None:
    since = int(time.time() * 1000)
    await checkout.shopper.pay(checkout.payment, "failed")
    assert await settled(http, since) == []  # a declined card moves no money
    await checkout.shopper.pay(checkout.payment)
    await http.post(f"/psp/payments/{checkout.payment}/redeliver")
    [line] = await settled(http, since)
    assert line.pop("at_ms") <= int(time.time() * 1000)
    assert line == {
        "reference": checkout.payment, "kind": "charge", "payment_id": checkout.payment,
        "room": room, "order": checkout.order["id"], "amount": 5600, "currency": "USD",
        "fee": 192,
    }  # fmt: skip


async def test_a_refund_is_one_refund_line_however_often_it_is_asked(
    http: httpx.AsyncClient, checkout: Checkout, host: HostClient, room: str
) -> None:
    since = int(time.time() * 1000)
    await checkout.shopper.pay(checkout.payment)
    for _ in range(2):  # the second is a replay: refunded once at the provider
        await host.refund(checkout.order["id"], "rf-1", 1000)
    await host.refund(checkout.order["id"], "rf-2", 600)
    lines = await settled(http, since)
    assert [(line["kind"], line["reference"], line["amount"], line["fee"]) for line in lines] == [
        ("charge", checkout.payment, 5600, 192), ("refund", "rf-1", 1000, 0),
        ("refund", "rf-2", 600, 0),
    ]  # fmt: skip
    assert {(line["payment_id"], line["room"], line["order"]) for line in lines} == {
        (checkout.payment, room, checkout.order["id"])
    }


async def test_recorded_lines_are_the_days_settlement(
    engine: Engine, http: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    """What a test of reconciliation injects (a charge with no order, a duplicate) is listed
    as the provider's own lines are, in order, by the UTC day of `at_ms`."""
    assert engine.node is not None
    assert engine.node.simulated is not None
    provider = engine.node.simulated
    noon = int(datetime.datetime(2030, 6, 15, 12, tzinfo=datetime.UTC).timestamp() * 1000)
    orphan = SettlementLine(reference="pay_orphan000001", kind="charge",
                            payment_id="pay_orphan000001", room="nowhere", order="o404",
                            amount=1234, currency="JPY", fee=66, at_ms=noon)  # fmt: skip
    late = dataclasses.replace(orphan, at_ms=noon + 12 * 3600 * 1000 - 1)  # 23:59:59.999
    tomorrow = dataclasses.replace(orphan, at_ms=noon + 12 * 3600 * 1000)
    for line in (orphan, orphan, late, tomorrow):
        await provider.record_line(line)
    day = datetime.date(2030, 6, 15)
    assert await provider.settlement(day) == [orphan, orphan, late]
    assert await provider.settlement(day + datetime.timedelta(days=1)) == [tomorrow]
    response = await http.get("/psp/settlements/2030-06-15")
    listed = [dataclasses.asdict(line) for line in (orphan, orphan, late)]
    assert response.json() == {"day": "2030-06-15", "lines": listed}
    assert 0 < await redis.ttl(keys.psp_settlement("2030-06-15")) <= 30 * 24 * 3600
    assert (await http.get("/psp/settlements/2030-06-13")).json()["lines"] == []
    wide = "\uff12\uff10\uff13\uff10-06-15"  # full-width digits
    for bad in ("2030-13-01", "2030-6-15", "yesterday", "2030-02-30", wide):
        refused = await http.get(f"/psp/settlements/{bad}")
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["details"] == {"field": "day"}
