"""Share links and referral attribution (docs/social.md).

A share link carries `ref` = "<referrer user id>.<signature>", the signature being an HMAC
of the room and the user under a key derived from the engine secret: anyone can read who
shared, no one can make a link in someone else's name or for another room. A viewer who
joins with a valid `ref` is attributed to its referrer, first touch within the show (the
room): the first referrer recorded for a viewer keeps them. Only signed-in viewers are
attributed (an anonymous device id is too easy to reset); self-referral is ignored.

What a referrer brought is computed when read, from the orders themselves: the paid
orders (net of refunds) their viewers placed after arriving, so it always agrees with
the orders and refunds, however they happened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.commerce.orders import load_orders
from engine.core.identity import Author, Role
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.referrals")

_KEY_LABEL = b"livecart share links"
_SIG_BYTES = 16  # 128 bits: unforgeable, and 22 characters of base64url


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class Sharer:
    """One referrer's numbers in a room (GMV per currency, minor units)."""

    user: str
    name: str
    invites: int
    buyers: set[str] = field(default_factory=set)
    orders: int = 0
    gmv: Counter[str] = field(default_factory=Counter)

    def to_wire(self) -> dict[str, Any]:
        return {
            "user": self.user, "name": self.name, "invites": self.invites,
            "buyers": len(self.buyers), "orders": self.orders,
            "gmv": {c: self.gmv[c] for c in sorted(self.gmv)},
        }  # fmt: skip


class Referrals:
    def __init__(self, redis: Redis, secret: str, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    # ---- links --------------------------------------------------------------------------

    def sign(self, room: str, user: str) -> str:
        mac = hmac.new(self._key, f"{room}\n{user}".encode(), hashlib.sha256).digest()
        return f"{user}.{_b64(mac[:_SIG_BYTES])}"

    def verify(self, room: str, ref: str) -> str | None:
        """The referrer a `ref` names, if it is genuine for this room; else None."""
        user, _, _sig = ref.rpartition(".")  # base64url has no ".", user ids may
        if not user or not keys.USER_ID_RE.fullmatch(user):
            return None
        # Bytes, not str: compare_digest raises TypeError on a non-ASCII str.
        genuine = hmac.compare_digest(self.sign(room, user).encode(), ref.encode())
        return user if genuine else None

    async def share(self, room: str, user: str, name: str) -> dict[str, Any]:
        """The caller's share link for the room (the same every time); keeps their name for
        the leaderboard."""
        await self.redis.hset(keys.referral_names(room), user, name or user)
        ref = self.sign(room, user)
        invites = await self.redis.zscore(keys.referral_board(room), user)
        return {"room": room, "ref": ref, "url": f"/live/{room}?ref={ref}",
                "invites": int(invites or 0)}  # fmt: skip

    # ---- attribution --------------------------------------------------------------------

    async def on_join(self, room: str, author: Author, ref: str) -> None:
        """A viewer joined through a share link carrying `ref`. A bad ref is ignored: it
        must never cost the viewer their join."""
        referrer = self.verify(room, ref)
        if referrer is None:
            log.debug("ignored a bad share ref", extra={"room": room, "user": author.user})
            return
        try:
            await self.attribute(room, author, referrer)
        except (RedisError, OSError) as exc:  # the viewer has joined: only the credit is lost
            log.warning("share ref not recorded: %s", exc, extra={"room": room})

    async def attribute(
        self, room: str, author: Author, referrer: str, *, at_ms: int | None = None
    ) -> bool:
        """Attribute `author` to `referrer` unless someone already was (first touch); True
        if this call did."""
        if author.role is not Role.VIEWER or author.user == referrer:
            return False
        done = await self.scripts.referral_join(
            self.redis,
            [keys.referred_by(room), keys.referral_board(room)],
            [author.user, referrer, "" if at_ms is None else at_ms],
        )
        return bool(done)

    async def referrer_of(self, room: str, user: str) -> str | None:
        raw = await self.redis.hget(keys.referred_by(room), user)
        return text(raw).split(" ", 1)[0] if raw else None

    # ---- reading ------------------------------------------------------------------------

    async def leaderboard(self, room: str, limit: int) -> list[dict[str, Any]]:
        """Top referrers by invites (ties: lower user id first)."""
        top = sorted(await self._board(room), key=lambda entry: (-entry[1], entry[0]))[:limit]
        names = await self._names(room, [user for user, _ in top])
        return [
            {"rank": rank, "name": names[user], "invites": invites}
            for rank, (user, invites) in enumerate(top, start=1)
        ]

    async def _board(self, room: str) -> list[tuple[str, int]]:
        board: list[Any] = await self.redis.zrange(keys.referral_board(room), 0, -1,
                                                   withscores=True)  # fmt: skip
        return [(text(user), int(score)) for user, score in board]

    async def report(self, room: str, limit: int) -> dict[str, Any]:
        """The host's view: top sharers with the viewers, orders and GMV they brought, and
        the referred share of the room's GMV (per currency)."""
        board = await self._board(room)
        referred = {
            text(viewer): text(value).split(" ")
            for viewer, value in (await self.redis.hgetall(keys.referred_by(room))).items()
        }
        names = await self._names(room, [user for user, _ in board])
        sharers = {user: Sharer(user, names[user], invites) for user, invites in board}
        total: Counter[str] = Counter()
        brought: Counter[str] = Counter()
        for order in await load_orders(self.redis, room):
            if not order.state.counts_as_sale:
                continue
            net = order.total - order.refunded
            total[order.currency] += net
            referrer, joined_at = referred.get(order.user, ("", "0"))
            sharer = sharers.get(referrer)
            # Orders placed before the viewer arrived through the link are not its doing.
            if sharer is None or order.created_at < int(joined_at):
                continue
            sharer.buyers.add(order.user)
            sharer.orders += 1
            sharer.gmv[order.currency] += net
            brought[order.currency] += net
        ranked = sorted(sharers.values(), key=lambda s: (-sum(s.gmv.values()), -s.invites, s.user))
        return {
            "sharers": [s.to_wire() for s in ranked[:limit]],
            "referred_viewers": len(referred),
            "referred_gmv": {c: brought[c] for c in sorted(total)},
            "gmv": {c: total[c] for c in sorted(total)},
            "referred_share": {
                c: round(brought[c] / total[c], 4) if total[c] else 0.0 for c in sorted(total)
            },
        }

    async def _names(self, room: str, users: list[str]) -> dict[str, str]:
        if not users:
            return {}
        raw = await self.redis.hmget(keys.referral_names(room), users)
        return {user: text(name) if name else user for user, name in zip(users, raw, strict=True)}
