"""Where a customer's data sits in Redis, room by room: found (for an export), rewritten
under a pseudonym (for an erasure), and looked for afterwards (engine/ledger/privacy.py).

Each room is read with SCAN and the cursors of HSCAN / XRANGE, like `livecart audit`; each
key is recognised by its name (engine/store/keys.py, the table below) and read as what it
holds, by the shape's method: the room's own and social keys in privacy_room_keys.py,
commerce's in privacy_commerce_keys.py, the features' in privacy_feature_keys.py. Each
change is one key's transaction (engine/ledger/key_edits.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from redis.asyncio import Redis

from engine.ledger.key_edits import CHUNK, dump
from engine.ledger.privacy_commerce_keys import CommerceKeys
from engine.ledger.privacy_feature_keys import FeatureKeys
from engine.ledger.privacy_room_keys import RoomKeys
from engine.ledger.privacy_scan import Subject, mentions
from engine.store import keys
from engine.store.redis_client import text, texts

# A room key's name after `lc:{room}:` -> how the user sits in it (fullmatch).
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (shape, re.compile(pattern))
    for shape, pattern in (
        ("order", r"order:o\d+"),
        ("by_user", r"viewers|watch_ms|watch_since|user_orders|reminder_subs"
                    r"|f:polls:[^:]+:voters"),
        ("moderation", r"banned|banned:by|revocations|blocklist|mute:(?P<user>.+)"),
        ("units", r"sale:(?P<sale>[^:]+):users"),
        ("wallet", r"wallets"),
        ("names", r"referral_names"),
        ("referred_by", r"referred_by"),
        ("answers", r"(?:sale|drop):(?P<owner>[^:]+):answers|order_keys"),
        ("holders", r"coupon_holders"),
        ("counts", r"order_counts"),
        ("records", r"sale:(?P<sale>[^:]+):res|coupons"),
        ("member", r"paid_buyers|referral_board|sale:[^:]+:(?:waiting|waitlist)"
                   r"|reminder:[^:]+:sent"),
        ("auction", r"auction:[^:]+"),
        ("bids", r"auction:[^:]+:bids"),
        ("team", r"groupbuy:[^:]+:team:[^:]+"),
        ("giveaway", r"giveaway:[^:]+"),
        ("entrants", r"giveaway:(?P<giveaway>[^:]+):entrants"),
        ("awards", r"giveaway:(?P<giveaway>[^:]+):awards"),
        ("winners", r"giveaway_winners"),
        ("stream", r"log|order_events|outbox"),
        ("meta", r"meta"),
        ("limit", r"(?:slow|rate):(?P<user>.+)"),
        ("limit", r"comment_buy:recent:(?P<user>.+):[^:]+:\d+"),
    )
)  # fmt: skip
# Handled first: won draws decide what stays (giveaway), orders reveal devices (order).
_FIRST = {"giveaway": 0, "order": 1}


def _shape(suffix: str) -> tuple[str, re.Match[str]] | None:
    for shape, pattern in _SHAPES:
        match = pattern.fullmatch(suffix)
        if match:
            return shape, match
    return None


class RoomScan(RoomKeys, CommerceKeys, FeatureKeys):
    """One room read for one subject, each key by its shape's method (`_<shape>`)."""

    async def run(self) -> None:
        shaped = []
        async for raw in self.redis.scan_iter(match=keys.room_keys_pattern(self.room),
                                              count=CHUNK):  # fmt: skip
            key = text(raw)
            suffix = key[len(self.prefix) :]
            found = _shape(suffix)
            if found is not None:
                shaped.append((_FIRST.get(found[0], 2), suffix, key, *found))
        for _, suffix, key, shape, match in sorted(shaped, key=lambda item: item[:2]):
            await getattr(self, f"_{shape}")(key, suffix, match)


# ---- the rooms in scope --------------------------------------------------------------------


async def shop_rooms(redis: Redis, shop: str | None) -> dict[str, str]:
    """Room -> its shop (the host's user id; "" if the room has lost its meta), every room
    or one shop's."""
    rooms = texts(await redis.smembers(keys.rooms_index()))
    async with redis.pipeline(transaction=False) as pipe:
        for room in rooms:
            pipe.hget(keys.room_meta(room), "host")
        hosts = await pipe.execute()
    return {room: text(host) for room, host in zip(rooms, hosts, strict=True)
            if shop in (None, text(host))}  # fmt: skip


async def scan_rooms(redis: Redis, rooms: Iterable[str], who: Subject) -> list[RoomScan]:
    scans = []
    for room in rooms:
        scan = RoomScan(redis, room, who)
        await scan.run()
        scans.append(scan)
    return scans


async def audiences(redis: Redis, shops: Iterable[str], user: str) -> list[str]:
    return [shop for shop in sorted(shops) if await redis.sismember(keys.audience(shop), user)]


async def leftovers(redis: Redis, rooms: Iterable[str], who: Subject, *,
                    kept: Iterable[dict[str, str]] = ()) -> list[dict[str, str]]:  # fmt: skip
    """Keys of these rooms that still hold the user's id, a device, a name or a contact
    (another viewer's comment may name them: free text is reported, not rewritten)."""
    allowed = {k["key"] for k in kept}
    ids = [who.user, *who.devices]
    found = []
    for room in rooms:
        async for raw in redis.scan_iter(match=keys.room_keys_pattern(room), count=CHUNK):
            key = text(raw)
            content = await dump(redis, key)
            what = [w for w, hit in (
                ("id", any(mentions(content, i) or mentions(key, i) for i in ids)),
                ("text", any(t in content for t in who.texts)),
            ) if hit]  # fmt: skip
            if what and key not in allowed:
                found.append({"key": key, "holds": " and ".join(what)})
    return found
