"""The auction's bidding rules, sans-I/O: increments, the minimum next bid, proxy bidding.

engine/features/auctions/lua/auction_bid.lua applies exactly these rules atomically in Redis;
this module is the reference the tests compare it with, and what the audit replays an auction's bid
log through to check its final price and leader.

- The first bid must be at least the starting price; every later bid at least the current
  price plus the increment for that price (the increment table: `(from_price, step)` rows,
  the last row whose `from_price` <= price applies).
- A bid is an `amount` and an optional proxy `max` (the most the engine may bid for the
  bidder; default: the amount). The leader's max is secret.
- A challenger whose max beats the leader's takes the lead at the lowest price that beats
  the old leader's max (their amount, at least), never above their own max.
- A challenger whose max does not beat the leader's is outbid at once: the leader's proxy
  answers, raising the price to the challenger's max plus one increment (capped at the
  leader's max). Equal maxima: the earlier bid wins.
- The leader bidding again raises their own max; the price does not move.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

# Minor units: 1.00 steps under 50.00, 2.50 under 100.00, then 5, 10, 25.
DEFAULT_INCREMENTS: tuple[tuple[int, int], ...] = (
    (0, 100), (5_000, 250), (10_000, 500), (50_000, 1_000), (100_000, 2_500),
)  # fmt: skip
MAX_PRICE = 100_000_000


class BidOutcome(enum.Enum):
    LEADING = "leading"  # took (or kept, as the first bidder) the lead
    RAISED = "raised"  # the leader raised their own max
    OUTBID = "outbid"  # accepted, but the leader's proxy bid above it


def step(price: int, increments: Sequence[tuple[int, int]]) -> int:
    current = increments[0][1]
    for from_price, increment in increments:
        if price >= from_price:
            current = increment
    return current


@dataclass(frozen=True, slots=True)
class Standing:
    """Where the auction stands: the price, who leads and the leader's (secret) max."""

    start_price: int
    increments: tuple[tuple[int, int], ...]
    price: int
    leader: str | None = None
    leader_max: int = 0
    bids: int = 0

    @classmethod
    def opening(cls, start_price: int, increments: Sequence[tuple[int, int]]) -> Standing:
        return cls(start_price, tuple(increments), start_price)

    @property
    def min_bid(self) -> int:
        if self.leader is None:
            return self.start_price
        return self.price + step(self.price, self.increments)


class BidTooLow(ValueError):
    def __init__(self, min_bid: int) -> None:
        super().__init__(f"bid at least {min_bid}")
        self.min_bid = min_bid


def apply_bid(
    standing: Standing, user: str, amount: int, max_amount: int | None = None
) -> tuple[Standing, BidOutcome]:
    """The standing after `user` bids; raises BidTooLow below the minimum."""
    if amount < standing.min_bid:
        raise BidTooLow(standing.min_bid)
    ceiling = max(amount, max_amount or 0)
    counted = replace(standing, bids=standing.bids + 1)
    if standing.leader is None:
        return replace(counted, price=amount, leader=user, leader_max=ceiling), BidOutcome.LEADING
    if user == standing.leader:
        return replace(counted, leader_max=max(standing.leader_max, ceiling)), BidOutcome.RAISED
    if ceiling > standing.leader_max:
        beat = standing.leader_max + step(standing.leader_max, standing.increments)
        price = max(amount, min(ceiling, beat))
        return replace(counted, price=price, leader=user, leader_max=ceiling), BidOutcome.LEADING
    answer = min(standing.leader_max, ceiling + step(ceiling, standing.increments))
    return replace(counted, price=max(standing.price, answer)), BidOutcome.OUTBID


@dataclass(frozen=True, slots=True)
class Bid:
    """One accepted bid as the bid log records it."""

    user: str
    amount: int
    max_amount: int
    at: int


def replay(
    start_price: int, increments: Sequence[tuple[int, int]], bids: Iterable[Bid]
) -> Standing:
    """The standing the bid log leads to (BidTooLow if the log holds an invalid bid)."""
    standing = Standing.opening(start_price, increments)
    for bid in bids:
        standing, _ = apply_bid(standing, bid.user, bid.amount, bid.max_amount)
    return standing


def runner_up(bids: Iterable[Bid], exclude: set[str]) -> tuple[str, int] | None:
    """The second-chance buyer: the highest max among bidders not yet offered the lot
    (earliest on ties), and that max, which they agreed to pay."""
    best: tuple[int, int, str] | None = None  # (-max, arrival, user)
    seen: dict[str, tuple[int, int]] = {}
    for arrival, bid in enumerate(bids):
        if bid.user in exclude:
            continue
        top = seen.get(bid.user)
        if top is None or bid.max_amount > top[0]:
            seen[bid.user] = (bid.max_amount, top[1] if top else arrival)
    for user, (top_max, arrival) in seen.items():
        key = (-top_max, arrival, user)
        if best is None or key < best:
            best = key
    return None if best is None else (best[2], -best[0])


def check_increments(raw: object) -> tuple[tuple[int, int], ...]:
    """A valid increment table: 1-20 rows of [from_price, step], the first from 0, from
    prices strictly rising, steps 1..MAX_PRICE. Raises ValueError naming the problem."""
    if not isinstance(raw, list | tuple) or not 1 <= len(raw) <= 20:
        raise ValueError("a list of 1-20 [from_price, step] rows")
    rows: list[tuple[int, int]] = []
    for row in raw:
        if (
            not isinstance(row, list | tuple)
            or len(row) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in row)
        ):
            raise ValueError("each row is [from_price, step], two integers")
        from_price, increment = row
        if not 0 <= from_price <= MAX_PRICE or not 1 <= increment <= MAX_PRICE:
            raise ValueError(f"from_price 0..{MAX_PRICE}, step 1..{MAX_PRICE}")
        if rows and from_price <= rows[-1][0]:
            raise ValueError("from_price must rise row by row")
        rows.append((from_price, increment))
    if rows[0][0] != 0:
        raise ValueError("the first row must start at 0")
    return tuple(rows)
