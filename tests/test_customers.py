"""engine/ledger/customers.py and its routes: profiles, RFM scores and tiers of a shop's
buyers across its shows, read by SQL from a real PostgreSQL (a database of the test's own).

`SHOP_ORDERS` is a hand-built shop: four shows and eight buyers whose scores are worked
out by hand below (docs/ledger.md § Customers and RFM has the rule), plus rows that must
not count: an order refunded in full, one awaiting payment, one paid after the as-of time
and another shop's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import asyncpg
import pytest

from clients import HostClient, LivecartClientError, ShopperClient
from engine.commerce.tiers import Tier
from engine.core.clock import now_ms
from engine.ledger import database
from engine.ledger.customers import DAY_MS, customers, history, returning_buyers, tier_of
from engine.ledger.viewers import WatchCopier, copy_room
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import EngineFactory, ViewerFactory, eventually, token
from tests.test_psp import ana_order


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


AS_OF = 1_790_000_000_000  # a fixed clock: the profiles below hold at this moment
SHOWS = {"s1": 120, "s2": 60, "s3": 20, "s4": 2}  # days before AS_OF each show started


@dataclass(frozen=True)
class Buy:
    user: str
    show: str
    amount: int  # minor units
    currency: str = "USD"
    state: str = "paid"
    refunded: int = 0
    days: float | None = None  # paid this many days before AS_OF; default the show's start


SHOP_ORDERS = [
    *(Buy("ana", show, 5000) for show in ("s1", "s2", "s3", "s4")),
    Buy("ana", "s4", 800, "EUR"),  # spend in another currency: in the profile, not scored
    Buy("ben", "s1", 3000, state="partially_refunded", refunded=1000),
    *(Buy("ben", show, 3000) for show in ("s2", "s3", "s3")),
    Buy("cat", "s4", 2500),
    Buy("dan", "s3", 1000), Buy("dan", "s4", 1000),
    Buy("eve", "s1", 9000), Buy("eve", "s2", 9000),
    Buy("fay", "s1", 1500),
    Buy("gus", "s2", 2000), Buy("gus", "s3", 1200),
    Buy("hal", "s3", 4000),
    # Not purchases: refunded in full, awaiting payment, paid after AS_OF.
    Buy("fay", "s4", 6000, state="refunded", refunded=6000),
    Buy("hal", "s4", 7000, state="pending_payment"),
    Buy("cat", "s4", 3000, days=-1),
]  # fmt: skip
# (recency days, R, F, M, tier), worked out by hand with n = 8 buyers:
# score = 1 + floor(5 * (2 * below + ties) / 16).
# Recency, worst first: fay 120 (below 0, ties 1) -> 1; eve 60 (1, 1) -> 1;
#   ben, gus, hal 20 (2, 3) -> 3; ana, cat, dan 2 (5, 3) -> 5.
# Frequency: cat, fay, hal 1 (0, 3) -> 1; dan, eve, gus 2 (3, 3) -> 3; ben 4 (6, 1) -> 5;
#   ana 5 (7, 1) -> 5.
# Monetary (USD): fay 1500, dan 2000, cat 2500, gus 3200, hal 4000, ben 11000, eve 18000,
#   ana 20000 -> 1, 1, 2, 3, 3, 4, 5, 5.
EXPECTED = {
    "ana": (2, 5, 5, 5, "champions"),
    "ben": (20, 3, 5, 4, "loyal"),  # frequent, not lately enough for a champion
    "cat": (2, 5, 1, 2, "new"),  # one purchase, 2 days ago
    "dan": (2, 5, 3, 1, "promising"),  # recent, a second purchase
    "eve": (60, 1, 3, 5, "at_risk"),  # spent much, two months ago
    "fay": (120, 1, 1, 1, "hibernating"),
    "gus": (20, 3, 3, 3, "needs_attention"),
    "hal": (20, 3, 1, 3, "new"),  # one purchase 20 days ago: still within 30
}
WATCHED = [("ana", show, 600_000) for show in SHOWS] + [
    ("zoe", "s3", 90_000), ("zoe", "s4", 30_000), ("ivy", "s4", 0),  # ivy never stayed
]  # fmt: skip


async def seed(url: str, shop: str, as_of: int, *, prefix: str = "") -> None:
    """SHOP_ORDERS and WATCHED as rows of the books of `shop`, dated from `as_of`, in rooms
    named `prefix` + show; and one order of another shop, which must never count."""
    connection = await asyncpg.connect(url)
    try:
        for show, days in SHOWS.items():
            start = as_of - days * DAY_MS
            await connection.execute(
                "INSERT INTO shows (room, shop, title, state, created_at_ms, started_at_ms,"
                " ended_at_ms) VALUES ($1, $2, $3, 'ended', $4, $4, $5)",
                prefix + show, shop, f"Show {show}", start, start + 3_600_000,
            )  # fmt: skip
        orders = [*SHOP_ORDERS, Buy("ana", "s4", 99_000)]
        for n, buy in enumerate(orders):
            days = SHOWS[buy.show] if buy.days is None else buy.days
            at = int(as_of - days * DAY_MS)
            paid = None if buy.state == "pending_payment" else at
            owner = shop if n < len(SHOP_ORDERS) else f"{shop}-other"
            await connection.execute(
                "INSERT INTO orders (room, order_id, shop, user_id, state, currency, subtotal,"
                " discount, shipping, total, refunded, coupons, lines, created_at_ms,"
                " paid_at_ms, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $7, $8, '[]',"
                " '[]', $9, $10, 1)",
                prefix + buy.show, f"o{n}", owner, buy.user, buy.state, buy.currency,
                buy.amount, buy.refunded, at - 60_000, paid,
            )  # fmt: skip
        for user, show, ms in WATCHED:
            await connection.execute(
                "INSERT INTO show_viewers (room, user_id, shop, watch_ms) VALUES ($1, $2, $3, $4)",
                prefix + show, user, shop, ms,
            )  # fmt: skip
    finally:
        await connection.close()


@pytest.fixture
async def books(ledger_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The migrated books of this test, holding the hand-built shop `shop-1`."""
    await database.migrate(ledger_url)
    await seed(ledger_url, "shop-1", AS_OF)
    pool = await database.connect(ledger_url)
    yield pool
    await pool.close()


