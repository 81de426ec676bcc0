"""Where a customer's data sits in Redis, room by room: found (for an export), rewritten
under a pseudonym (for an erasure), and looked for afterwards (engine/ledger/privacy.py).

Each room is read with SCAN and the cursors of HSCAN / XRANGE, like `livecart audit`; each
key is recognised by its name (engine/store/keys.py) and read as what it holds; each change
is one key's transaction (engine/ledger/key_edits.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.commerce.orders import Order
from engine.ledger.key_edits import (
    CHUNK,
    Edit,
    added,
    deleted,
    dump,
    hash_items,
    hdel,
    keep,
    rename_bids,
    rewrite_hash,
    split_wallet,
    stream_items,
    swap_field,
    swap_member,
    to,
)
from engine.store import keys
from engine.store.redis_client import text, texts

PSEUDONYM = "erased:"
_IDENTIFYING = ("name", "line1", "line2", "email", "phone")
# Characters that continue a user id (engine/store/keys.py USER_ID_RE, but a colon: keys
# and fields join ids with colons, "u:<user>", "mute:<user>").
_ID_CHAR = re.compile(r"[A-Za-z0-9_.@-]")


def pseudonym(secret: str, value: str, *, kind: str = "user") -> str:
    """The stable stand-in for a user id (or a device id) after erasure: the same input
    always gives the same pseudonym, so a second request or a second shop agrees."""
    key = hmac.new(secret.encode(), b"livecart erasure", hashlib.sha256).digest()
    digest = hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM + digest[:32]


def mentions(haystack: str, user: str) -> bool:
    """`user` appears in `haystack` as a whole id (not inside a longer one)."""
    start = haystack.find(user)
    while start != -1:
        end = start + len(user)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not _ID_CHAR.match(before) and not _ID_CHAR.match(after):
            return True
        start = haystack.find(user, start + 1)
    return False


def _json(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _names_user(value: Any, user: str) -> bool:
    """A decoded JSON value holds `user` as a string or a key, at any depth."""
    if isinstance(value, str):
        return value == user
    if isinstance(value, list):
        return any(_names_user(item, user) for item in value)
    if isinstance(value, dict):
        return user in value or any(_names_user(item, user) for item in value.values())
    return False


# ---- where a customer's data sits in a room -----------------------------------------------

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
_LABELS = {"viewers": "joined_at_ms", "watch_ms": "watched_ms", "watch_since": "watching_since_ms",
           "user_orders": "order_ids", "reminder_subs": "reminders_since_ms"}  # fmt: skip
# Handled first: won draws decide what stays (giveaway), orders reveal devices (order).
_FIRST = {"giveaway": 0, "order": 1}


def _shape(suffix: str) -> tuple[str, re.Match[str]] | None:
    for shape, pattern in _SHAPES:
        match = pattern.fullmatch(suffix)
        if match:
            return shape, match
    return None


@dataclass
class Subject:
    """Whose data: the user, their pseudonym, and what else identifies them as it is found
    (devices, names, addresses and contacts), for the final check that none is left."""

    user: str
    alias: str
    secret: str = ""
    devices: dict[str, str] = field(default_factory=dict)  # device -> its pseudonym
    texts: set[str] = field(default_factory=set)

    def device(self, device: str) -> str:
        if device not in self.devices:
            self.devices[device] = pseudonym(self.secret, device, kind="device")
        return self.devices[device]

    def saw(self, *values: Any) -> None:
        """Names, and of an address or a contact what is theirs alone (not a city)."""
        for value in values:
            if isinstance(value, dict):
                self.saw(*(v for k, v in value.items() if k in _IDENTIFYING))
            elif isinstance(value, str) and len(value) >= 3 and value != self.user:
                self.texts.add(value)


@dataclass
class RoomScan:
    """One room read for one subject: what was found (export), the changes that erase it
    (forget), the stream entries to delete, and what stays on purpose."""

    redis: Redis
    room: str
    who: Subject
    found: dict[str, list[Any]] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    doomed: dict[str, list[str]] = field(default_factory=dict)  # stream key -> entry ids
    kept: list[dict[str, str]] = field(default_factory=list)
    # Won draws stay: their giveaways, prize sales and prize drops (see the module doc).
    won: set[str] = field(default_factory=set)
    prize_sales: set[str] = field(default_factory=set)
    prize_drops: set[str] = field(default_factory=set)

    @property
    def prefix(self) -> str:
        return keys.room_keys_pattern(self.room)[:-1]

    def add(self, what: str, where: str, **data: Any) -> None:
        self.found.setdefault(what, []).append({"key": where, **data})

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

    # ---- the shapes ---------------------------------------------------------------------

    async def _giveaway(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        g = {text(k): text(v) for k, v in (await self.redis.hgetall(key)).items()}
        user = self.who.user
        entrants = _json(g.get("entrants") or "[]") or []
        winners = _json(g.get("winners_list") or "[]") or []
        excluded = _json(g.get("excluded") or "[]") or []
        names = _json(g.get("names") or "{}") or {}
        if user not in entrants and user not in winners and user not in names:
            return
        self.add("giveaways", suffix, giveaway=g.get("id"), state=g.get("state"),
                 entered=user in entrants, excluded=user in excluded, won=user in winners,
                 name=names.get(user))  # fmt: skip
        self.who.saw(names.get(user))
        if user in winners:
            self.won.add(g.get("id", ""))
            self.prize_sales.update(filter(None, [g.get("prize_sale")]))
            self.prize_drops.update(filter(None, [g.get("prize_drop")]))
            self.kept.append({"key": key, "why": "a won draw keeps its winner's id: the draw "
                              "is verified from the entrants' ids"})  # fmt: skip

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            now_entrants = _json(now.get("entrants") or "[]") or []
            now_names = _json(now.get("names") or "{}") or {}
            changed: dict[str, str] = {}
            if user in now_names:
                now_names[user] = self.who.alias
                changed["names"] = orjson.dumps(now_names).decode()
            if user in now_entrants and user not in winners:
                # Not a winner: leaving the entrants moves no one else's rank in the draw.
                now_entrants.remove(user)
                changed["entrants"] = orjson.dumps(now_entrants).decode()
                changed["entrants_count"] = str(len(now_entrants))
                now_excluded = _json(now.get("excluded") or "[]") or []
                if user in now_excluded:
                    now_excluded.remove(user)
                    changed["excluded"] = orjson.dumps(now_excluded).decode()
            return changed or None

        self.edits.append(rewrite_hash(key, edit))

    async def _entrants(self, key: str, suffix: str, match: re.Match[str]) -> None:
        name = await self.redis.hget(key, self.who.user)
        if name is None:
            return
        self.add("giveaway_entries", suffix, name=text(name))
        self.who.saw(text(name))
        if match["giveaway"] in self.won:
            self.kept.append({"key": key, "why": "a won draw's entrants (the name goes)"})
            self.edits.append(swap_field(key, self.who.user, self.who.user,
                                          to(self.who.alias)))  # fmt: skip
        else:
            self.edits.append(lambda redis: hdel(redis, key, self.who.user))

    async def _awards(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        award = await self.redis.hget(key, self.who.user)
        if award is not None:
            self.add("giveaway_awards", suffix, award=_json(text(award)))
            self.kept.append({"key": key, "why": "a won draw's award"})

    async def _winners(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        won = await self.redis.hget(key, self.who.user)
        if won is not None:
            self.add("giveaway_wins", suffix, giveaways=text(won).split())
            self.kept.append({"key": key, "why": "the room's index of won draws"})

    async def _order(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        raw = await self.redis.hgetall(key)
        if not raw or text(raw.get(b"user")) != self.who.user:
            return
        order = Order.from_hash(raw)
        self.add("orders", suffix, order=order.to_wire())
        self.who.saw(order.detail.get("shipping_address"), order.detail.get("contact"))
        if order.device:
            self.who.device(order.device)

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            if now.get("user") != self.who.user:
                return None
            detail = orjson.loads(now["detail"])
            detail["shipping_address"], detail["contact"] = {}, {}
            changed = {"detail": orjson.dumps(detail).decode()}
            # Who did what: `user`, and `closed_by` when they cancelled it themselves.
            changed.update({k: self.who.alias for k, v in now.items() if v == self.who.user})
            for name, value in now.items():
                refund = _json(value) if name.startswith("refund:") else None
                if isinstance(refund, dict) and refund.get("by") == self.who.user:
                    changed[name] = orjson.dumps({**refund, "by": self.who.alias}).decode()
            if now.get("device"):
                changed["device"] = self.who.device(now["device"])
            return changed

        self.edits.append(rewrite_hash(key, edit))

    async def _by_user(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        value = await self.redis.hget(key, self.who.user)
        if value is not None:
            self.add(_LABELS.get(suffix, "poll_votes"), suffix, value=text(value))
            combine = added if suffix == "watch_ms" else keep
            self.edits.append(swap_field(key, self.who.user, self.who.alias, combine))

    async def _moderation(self, key: str, suffix: str, match: re.Match[str]) -> None:
        """Bans, revocations, mutes and order blocks keep the id: erased, they would let
        the person back in (a security record, kept on purpose; docs/ledger.md)."""
        user = self.who.user
        if match["user"] is not None:
            if match["user"] == user:
                self.add("moderation", suffix, ttl_ms=int(await self.redis.pttl(key)))
                self.kept.append({"key": key, "why": "a mute still in force"})
            return
        kind = text(await self.redis.type(key))
        entries = [user, f"u:{user}", *(f"d:{d}" for d in self.who.devices)]
        for entry in entries:
            if kind == "set":
                found: Any = entry if await self.redis.sismember(key, entry) else None
            else:
                found = await self.redis.hget(key, entry)
            if found is not None:
                self.add("moderation", suffix, entry=entry, value=text(found))
                self.kept.append({"key": key, "why": "a ban, revocation or block stays in force"})

    async def _units(self, key: str, suffix: str, match: re.Match[str]) -> None:
        value = await self.redis.hget(key, self.who.user)
        if value is None:
            return
        self.add("units", suffix, sale=match["sale"], units=int(text(value)))
        if match["sale"] in self.prize_sales:
            self.kept.append({"key": key, "why": "a won prize's unit (the draw's record)"})
            return
        self.edits.append(swap_field(key, self.who.user, self.who.alias, added))

    async def _wallet(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        value = await self.redis.hget(key, self.who.user)
        if value is None:
            return
        coupons = text(value).split()
        self.add("coupon_wallet", suffix, coupons=coupons)
        moved = [c for c in coupons if c.split(".")[0] not in self.prize_drops]
        if len(moved) < len(coupons):
            self.kept.append({"key": key, "why": "a won prize's coupon (the draw's record)"})
        if moved:
            self.edits.append(
                lambda redis: split_wallet(redis, key, self.who.user, self.who.alias, moved)
            )

    async def _names(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        value = await self.redis.hget(key, self.who.user)
        if value is not None:
            self.add("share_name", suffix, name=text(value))
            self.who.saw(text(value))
            self.edits.append(swap_field(key, self.who.user, self.who.alias,
                                          to(self.who.alias)))  # fmt: skip

    async def _referred_by(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        user, alias = self.who.user, self.who.alias
        for viewer, value in await hash_items(self.redis, key):
            referrer, _, since = value.partition(" ")
            if viewer == user:
                self.add("referred_by", suffix, referrer=referrer, since_ms=int(since or 0))
                self.edits.append(swap_field(key, user, alias, keep))
            elif referrer == user:
                # Who they brought is the other viewer's data: when, not who.
                self.add("referred_viewers", suffix, since_ms=int(since or 0))
                self.edits.append(swap_field(key, viewer, viewer, self._referrer_renamed))

    async def _answers(self, key: str, suffix: str, match: re.Match[str]) -> None:
        """Grabs and claims ("<user> <request id>") and awards ("award <ref>", a giveaway's
        ref naming its winner: "award g1 <user>")."""
        user, alias = self.who.user, self.who.alias
        prize = match["owner"] in self.prize_sales | self.prize_drops
        for pattern in (f"{user} *", f"award * {user}"):
            async for raw, value in self.redis.hscan_iter(key, match=pattern, count=CHUNK):
                name = text(raw)
                self.add("requests", suffix, request=name, answer=_json(text(value)))
                if prize:
                    self.kept.append({"key": key, "why": "a won prize's award (the draw's record)"})
                    continue
                renamed = (f"{alias} {name[len(user) + 1 :]}" if name.startswith(f"{user} ")
                           else f"{name[: -len(user)]}{alias}")  # fmt: skip
                self.edits.append(swap_field(key, name, renamed, keep))

    async def _holders(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        user, alias = self.who.user, self.who.alias
        prize_templates = await self._prize_templates()
        async for raw, value in self.redis.hscan_iter(key, match=f"* {user}", count=CHUNK):
            template = text(raw)[: -len(user) - 1]
            self.add("coupon_holdings", suffix, template=template, coupons=int(text(value)))
            if template in prize_templates:
                self.kept.append({"key": key, "why": "a won prize's coupon (the draw's record)"})
            else:
                self.edits.append(swap_field(key, text(raw), f"{template} {alias}", added))

    async def _prize_templates(self) -> set[str]:
        templates = set()
        for drop in self.prize_drops:
            template = await self.redis.hget(keys.coupon_drop(self.room, drop), "template")
            if template is not None:
                templates.add(text(template))
        return templates

    async def _counts(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        tags = {f"u:{self.who.user}": f"u:{self.who.alias}"}
        tags.update({f"d:{d}": f"d:{alias}" for d, alias in self.who.devices.items()})
        for old, new in tags.items():
            value = await self.redis.hget(key, old)
            if value is not None:
                self.add("order_counts", suffix, entry=old, orders=int(text(value)))
                self.edits.append(swap_field(key, old, new, added))

    async def _records(self, key: str, suffix: str, match: re.Match[str]) -> None:
        sale = match["sale"]
        if sale in self.prize_sales:
            self.kept.append({"key": key, "why": "a won prize's unit (the draw's record)"})
            return
        needle = f'"u":"{self.who.user}"'
        for name, value in await hash_items(self.redis, key):
            if needle not in value:
                continue
            record = orjson.loads(value)
            if record.get("u") != self.who.user:
                continue
            if record.get("d") in self.prize_drops:
                self.kept.append({"key": key, "why": "a won prize's coupon (the draw's record)"})
                continue
            self.add("reservations" if sale else "coupons", suffix, id=name, record=record)
            self.edits.append(swap_field(key, name, name, self._record_renamed))

    def _referrer_renamed(self, value: str, _there: str | None) -> str:
        referrer, _, since = value.partition(" ")
        return f"{self.who.alias} {since}" if referrer == self.who.user else value

    def _record_renamed(self, value: str, _there: str | None) -> str:
        record = orjson.loads(value)
        if record.get("u") == self.who.user:
            record["u"] = self.who.alias
        return orjson.dumps(record).decode()

    async def _member(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        kind = text(await self.redis.type(key))
        user = self.who.user
        if kind == "set":
            here = bool(await self.redis.sismember(key, user))
        elif kind == "zset":
            here = await self.redis.zscore(key, user) is not None
        else:
            here = await self.redis.lpos(key, user) is not None
        if here:
            self.add("member_of", suffix)
            self.edits.append(swap_member(key, kind, user, self.who.alias))

    async def _auction(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        a = {text(k): text(v) for k, v in (await self.redis.hgetall(key)).items()}
        user, alias = self.who.user, self.who.alias
        offers = {k: _json(v) for k, v in a.items() if k.startswith("offer:")}
        mine = {k: v for k, v in offers.items() if isinstance(v, dict) and v.get("user") == user}
        if user not in (a.get("leader"), a.get("winner")) and not mine:
            return
        self.add("auctions", suffix, auction=a.get("id"), leader=a.get("leader") == user,
                 winner=a.get("winner") == user, offers=list(mine.values()))  # fmt: skip
        if a.get("leader") == user:
            self.who.saw(a.get("leader_name"))

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            changed: dict[str, str] = {}
            if now.get("leader") == user:
                changed.update(leader=alias, leader_name=alias)
            if now.get("winner") == user:
                changed["winner"] = alias
            for name, value in now.items():
                offer = _json(value) if name.startswith("offer:") else None
                if isinstance(offer, dict) and offer.get("user") == user:
                    offer["user"] = alias
                    changed[name] = orjson.dumps(offer).decode()
            return changed or None

        self.edits.append(rewrite_hash(key, edit))

    async def _bids(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        bids = [_json(text(raw)) for raw in await self.redis.lrange(key, 0, -1)]
        places = [n for n, bid in enumerate(bids) if isinstance(bid, dict)
                  and bid.get("u") == self.who.user]  # fmt: skip
        if not places:
            return
        self.add("bids", suffix, bids=[bids[n] for n in places])
        self.edits.append(lambda redis: rename_bids(redis, key, self.who.user, self.who.alias))

    async def _team(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        t = {text(k): text(v) for k, v in (await self.redis.hgetall(key)).items()}
        user, alias = self.who.user, self.who.alias
        if f"user:{user}" not in t and t.get("leader") != user:
            return
        members = [m for k, v in t.items() if k.startswith("member:")
                   for m in [_json(v)] if isinstance(m, dict) and m.get("u") == user]  # fmt: skip
        self.add("group_buy_teams", suffix, team=t.get("id"), deal=t.get("deal"),
                 leader=t.get("leader") == user, members=members)  # fmt: skip
        self.who.saw(*(m.get("name") for m in members))

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            changed: dict[str, str] = {}
            if now.get("leader") == user:
                changed.update(leader=alias, leader_name=alias)
            if f"user:{user}" in now:
                changed[f"user:{user}"] = ""
                changed[f"user:{alias}"] = now[f"user:{user}"]
            for name, value in now.items():
                member = _json(value) if name.startswith("member:") else None
                if isinstance(member, dict) and member.get("u") == user:
                    member.update(u=alias, name=alias)
                    changed[name] = orjson.dumps(member).decode()
            return changed or None

        self.edits.append(rewrite_hash(key, edit))

    async def _stream(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        user = self.who.user
        for entry_id, fields in await stream_items(self.redis, key):
            if suffix == "log":
                data = _json(fields.get("d", "")) or {}
                if not _names_user(data, user):
                    continue
                entry = {"id": entry_id, "kind": fields.get("k"), "ref": fields.get("r"), **data}
                if data.get("user") == user:
                    self.who.saw(data.get("name"))
            elif user in fields.values():  # `user`, or `by` for their own cancellation
                entry = {"id": entry_id, **fields}
            else:
                continue
            what = {"log": "room_log", "order_events": "order_events"}.get(suffix, "stock_events")
            self.add(what, suffix, entry=entry)
            self.doomed.setdefault(key, []).append(entry_id)

    async def _meta(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        pinned = _json(text(await self.redis.hget(key, "pinned")) or "null")
        if isinstance(pinned, dict) and pinned.get("user") == self.who.user:
            self.add("pinned_comment", suffix, comment=pinned)

            def edit(now: dict[str, str]) -> dict[str, str] | None:
                still = _json(now.get("pinned") or "null")
                if isinstance(still, dict) and still.get("user") == self.who.user:
                    return {"pinned": "", "pinned_id": ""}  # unpinned
                return None

            self.edits.append(rewrite_hash(key, edit))

    async def _limit(self, key: str, suffix: str, match: re.Match[str]) -> None:
        """A rate limit's or a repeat guard's few seconds: gone with the user."""
        if match["user"] == self.who.user:
            self.add("limits", suffix, ttl_ms=int(await self.redis.pttl(key)))
            self.edits.append(lambda redis: deleted(redis, key))


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
