"""Live auctions: one lot at a time, the server's clock, atomic ordered bids, proxy bids.

    open ──ends_at (anti-sniping moves it) / host ends it──▶ closed

The lot is one unit of a SKU held in a private sale (engine/commerce/sales.py), so stock,
checkout, expiry and the audit treat it like any other unit. Bids are applied by
`lua/auction_bid.lua` under the rules of `rules.py` and appended to the auction's bid log.
Closing (`lua/auction_close.lua`) flips the state once; settling then awards the lot to the
winner at the final price: a reservation held for the payment window, which the winner
checks out and pays as usual (offer 1). If that hold or its order lapses, the host can offer
the lot to the runner-up at the runner-up's highest bid (offers 2, 3, ...). Any process may
close and settle: each step is idempotent.

Modes: `anti_snipe` (a bid in the last `extend_s` seconds moves the end to now +
`extend_s`) or `sudden_death` (the clock never moves).
"""

from __future__ import annotations

import builtins
import enum
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct
from redis.asyncio import Redis

from engine.commerce.sales import SaleStore
from engine.commerce.stock import Stock
from engine.core.clock import now_ms
from engine.core.errors import ConflictError, LivecartError, NotFoundError, RejectedError
from engine.core.fields import invalid_field
from engine.core.identity import Author
from engine.features.auctions.rules import (
    DEFAULT_INCREMENTS,
    MAX_PRICE,
    Bid,
    check_increments,
    runner_up,
    step,
)
from engine.store import keys
from engine.store.meter import Meter, Metric, off
from engine.store.redis_client import due_by_room, text
from engine.store.roomlog import notify_user
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.auctions")

NAME = "auctions"
AUCTION_ID_RE = re.compile(r"a[0-9]{1,9}")
MIN_DURATION_S, MAX_DURATION_S = 5, 24 * 3600
DEFAULT_DURATION_S = 60
MAX_EXTEND_S = 300
DEFAULT_EXTEND_S = 15


class AuctionState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class AuctionMode(enum.Enum):
    ANTI_SNIPE = "anti_snipe"
    SUDDEN_DEATH = "sudden_death"


class AuctionTerms(Struct, frozen=True, forbid_unknown_fields=False):
    """The body that opens an auction (docs/api.md § Auctions): the lot's SKU, the starting
    price, the clock and the increment table (rules.py `check_increments`)."""

    sku: str
    start_price: Annotated[int, Meta(ge=0, le=MAX_PRICE)]
    duration_s: Annotated[int, Meta(ge=MIN_DURATION_S, le=MAX_DURATION_S)] = DEFAULT_DURATION_S
    mode: AuctionMode = AuctionMode.ANTI_SNIPE
    extend_s: Annotated[int, Meta(ge=1, le=MAX_EXTEND_S)] = DEFAULT_EXTEND_S
    # Rows checked by `check_increments`, not by the schema: a bad row is a refusal of
    # `increments` itself (`details.field`), as the API has always named it.
    increments: tuple[Any, ...] = DEFAULT_INCREMENTS

    def __post_init__(self) -> None:
        self.increment_table()  # refused here, in the same pass as the other fields

    def increment_table(self) -> tuple[tuple[int, int], ...]:
        """The increment table as rows of (from_price, step), checked."""
        try:
            return check_increments(self.increments)
        except ValueError as exc:
            raise invalid_field("increments", str(exc)) from None