async def test_scores_and_tiers_of_a_hand_built_shop(books: asyncpg.Pool) -> None:
    found = await customers(books, "shop-1", as_of=AS_OF)
    assert found.currency == "USD"
    scored = {
        p.user: (p.recency_days, *(p.scores or ()), p.tier.value)
        for p in found.profiles
        if p.tier is not Tier.PROSPECT
    }
    assert scored == EXPECTED
    assert found.counts() == {"champions": 1, "loyal": 1, "new": 2, "promising": 1,
                              "needs_attention": 1, "at_risk": 1, "hibernating": 1,
                              "prospect": 1}  # fmt: skip
    # Buyers by lifetime value, then the prospects.
    assert [p.user for p in found.profiles] == [
        "ana", "eve", "ben", "hal", "gus", "cat", "dan", "fay", "zoe",
    ]  # fmt: skip
    assert found.tier_map() == {user: row[4] for user, row in EXPECTED.items()}


async def test_a_profile_sums_the_shop_s_shows(books: asyncpg.Pool) -> None:
    found = await customers(books, "shop-1", as_of=AS_OF)
    ana, ben, zoe = found.get("ana"), found.get("ben"), found.get("zoe")
    assert ana is not None
    assert ben is not None
    assert zoe is not None
    wire = ana.to_wire()
    assert (wire["orders"], wire["shows_bought"], wire["shows_watched"]) == (5, 4, 4)
    assert wire["spend"] == {"EUR": 800, "USD": 20000}  # another shop's 99000 is not here
    assert wire["ltv"] == 20000
    assert wire["first_purchase_at"] == AS_OF - 120 * DAY_MS
    assert wire["last_purchase_at"] == AS_OF - 2 * DAY_MS
    assert wire["rfm"] == {"r": 5, "f": 5, "m": 5}
    assert (ben.ltv, ben.orders) == (11000, 4)  # net of its partial refund
    assert zoe.to_wire()["rfm"] is None
    assert (zoe.shows_watched, zoe.watch_ms, zoe.orders) == (2, 120_000, 0)
    assert found.get("ivy") is None  # joined a show without staying: not a prospect


async def test_the_as_of_time_sees_the_books_as_they_were(books: asyncpg.Pool) -> None:
    """A day after AS_OF cat's second purchase is in: two purchases, no longer new."""
    later = await customers(books, "shop-1", as_of=AS_OF + DAY_MS)
    cat = later.get("cat")
    assert cat is not None
    assert (cat.orders, cat.recency_days, cat.tier) == (2, 0, Tier.PROMISING)
    before_any = await customers(books, "shop-1", as_of=AS_OF - 200 * DAY_MS)
    assert (before_any.profiles, before_any.currency) == ([], None)


