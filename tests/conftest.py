"""Shared fixtures: a real redis-server per test session on a free port, and factories
for engines, rooms, tokens and viewers that clean up after themselves."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
import jwt
import msgspec
import orjson
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError
from starlette.requests import Request
from starlette.types import Message

from clients import HostClient, ViewerClient
from engine.commerce.catalog import Catalog, ProductTerms
from engine.commerce.checkout_request import CheckoutRequest
from engine.commerce.coupons import Coupons, DropTerms, TemplateTerms
from engine.commerce.orders import Order, OrderStore
from engine.commerce.payments import Payments, sign
from engine.commerce.psp import SimulatedProvider
from engine.commerce.risk import RiskRules
from engine.commerce.sales import SaleStore, SaleTerms
from engine.commerce.stock import GrabRequest, Stock
from engine.core.identity import Role
from engine.core.settings import Settings
from engine.insights.audit import audit_room
from engine.rooms import auth
from engine.server.api.base import Call
from engine.server.app import Engine
from engine.server.listener import reuseport_socket
from engine.server.node import Node
from engine.store import keys
from engine.store.postgres_server import EmbeddedPostgres
from engine.store.redis_server import EmbeddedRedis
from engine.store.scripts import Scripts

# The console and the viewer page, opened the same way by every browser test.
pytest_plugins = ("tests.pages",)

# tests/hooks/oversell: on PYTHONPATH, an engine that oversells (tests/test_loadtest.py).
OVERSELL_HOOK = Path(__file__).resolve().parent / "hooks" / "oversell"
SECRET = "test-secret-" + "x" * 20
JWT_KID, JWT_SECRET = "test-hs-1", "test-jwt-secret-" + "j" * 24
# Engines the tests start as processes stop at once on SIGTERM: no load balancer is
# waiting to be told (the drain itself is tested with LIVECART_DRAIN_S set, tests/test_app.py).
os.environ.setdefault("LIVECART_DRAIN_S", "0")
# ...and pay through the simulated provider, off by default in `serve` (tests/test_psp.py
# checks the default with it unset).
os.environ.setdefault("LIVECART_SIMULATED_PSP", "on")
# ...and keep no books: the ledger (a PostgreSQL each) is tested where it is the subject,
# with `ledger_url` (tests/test_ledger_*.py) or LIVECART_LEDGER=on in a process's env.
os.environ.setdefault("LIVECART_LEDGER", "off")
T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 10.0
) -> T:
    """Call `probe` until `done` holds for its result; return that result."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = await probe()
            if done(result):
                return result
            await asyncio.sleep(0.05)


def call_with(body: Any) -> Call:
    """A call whose request body is `body` (JSON-encoded unless it is bytes, integers of any
    size included), to decode it as a route does."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def receive() -> Message:
        return {"type": "http.request", "body": raw, "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    return Call(request, cast(Node, None), "")


async def decoded(body: Any, schema: type[T]) -> T:
    """`body` decoded into `schema` as a route's `call.decode` does: refusals are the
    errors the route answers."""
    return await call_with(body).decode(schema)


async def eventually(
    predicate: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0
) -> None:
    """Wait until `predicate()` holds (polling), or fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = predicate()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL per test process, started when a test first asks for a ledger. Its
    folder is under the system's temp dir: run by root, the server runs as another user,
    who must reach it (pytest's own temp dirs are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="livecart-pg-"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(folder / "pg", fsync=False)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ledger_url(postgres_server: EmbeddedPostgres) -> str:
    """A database of this test's own on the session's PostgreSQL (a plain fixture: sync
    tests that start engine processes take it too). It is not dropped after the test: an
    engine of the test may still be writing to it then; the session's server goes with all."""
    name = f"t_{secrets.token_hex(6)}"
    _admin(postgres_server.url, f"CREATE DATABASE {name}")
    return postgres_server.url.rsplit("/", 1)[0] + f"/{name}"


def _admin(url: str, statement: str) -> None:
    """One statement, on a thread of its own: asyncio.run here would leave this thread
    without the event loop pytest-asyncio's oldest allowed version looks for."""

    async def run() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def own_redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own. Tests of the books take it as their `redis_url` (a
    module's fixture of that name): a ledger copies every room of its Redis, and the
    session's holds every other test's rooms (and their buyers called ana)."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "port": 0,
        "data_dir": tmp_path / "data",
        "secret": SECRET,
        "tick_ms": 20,
        "sync_ms": 20,
        "hub_linger_s": 0.5,
        "metrics_flush_ms": 50,
        "simulated_psp": True,
        "ledger": False,
        # JWTs from a platform's identity service are taken beside lc1 tokens (jwt_token()).
        "jwt_hs256_keys": (f"{JWT_KID}:{JWT_SECRET}",),
    }
    values.update(overrides)
    return Settings(**values)


EngineFactory = Callable[..., Awaitable[Engine]]


async def within(step: Awaitable[None], what: str, timeout_s: float = 60.0) -> None:
    """A teardown step that must end: if it hangs, print where every task is stuck (the
    test's own timeout would show only the event loop waiting) and fail."""
    try:
        async with asyncio.timeout(timeout_s):
            await step
    except TimeoutError:
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
        raise AssertionError(f"{what} did not finish in {timeout_s:.0f} s") from None


@pytest.fixture
async def engine_factory(redis_url: str, tmp_path: Path) -> AsyncIterator[EngineFactory]:
    engines: list[Engine] = []

    async def make(**overrides: Any) -> Engine:
        overrides.setdefault("redis_url", redis_url)
        engine = Engine(make_settings(tmp_path, **overrides))
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):
        await within(engine.stop(), "stopping an engine")


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> Engine:
    return await engine_factory()


