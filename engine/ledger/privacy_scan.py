"""Whose data an erasure looks for, and what one room's scan collects of it (the key
shapes: engine/ledger/privacy_redis.py).

A subject is the user, their pseudonym, and what else identifies them as it is found
(devices, names, addresses, contacts). A scan of one room gathers what it found (for an
export), the edits that erase it (for `forget`), the stream entries to delete, and the
keys that stay on purpose with why: a closed giveaway the user won keeps their id in its
draw and its prize (engine/ledger/privacy.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from engine.ledger.key_edits import Edit, loads_or_none
from engine.store import keys
from engine.store.redis_client import text

PSEUDONYM = "erased:"
_IDENTIFYING = ("name", "line1", "line2", "email", "phone")
# Characters that continue a user id (engine/store/keys.py USER_ID_RE, but a colon: keys
# and fields join ids with colons, "u:<user>", "mute:<user>").
_ID_CHAR = re.compile(r"[A-Za-z0-9_.@-]")
# Why a won draw's records stay.
PRIZE_UNIT = "a won prize's unit (the draw's record)"
PRIZE_COUPON = "a won prize's coupon (the draw's record)"


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


def records_naming(fields: Mapping[str, str], prefix: str, name: str,
                   user: str) -> dict[str, dict[str, Any]]:  # fmt: skip
    """A hash's JSON records in the fields starting with `prefix` (an auction's offers, a
    team's members, an order's refunds) whose `name` is `user`, by field."""
    found = {}
    for field_name, value in fields.items():
        record = loads_or_none(value) if field_name.startswith(prefix) else None
        if isinstance(record, dict) and record.get(name) == user:
            found[field_name] = record
    return found


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
class ScanState:
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

    def stays(self, key: str, why: str) -> None:
        self.kept.append({"key": key, "why": why})

    async def read_hash(self, key: str) -> dict[str, str]:
        return {text(k): text(v) for k, v in (await self.redis.hgetall(key)).items()}