async def test_a_tiny_shop_still_spans_the_scores(books: asyncpg.Pool) -> None:
    """1 buyer scores 3; of 2 buyers the better one 4 and the other 2 (no NTILE gaps)."""
    async with books.acquire() as connection:
        for n, (user, days) in enumerate([("x", 10), ("y", 5), ("y", 4)]):
            at = AS_OF - days * DAY_MS
            await connection.execute(
                "INSERT INTO orders (room, order_id, shop, user_id, state, currency, subtotal,"
                " discount, shipping, total, refunded, coupons, lines, created_at_ms,"
                " paid_at_ms, version) VALUES ('t1', $1, 'tiny', $2, 'paid', 'JPY', 1000, 0, 0,"
                " 1000, 0, '[]', '[]', $3, $3, 1)", f"t{n}", user, at,
            )  # fmt: skip
    two = await customers(books, "tiny", as_of=AS_OF)
    assert {p.user: p.scores for p in two.profiles} == {"x": (2, 2, 2), "y": (4, 4, 4)}
    one = await customers(books, "tiny", as_of=AS_OF - 6 * DAY_MS)
    assert [(p.user, p.scores, p.tier) for p in one.profiles] == [("x", (3, 3, 3), Tier.NEW)]


@pytest.mark.parametrize(
    ("scores", "orders", "first_days", "tier"),
    [
        ((5, 5, 5), 9, 300, Tier.CHAMPIONS),
        ((4, 4, 3), 9, 300, Tier.LOYAL),  # M 3: not a champion
        ((3, 4, 1), 9, 300, Tier.LOYAL),
        ((5, 1, 1), 1, 30, Tier.NEW),  # the 30th day is still new
        ((5, 1, 1), 1, 31, Tier.PROMISING),
        ((2, 1, 5), 1, 10, Tier.NEW),  # new comes before at risk
        ((2, 4, 1), 6, 300, Tier.AT_RISK),
        ((1, 3, 3), 2, 300, Tier.HIBERNATING),
        ((3, 3, 5), 2, 300, Tier.NEEDS_ATTENTION),
    ],
)
def test_the_tier_table(scores: tuple[int, int, int], orders: int, first_days: int,
                        tier: Tier) -> None:  # fmt: skip
    assert tier_of(*scores, orders=orders, first_days=first_days) is tier


async def test_history_lists_orders_and_shows_across_the_shop(books: asyncpg.Pool) -> None:
    seen = await history(books, "shop-1", "fay", as_of=AS_OF)
    assert [(o["show"], o["state"], o["total"], o["refunded"]) for o in seen["orders"]] == [
        ("Show s4", "refunded", 6000, 6000), ("Show s1", "paid", 1500, 0),
    ]  # fmt: skip
    zoe = await history(books, "shop-1", "zoe", as_of=AS_OF)
    assert zoe["orders"] == []
    assert [(s["room"], s["watch_ms"]) for s in zoe["shows"]] == [("s4", 30_000), ("s3", 90_000)]


async def test_returning_buyers_bought_in_an_earlier_show(books: asyncpg.Pool) -> None:
    s4 = AS_OF - 2 * DAY_MS
    found = await returning_buyers(books, "shop-1", "s4", ["ana", "cat", "dan", "fay", "nobody"],
                                   before=s4)  # fmt: skip
    # cat's first purchase is s4's; fay's order in s4 was refunded in full, her s1 one counts.
    assert found == {"ana", "dan", "fay"}
    s2 = AS_OF - 60 * DAY_MS  # gus bought in s2 and later only
    assert await returning_buyers(books, "shop-1", "s2", ["ana", "eve", "gus"],
                                  before=s2) == {"ana", "eve"}  # fmt: skip


# ---- the watch time copy (engine/ledger/viewers.py) ----------------------------------------


async def new_room(engine: Engine, shop: str, title: str = "Tonight") -> str:
    """A live room of `shop` (a host of its own: no other test's rooms are its shows)."""
    room = f"c-{secrets.token_hex(5)}"
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        await host.create_room(title)
        await host.go_live()
    return room


async def test_watch_time_is_copied_and_an_ended_show_only_once(
    engine_factory: EngineFactory, viewer_factory: ViewerFactory, ledger_url: str
) -> None:
    engine = await engine_factory()  # no ledger: the copy is driven by hand here
    assert engine.node is not None
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    zoe = await viewer_factory(room, user="zoe", target=engine)
    redis = engine.node.redis
    await eventually(lambda: redis.hexists(keys.watch_since(room), "zoe"))
    start = int(await redis.hget(keys.watch_since(room), "zoe"))
    await redis.hset(keys.watch_ms(room), "zoe", 1000)  # an earlier session
    await database.migrate(ledger_url)
    pool = await database.connect(ledger_url)
    try:
        assert await copy_room(redis, pool, room, at_ms=start + 5000) == "live"
        rows = await pool.fetch("SELECT user_id, shop, watch_ms FROM show_viewers WHERE room = $1",
                                room)  # fmt: skip
        assert [tuple(r) for r in rows] == [("zoe", shop, 6000)]  # the host is not a viewer
        # A copy from an older read never takes time back.
        await copy_room(redis, pool, room, at_ms=start + 1000)
        assert await watched_ms(pool, room) == 6000
        await zoe.close()  # her session ends: its real length joins the earlier one
        await eventually(lambda: redis.hexists(keys.watch_ms(room), "zoe"))
        await eventually(lambda: _not(redis.hexists(keys.watch_since(room), "zoe")))
        total = int(await redis.hget(keys.watch_ms(room), "zoe"))
        async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
            await host.end()
        copier = WatchCopier(redis, pool)
        assert await copier.pass_once() >= 1
        assert await pool.fetchval("SELECT final FROM watch_copies WHERE room = $1", room)
        assert await watched_ms(pool, room) == max(6000, total)
        assert copier.final is not None
        assert room in copier.final
        await redis.hincrby(keys.watch_ms(room), "zoe", 50_000)
        await copier.pass_once()  # ended and copied: never read again
        assert await watched_ms(pool, room) == max(6000, total)
    finally:
        await pool.close()


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