@dataclass
class TwinEngines:
    """Two engines sharing one port with SO_REUSEPORT, as two workers of `serve --workers 2`
    do; neither started yet (`start(n)`), both stopped at teardown."""

    port: int
    engines: list[Engine]
    sockets: list[socket.socket]

    async def start(self, n: int) -> None:
        await self.engines[n].start(self.sockets[n])


@pytest.fixture
async def twin_engines(tmp_path: Path, redis_url: str) -> AsyncIterator[TwinEngines]:
    first = reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuseport_socket("127.0.0.1", port)
    settings = make_settings(tmp_path, port=port, redis_url=redis_url)
    twins = TwinEngines(port, [Engine(settings), Engine(settings)], [first, second])
    yield twins
    for engine in twins.engines:
        await within(engine.stop(), "stopping an engine")


def token(room: str, role: str = "viewer", user: str | None = None, **kw: Any) -> str:
    return auth.mint(
        SECRET, room=room, role=Role(role), user=user or f"{role}-{secrets.token_hex(3)}", **kw
    )


def jwt_token(room: str, role: str, user: str, name: str | None = None) -> str:
    """An HS256 JWT as a platform's identity service mints one (docs/security.md), taken
    by every test engine (make_settings)."""
    now = int(time.time())
    claims = {"sub": user, "room": room, "role": role, "name": name or user, "iat": now,
              "exp": now + 3600}  # fmt: skip
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256", headers={"kid": JWT_KID})


RoomFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def room_factory(engine: Engine) -> RoomFactory:
    async def make(live: bool = True, **fields: Any) -> str:
        room = f"r-{secrets.token_hex(5)}"
        async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
            await host.create_room(fields.pop("title", "Test show"), **fields)
            if live:
                await host.go_live()
        return room

    return make


@pytest.fixture
async def room(room_factory: RoomFactory) -> str:
    return await room_factory()


ViewerFactory = Callable[..., Awaitable[ViewerClient]]


@pytest.fixture
async def viewer_factory(engine: Engine) -> AsyncIterator[ViewerFactory]:
    clients: list[ViewerClient] = []

    async def make(
        room: str,
        role: str | None = "viewer",
        *,
        user: str | None = None,
        target: Engine | None = None,
        **kw: Any,
    ) -> ViewerClient:
        tok = None if role is None else token(room, role, user)
        client = ViewerClient((target or engine).ws_url, room, tok, **kw)
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await within(client.close(), "closing a viewer")


@pytest.fixture
async def viewers() -> AsyncIterator[list[ViewerClient]]:
    """Viewers a test opens itself (against its own engines, with its own tokens), closed
    after it."""
    opened: list[ViewerClient] = []
    yield opened
    for viewer in opened:
        await within(viewer.close(), "closing a viewer")


