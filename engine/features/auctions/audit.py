"""The auction half of `livecart audit`: every auction's bid log, replayed through the
bidding rules (engine/features/auctions/rules.py), leads to the stored price, leader and bid
count; a closed auction's winner is its last leader; each offer of the lot is a reservation of the
auction's private sale for that user at that price (the winner's at the final price), no user is
offered the lot twice, at most one offer holds or has bought the unit, and every order line on the
lot is priced as its offer.

Each auction's hash and bid log are read in one MULTI/EXEC, so a bid landing meanwhile
cannot make a live auction look inconsistent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from engine.features.auctions.rules import Bid, BidTooLow, replay
from engine.features.auctions.store import Auction, AuctionState, parse_bids
from engine.store import keys
from engine.store.redis_client import text

if TYPE_CHECKING:
    from engine.commerce.audit import Report, Snapshot

HOLDING_STATES = frozenset({"held", "sold"})


async def _read(redis: Redis, room: str, auction_id: str) -> tuple[Auction | None, list[Bid]]:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.auction(room, auction_id))
        pipe.lrange(keys.auction_bids(room, auction_id), 0, -1)
        raw, rows = await pipe.execute()
    return (Auction.from_hash(raw) if raw else None), parse_bids(rows)


def _check_bids(auction: Auction, bids: list[Bid]) -> list[str]:
    try:
        standing = replay(auction.start_price, auction.increments, bids)
    except BidTooLow as exc:
        return [f"auction {auction.id}: the bid log holds a bid below the minimum ({exc})"]
    stored = (auction.price, auction.leader, auction.bids)
    replayed = (standing.price, standing.leader, standing.bids)
    if stored != replayed:
        return [f"auction {auction.id}: stored price/leader/bids {stored}, replayed {replayed}"]
    return []


def _check_offers(auction: Auction, snap: Snapshot,
                  reservations: dict[str, dict[str, Any]]) -> list[str]:  # fmt: skip
    problems = []
    lot = snap.sales.get(auction.sale)
    owner = text(lot[0].get(b"private", b"")) if lot and lot[0] else ""
    if owner != f"auction:{auction.id}":
        problems.append(f"auction {auction.id}: lot {auction.sale} is not its private sale")
    if auction.state is AuctionState.CLOSED and auction.winner != auction.leader:
        problems.append(f"auction {auction.id}: winner {auction.winner}, leader {auction.leader}")
    offers = auction.offers
    if offers and (offers[0]["user"], offers[0]["price"]) != (auction.winner, auction.price):
        problems.append(f"auction {auction.id}: offer 1 {offers[0]} is not to the winner "
                        f"{auction.winner} at {auction.price}")  # fmt: skip
    users = [offer["user"] for offer in offers]
    if len(users) != len(set(users)):
        problems.append(f"auction {auction.id}: a user was offered the lot twice: {users}")
    holding = 0
    for n, offer in enumerate(offers, 1):
        record = reservations.get(offer["reservation"])
        if record is None or (record["u"], record.get("p")) != (offer["user"], offer["price"]):
            problems.append(f"auction {auction.id}: offer {n} has no matching reservation "
                            f"({offer['reservation']}: {record})")  # fmt: skip
        elif record["s"] in HOLDING_STATES:
            holding += 1
    if holding > 1:
        problems.append(f"auction {auction.id}: {holding} offers hold or bought the one unit")
    prices = {offer["reservation"]: offer["price"] for offer in offers}
    for order_id, line in snap.order_lines(auction.sale):
        offered = prices.get(line["reservation"])
        if line["unit_price"] != offered:
            problems.append(f"order {order_id}: lot of auction {auction.id} priced "
                            f"{line['unit_price']}, offered at {offered}")  # fmt: skip
    return problems


async def audit_auctions(redis: Redis, report: Report, room: str, snap: Snapshot) -> None:
    ids = [text(a) for a in await redis.zrange(keys.auctions(room), 0, -1)]
    if not ids:
        return
    problems: list[str] = []
    bids_total = closed = 0
    for auction_id in ids:
        auction, bids = await _read(redis, room, auction_id)
        if auction is None:
            problems.append(f"auction {auction_id} is indexed but has no data")
            continue
        bids_total += len(bids)
        closed += auction.state is AuctionState.CLOSED
        problems += _check_bids(auction, bids)
        problems += _check_offers(auction, snap, snap.reservations)
    report.add(
        "auctions: bids replay to the price and winner; lots go to their offers",
        problems,
        f"{len(ids)} auctions ({closed} closed), {bids_total} bids replayed",
    )