async def watched_ms(pool: asyncpg.Pool, room: str) -> int:
    """zoe's copied watch time in `room` (a pass copies every room of the test's Redis)."""
    ms: int = await pool.fetchval(
        "SELECT watch_ms FROM show_viewers WHERE room = $1 AND user_id = 'zoe'", room
    )
    return ms


# ---- the routes ------------------------------------------------------------------------------


async def test_the_host_lists_the_shop_s_customers(
    ledger_url: str, engine_factory: EngineFactory
) -> None:
    # ledger_url first: its database is dropped after the engine has stopped.
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    await seed(ledger_url, shop, AS_OF)
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        listed = await host.customers(as_of=AS_OF)
        assert (listed["shop"], listed["currency"], listed["total"]) == (shop, "USD", 9)
        assert listed["tiers"]["new"] == 2
        assert listed["tiers"]["prospect"] == 1
        assert [c["user"] for c in listed["customers"]][:3] == ["ana", "eve", "ben"]
        champions = await host.customers(tier="champions", as_of=AS_OF)
        assert [(c["user"], c["rfm"]) for c in champions["customers"]] == [
            ("ana", {"r": 5, "f": 5, "m": 5})
        ]
        assert champions["total"] == 1
        assert champions["tiers"] == listed["tiers"]
        first = await host.customers(limit=1, as_of=AS_OF)
        assert (len(first["customers"]), first["total"]) == (1, 9)
        drill = await host.customer("fay", as_of=AS_OF)
        assert drill["customer"]["tier"] == "hibernating"
        assert [(o["room"], o["show"], o["state"]) for o in drill["orders"]] == [
            ("s4", "Show s4", "refunded"), ("s1", "Show s1", "paid"),
        ]  # fmt: skip
        for query, field in ((dict(tier="gold"), "tier"), (dict(limit=0), "limit"),
                             (dict(limit="many"), "limit")):  # fmt: skip
            with pytest.raises(LivecartClientError) as refused:
                await host.customers(**query)
            assert (refused.value.code, refused.value.details) == ("invalid_field",
                                                                   {"field": field})  # fmt: skip
        with pytest.raises(LivecartClientError) as missing:
            await host.customer("nobody", as_of=AS_OF)
        assert (missing.value.status, missing.value.code) == (404, "customer_not_found")
    async with HostClient(engine.base_url, room, token(room, "moderator", "mod-1")) as mod:
        with pytest.raises(LivecartClientError) as forbidden:
            await mod.customers()
        assert forbidden.value.code == "forbidden"


async def test_a_paid_order_makes_a_customer(
    ledger_url: str, engine_factory: EngineFactory, viewer_factory: ViewerFactory
) -> None:
    """Through the engine: a real order, paid, reaches the books; the buyer is new."""
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    order = await ana_order(engine, room, viewer_factory)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        await ana.pay((await ana.start_payment(order))["payment"])
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:

        async def ana_bought() -> bool:
            return (await host.customers())["tiers"]["new"] == 1

        # The writer may first copy other tests' order events left in this Redis.
        await eventually(ana_bought, timeout_s=30)
        drill = await host.customer("ana")
    profile = drill["customer"]
    assert (profile["orders"], profile["spend"], profile["rfm"]) == (
        1, {"USD": 5600}, {"r": 3, "f": 3, "m": 3},
    )  # fmt: skip
    assert profile["shows_watched"] == 1  # the copy ran for this room before the read
    assert [(o["order"], o["state"]) for o in drill["orders"]] == [(order, "paid")]
    assert drill["as_of"] <= now_ms()


async def test_without_books_the_routes_say_ledger_disabled(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory()
    shop = f"shop-{secrets.token_hex(3)}"
    room = await new_room(engine, shop)
    async with HostClient(engine.base_url, room, token(room, "host", shop)) as host:
        for call in (host.customers(), host.customer("ana")):
            with pytest.raises(LivecartClientError) as refused:
                await call
            assert (refused.value.status, refused.value.code) == (409, "ledger_disabled")