@pytest.fixture
async def host(engine: Engine, room: str) -> AsyncIterator[HostClient]:
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as client:
        yield client


T0 = 1_900_000_000_000  # a pinned clock for storage-level tests


@dataclass
class Shop:
    redis: aioredis.Redis
    scripts: Scripts
    sales: SaleStore
    stock: Stock
    room: str

    async def sale(self, allotment: int = 5, **terms: Any) -> str:
        sale = SaleTerms(sku="SKU-1", allotment=allotment, **terms)
        return (await self.sales.create(self.room, sale, at_ms=T0)).id

    async def grab(self, sale: str, user: str, request: str, quantity: int = 1,
                   at: int = T0) -> dict[str, Any]:  # fmt: skip
        [answer] = await self.stock.grab_batch(
            self.room, sale, [GrabRequest(user, request, quantity)], at_ms=at
        )
        return {**answer.body, "replayed": answer.replayed}

    async def audit_ok(self) -> None:
        report = await audit_room(self.redis, self.room)
        assert report.ok, report.render()


@pytest.fixture
async def shop(redis: aioredis.Redis) -> AsyncIterator[Shop]:
    """A room with one product (SKU-1, 25.00 EUR) and the stock services, no engine."""
    scripts = Scripts()
    await scripts.load(redis)
    catalog = Catalog(redis, scripts, 1000)
    room = f"stock-{secrets.token_hex(4)}"
    await redis.hset(keys.room_meta(room), mapping={"state": "live", "title": "t"})
    await catalog.create(
        room, ProductTerms(title="Tee", currency="EUR", skus=[{"sku": "SKU-1", "list_price": 2500}])
    )
    stock = Stock(redis, scripts, outbox_maxlen=10_000)
    yield Shop(redis, scripts, SaleStore(redis, scripts, catalog, 1000, 10_000), stock, room)
    await stock.close()


PAYMENT_SECRET = b"test-payment-secret"
ADDRESS = {"name": "Ana Buyer", "line1": "1 Main St", "city": "Lisbon", "postal_code": "1000-001",
           "country": "PT"}  # fmt: skip