@dataclass(frozen=True, slots=True)
class Auction:
    id: str
    sku: str
    product: str
    title: str
    currency: str
    start_price: int
    increments: tuple[tuple[int, int], ...]
    mode: AuctionMode
    extend_ms: int
    sale: str
    state: AuctionState
    created_at: int
    ends_at: int
    price: int
    leader: str | None
    leader_name: str | None
    bids: int
    closed_at: int | None = None
    winner: str | None = None
    winner_name: str | None = None
    offers: tuple[dict[str, Any], ...] = ()

    @property
    def min_bid(self) -> int:
        return (
            self.start_price
            if self.leader is None
            else self.price + step(self.price, self.increments)
        )

    def due(self, at_ms: int | None = None) -> bool:
        at = now_ms() if at_ms is None else at_ms
        return self.state is AuctionState.OPEN and at >= self.ends_at

    @property
    def settled(self) -> bool:
        """Closed, and the winner (if any) has been offered the lot."""
        return self.state is AuctionState.CLOSED and (self.winner is None or bool(self.offers))

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "sku": self.sku, "product": self.product, "title": self.title,
            "currency": self.currency, "start_price": self.start_price,
            "increments": [list(row) for row in self.increments], "mode": self.mode.value,
            "extend_s": self.extend_ms // 1000, "state": self.state.value,
            "created_at": self.created_at, "ends_at": self.ends_at, "closed_at": self.closed_at,
            "price": self.price, "leader": self.leader, "leader_name": self.leader_name,
            "bids": self.bids, "min_bid": self.min_bid, "winner": self.winner,
            "winner_name": self.winner_name, "sale": self.sale, "offers": list(self.offers),
            "server_time": now_ms(),
        }  # fmt: skip

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Auction:
        h = {text(k): text(v) for k, v in raw.items()}
        offers = tuple(orjson.loads(h[f"offer:{n}"]) for n in range(1, int(h["offers"]) + 1))
        return cls(
            id=h["id"], sku=h["sku"], product=h["product"], title=h["title"],
            currency=h["currency"], start_price=int(h["start_price"]),
            increments=tuple((a, b) for a, b in orjson.loads(h["increments"])),
            mode=AuctionMode(h["mode"]), extend_ms=int(h["extend_ms"]), sale=h["sale"],
            state=AuctionState(h["state"]), created_at=int(h["created_at"]),
            ends_at=int(h["ends_at"]), price=int(h["price"]), leader=h["leader"] or None,
            leader_name=h["leader_name"] or None, bids=int(h["bids"]),
            closed_at=int(h["closed_at"]) if h.get("closed_at") else None,
            winner=h.get("winner") or None, winner_name=h.get("winner_name") or None,
            offers=offers,
        )  # fmt: skip


def check_auction_id(value: Any) -> str:
    if not isinstance(value, str) or not AUCTION_ID_RE.fullmatch(value):
        raise invalid_field("auction", "an auction id such as 'a3'")
    return value


def parse_bids(rows: builtins.list[Any]) -> builtins.list[Bid]:
    """The bid log's entries (lua/auction_bid.lua writes them)."""
    return [Bid(r["u"], r["a"], r["m"], r["t"]) for r in map(orjson.loads, rows)]


async def load_auction(redis: Redis, room: str, auction_id: str) -> Auction | None:
    raw = await redis.hgetall(keys.auction(room, auction_id))
    return Auction.from_hash(raw) if raw else None


async def load_bids(redis: Redis, room: str, auction_id: str) -> builtins.list[Bid]:
    return parse_bids(await redis.lrange(keys.auction_bids(room, auction_id), 0, -1))


def _not_found(auction_id: str) -> NotFoundError:
    return NotFoundError(f"no auction {auction_id!r} in this room", code="auction_not_found")


def _closed() -> ConflictError:
    return ConflictError("the auction has ended", code="auction_closed")