@dataclass
class Store:
    """A shop plus coupons, orders and payments (the simulated provider), no engine."""

    shop: Shop
    coupons: Coupons
    orders: OrderStore
    provider: SimulatedProvider
    payments: Payments

    @property
    def room(self) -> str:
        return self.shop.room

    async def sale(self, allotment: int = 5, **terms: Any) -> str:
        """A sale that is live now (by the real clock, as the order scripts use Redis time)."""
        sale = SaleTerms(**{"sku": "SKU-1", "allotment": allotment, "per_user_limit": 3, **terms})
        return (await self.shop.sales.create(self.room, sale)).id

    async def reserve(self, sale: str, user: str, quantity: int = 1) -> str:
        answer = await self.shop.grab(sale, user, secrets.token_hex(4), quantity, at=now_ms())
        assert answer["status"] == "reserved", answer
        reservation: str = answer["reservation"]
        return reservation

    async def checkout(self, user: str, reservations: list[str], coupons: list[str] | None = None,
                       *, key: str | None = None, device: str | None = None,
                       at_ms: int | None = None) -> Order:  # fmt: skip
        body: dict[str, Any] = {
            "reservations": reservations, "coupons": coupons or [],
            "shipping_address": ADDRESS, "contact": {"email": "ana@example.com"},
            "idempotency_key": key or secrets.token_hex(8),
        }  # fmt: skip
        if device:
            body["device"] = device
        request = msgspec.convert(body, CheckoutRequest)
        order, _ = await self.orders.checkout(self.room, user, request, at_ms=at_ms)
        return order

    async def coupon(self, user: str, **terms: Any) -> str:
        """A template with `terms`, dropped now, claimed by `user`; the coupon id."""
        body = {"title": "c", "kind": "amount_off", "amount": 500, "currency": "EUR",
                "total": 100, **terms}  # fmt: skip
        template = await self.coupons.create_template(
            self.room, msgspec.convert(body, TemplateTerms)
        )
        drop = await self.coupons.drop(self.room, template.id, DropTerms(quantity=10))
        answer = await self.coupons.claim(self.room, drop.id, user, secrets.token_hex(4))
        assert answer.status == "claimed", answer.body
        coupon: str = answer.body["coupon"]
        return coupon

    async def start_payment(self, order: Order) -> str:
        """A payment at the provider for `order` (its callback URL goes nowhere: tests
        deliver callbacks themselves)."""
        payment = await self.provider.create_payment(
            self.room, order.id, order.total, order.currency, "http://127.0.0.1:9/callback"
        )
        return payment.id

    def callback(self, order: Order, payment: str, *, event: str = "payment.succeeded",
                 amount: int | None = None, currency: str | None = None,
                 now_s: float | None = None) -> tuple[dict[str, str], bytes]:  # fmt: skip
        body = orjson.dumps({
            "event": event, "payment_id": payment, "room": self.room, "order": order.id,
            "amount": order.total if amount is None else amount,
            "currency": currency or order.currency,
        })  # fmt: skip
        return sign(PAYMENT_SECRET, body, now_s=time.time() if now_s is None else now_s), body

    async def pay(self, order: Order, payment: str | None = None) -> dict[str, Any]:
        payment = payment or await self.start_payment(order)
        headers, body = self.callback(order, payment)
        return await self.payments.callback(headers, body, now_s=time.time())

    async def audit_ok(self) -> None:
        await self.shop.audit_ok()


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def store(shop: Shop) -> AsyncIterator[Store]:
    redis, scripts = shop.redis, shop.scripts
    coupons = Coupons(redis, scripts, log_maxlen=1000, outbox_maxlen=10_000)
    orders = OrderStore(
        redis, scripts, sales=shop.sales, stock=shop.stock, coupons=coupons,
        risk=RiskRules(max_orders_per_user=5, max_orders_per_device=10, review_threshold=100_000),
        payment_window_ms=300_000, shipping_fee=600, events_maxlen=10_000, outbox_maxlen=10_000,
    )  # fmt: skip
    provider = SimulatedProvider(redis, scripts, PAYMENT_SECRET, timeout_s=2.0)
    payments = Payments(redis, orders, provider, PAYMENT_SECRET, tolerance_s=300)
    yield Store(shop, coupons, orders, provider, payments)
    await coupons.close()
    await provider.close()


# ---- a real browser (tests/test_console.py, tests/test_viewer_web.py, tests/test_report*.py) ---

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def find_chromium() -> tuple[str | None, str]:
    """The browser's path, else None and why: LIVECART_CHROMIUM (a path or a command name)
    when set, else the first of CHROMIUM_NAMES on PATH."""
    wanted = os.environ.get("LIVECART_CHROMIUM", "")
    if wanted:
        found = shutil.which(wanted)
        return found, "" if found else f"LIVECART_CHROMIUM={wanted!r} is not an executable"
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found, ""
    return None, f"none of {', '.join(CHROMIUM_NAMES)} is on PATH"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path. Without it the browser tests fail (never skip): a run that cannot
    check the console, the viewer page and the report must not pass."""
    path, why = find_chromium()
    if path is None:
        pytest.fail(
            f"Chromium is missing ({why}): the browser tests need it. Install it (Debian: "
            "`apt-get install chromium`; `make test` installs it when run as root), or set "
            "LIVECART_CHROMIUM to the browser's path."
        )
    return path


# Marks a test that drives Chromium (through `browser`): it fails when there is none.
needs_chromium = pytest.mark.usefixtures("chromium")


async def capture(page: Page, path: Path, *, full_page: bool = False) -> bytes:
    """`page.screenshot` to `path`, asked a second time when Chromium refuses one capture
    with "Unable to capture screenshot": a known transient refusal of the browser
    (robotframework-browser#5237), which takes the same picture when asked again."""
    try:
        return await page.screenshot(path=str(path), full_page=full_page)
    except PlaywrightError as error:
        if "Unable to capture screenshot" not in str(error):
            raise
    return await page.screenshot(path=str(path), full_page=full_page)


def watch_page(page: Page) -> tuple[list[str], list[str]]:
    """The page's console errors (and uncaught exceptions) and every URL it requests, as
    they happen: a self-contained page has neither errors nor requests but its own."""
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda request: requests.append(request.url))
    return errors, requests


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Headless Chromium (Playwright with `executable_path`: no browser download)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()