class AuctionStore:
    def __init__(self, redis: Redis, scripts: Scripts, sales: SaleStore, stock: Stock, *,
                 log_maxlen: int, payment_window_ms: int,
                 meter: Meter | None = None) -> None:  # fmt: skip
        self.redis = redis
        self.meter = meter or off()
        # Looked up at each call: the node rebuilds its scripts for the bus's pub/sub flavour
        # when it starts (engine/store/scripts.py `use`).
        self.scripts = scripts
        self.sales = sales
        self.stock = stock
        self.log_maxlen = log_maxlen
        self.payment_window_ms = payment_window_ms

    # ---- opening and reading ------------------------------------------------------------

    async def create(self, room: str, terms: AuctionTerms, *,
                     at_ms: int | None = None) -> Auction:  # fmt: skip
        sku, start_price, mode = terms.sku, terms.start_price, terms.mode
        duration, extend, increments = terms.duration_s, terms.extend_s, terms.increment_table()
        auction_id = f"a{await self.redis.incr(keys.auction_counter(room))}"
        lot = await self.sales.create_private(
            room, sku, 1, owner=f"auction:{auction_id}", hold_ms=self.payment_window_ms
        )
        stored: dict[str, str | int] = {
            "sku": sku, "product": lot.product, "title": lot.title, "currency": lot.currency,
            "start_price": start_price, "increments": orjson.dumps(increments).decode(),
            "mode": mode.value, "extend_ms": extend * 1000, "sale": lot.id,
        }  # fmt: skip
        announcement = {
            "auction": auction_id, "sku": sku, "product": lot.product, "title": lot.title,
            "currency": lot.currency, "start_price": start_price, "min_bid": start_price,
            "mode": mode.value, "extend_s": extend, "increments": increments,
            "state": AuctionState.OPEN.value, "price": start_price, "bids": 0,
        }  # fmt: skip
        result = await self.scripts.all["auction_create"](
            self.redis,
            [keys.auction(room, auction_id), keys.auctions(room), keys.auctions_open(room),
             keys.room_stream(room)],
            [auction_id, "" if at_ms is None else at_ms, duration * 1000, self.log_maxlen,
             keys.room_bus(room), orjson.dumps(announcement),
             *(item for pair in stored.items() for item in pair)],
        )  # fmt: skip
        if result[0] == b"err":
            raise ConflictError(f"auction {auction_id} exists", code="auction_exists")
        return await self._read(room, auction_id)

    async def _read(self, room: str, auction_id: str) -> Auction:
        auction = await load_auction(self.redis, room, auction_id)
        if auction is None:
            raise _not_found(auction_id)
        return auction

    async def get(self, room: str, auction_id: str, *, at_ms: int | None = None) -> Auction:
        """The auction; one past its end is closed and settled first."""
        auction = await self._read(room, check_auction_id(auction_id))
        if auction.due(at_ms) or (auction.state is AuctionState.CLOSED and not auction.settled):
            return await self.close(room, auction_id, at_ms=at_ms)
        return auction

    async def list(self, room: str, *, at_ms: int | None = None) -> list[Auction]:
        ids = [text(a) for a in await self.redis.zrange(keys.auctions(room), 0, -1)]
        return [await self.get(room, auction_id, at_ms=at_ms) for auction_id in ids]

    async def bid_log(self, room: str, auction_id: str) -> builtins.list[Bid]:
        return await load_bids(self.redis, room, check_auction_id(auction_id))

    # ---- bidding --------------------------------------------------------------------------

    async def bid(self, room: str, auction_id: str, bidder: Author, amount: int,
                  max_amount: int | None = None, *,
                  at_ms: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Place a bid (its amounts checked by frames.py's rules on the way in). Returns
        {status: leading | outbid, price, leader (is it you), min_bid, ends_at}; the previous
        leader, if displaced, gets `auction_outbid`."""
        result = await self.scripts.all["auction_bid"](
            self.redis,
            [keys.auction(room, check_auction_id(auction_id)),
             keys.auction_bids(room, auction_id), keys.auctions_open(room),
             keys.room_stream(room)],
            ["" if at_ms is None else at_ms, self.log_maxlen, keys.room_bus(room), bidder.user,
             bidder.name,
             amount, max_amount or 0],
        )  # fmt: skip
        if result[0] == b"err":
            code = text(result[1])
            if code == "auction_not_found":
                raise _not_found(auction_id)
            if code == "auction_closed":
                raise _closed()
            min_bid = int(result[2])
            raise RejectedError(f"bid at least {min_bid}", code="bid_too_low",
                                details={"min_bid": min_bid})  # fmt: skip
        self.meter.count(room, Metric.AUCTION_BIDS)
        user = bidder.user
        outcome, leader, previous = text(result[0]), text(result[2]), text(result[6])
        price, min_bid, ends_at = int(result[1]), int(result[3]), int(result[4])
        if previous and previous != user:
            await notify_user(self.redis, self.scripts, room, previous, "auction_outbid",
                              auction=auction_id, price=price, min_bid=min_bid)  # fmt: skip
        return {
            "auction": auction_id,
            "status": "outbid" if outcome == "outbid" else "leading",
            "price": price,
            "leader": leader == user,
            "min_bid": min_bid,
            "ends_at": ends_at,
        }

    # ---- closing and offers ---------------------------------------------------------------

    async def close(self, room: str, auction_id: str, *, now: bool = False,
                    at_ms: int | None = None) -> Auction:  # fmt: skip
        """Close (if due, or at once with `now`) and settle. Safe to race and to repeat."""
        result = await self.scripts.all["auction_close"](
            self.redis,
            [keys.auction(room, check_auction_id(auction_id)), keys.auctions_open(room),
             keys.room_stream(room)],
            ["" if at_ms is None else at_ms, self.log_maxlen, keys.room_bus(room),
             "1" if now else ""],
        )  # fmt: skip
        if result[0] == b"err" and text(result[1]) == "auction_not_found":
            raise _not_found(auction_id)
        auction = await self._read(room, auction_id)
        if auction.state is AuctionState.CLOSED and not auction.settled:
            assert auction.winner is not None
            await self._offer(room, auction, 1, auction.winner, auction.price)
            auction = await self._read(room, auction_id)
        return auction

    async def sweep(self, rooms: Sequence[str], now: int, at_ms: int | None = None) -> int:
        """Close the auctions whose clock ran out (and award their lots), the sweeper's pass:
        the clock is the server's, so an auction ends on time whether or not anyone is
        reading it. `now` picks the due ones; the close itself goes by Redis time unless
        `at_ms` pins the clock."""
        closed = 0
        for room, due in await due_by_room(self.redis, keys.auctions_open, rooms, now):
            for auction_id in due:
                try:
                    await self.close(room, auction_id, at_ms=at_ms)
                    closed += 1
                except LivecartError as exc:
                    log.warning("auction %s in %s not settled: %s", auction_id, room, exc)
        return closed

    async def offer_runner_up(self, room: str, auction_id: str) -> Auction:
        """Second chance: the lot to the best bidder not yet offered it, at their highest
        bid, once the last offer's hold (or its order) has lapsed."""
        auction = await self.get(room, auction_id)
        if auction.state is AuctionState.OPEN:
            raise ConflictError("the auction is still open", code="auction_open")
        offered = {offer["user"] for offer in auction.offers}
        choice = runner_up(await self.bid_log(room, auction_id), offered)
        if choice is None:
            raise ConflictError("no other bidder to offer the lot to", code="no_runner_up")
        user, price = choice
        await self._offer(room, auction, len(auction.offers) + 1, user, price)
        return await self._read(room, auction_id)

    async def _offer(self, room: str, auction: Auction, n: int, user: str, price: int) -> None:
        answer = await self.stock.award(
            room, auction.sale, user, f"{auction.id} {n}", units=1, price=price,
            hold_ms=self.payment_window_ms,
        )  # fmt: skip
        if answer["status"] != "reserved":
            raise ConflictError("the lot is still held or sold under the last offer",
                                code="winner_holds")  # fmt: skip
        offer = {"user": user, "price": price, "reservation": answer["reservation"],
                 "expires_at": answer["expires_at"]}  # fmt: skip
        result = await self.scripts.all["auction_offer"](
            self.redis,
            [keys.auction(room, auction.id), keys.room_stream(room)],
            [self.log_maxlen, keys.room_bus(room), n, orjson.dumps(offer)],
        )
        if result[0] == b"ok" and not answer["replayed"]:
            kind = "auction_won" if n == 1 else "auction_offer"
            await notify_user(self.redis, self.scripts, room, user, kind, auction=auction.id,
                              title=auction.title, currency=auction.currency,
                              **{k: v for k, v in offer.items() if k != "user"})  # fmt: skip
