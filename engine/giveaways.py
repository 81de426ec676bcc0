"""Giveaways (lucky bags): a provably fair draw among a room's viewers.

    open ──ends_at / host closes──▶ closed

When a giveaway opens, the engine draws a secret 32-byte seed, stores it, and publishes only
its commitment, `sha256(seed)` (hex), in the `giveaway_opened` room-log entry. Viewers enter
while it is open (one entry per user). Closing is one Lua script that flips open → closed
exactly once and stores the draw; the `giveaway_closed` entry reveals the seed with the
winners, and the record keeps the sorted entrants, so anyone can recompute the draw
(`draw`, `verify`, `livecart giveaway verify`).

Entry rules: `any` (any signed-in user) or `keyword` (the entry must carry the keyword,
口令). Prizes are a label in this version; reserving stock or issuing coupons is later work.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from engine import keys
from engine.comments import Author
from engine.errors import (
    ConflictError,
    NotFoundError,
    ProtocolError,
    RejectedError,
    UnavailableError,
)
from engine.redis_client import text
from engine.scripts import Scripts

GIVEAWAY_ID_RE = re.compile(r"g[0-9]{1,9}")
MAX_WINNERS = 1000
MAX_DURATION_S = 24 * 3600
DEFAULT_DURATION_S = 300
MAX_TITLE, MAX_PRIZE, MAX_KEYWORD = 120, 200, 40
SEED_BYTES = 32
_CLOSE_ATTEMPTS = 20


class GiveawayState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class EntryRule(enum.Enum):
    ANY = "any"
    KEYWORD = "keyword"


def now_ms() -> int:
    return int(time.time() * 1000)


def commitment(seed: bytes) -> str:
    """What the giveaway publishes when it opens: sha256 of the seed, lowercase hex."""
    return hashlib.sha256(seed).hexdigest()


def draw(seed: bytes, entrants: list[str], k: int) -> list[str]:
    """The winners, deterministically: each distinct entrant `e` gets the key
    `sha256(seed || 0x00 || utf8(e))`; entrants sorted by key ascending (then by name,
    though distinct entrants cannot collide in practice); the first `k` win, in that order."""
    ranked = sorted(
        (hashlib.sha256(seed + b"\x00" + entrant.encode()).digest(), entrant)
        for entrant in set(entrants)
    )
    return [entrant for _, entrant in ranked[: max(0, k)]]


def verify_commitment(seed_hex: str, expected: str) -> bool:
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        return False
    return secrets.compare_digest(commitment(seed), expected)


def verify_winners(seed_hex: str, entrants: list[str], k: int, winners: list[str]) -> bool:
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        return False
    return draw(seed, sorted(entrants), k) == winners


def verify(seed_hex: str, commitment_hex: str, entrants: list[str], k: int,
           winners: list[str]) -> bool:  # fmt: skip
    """Offline check of a closed giveaway: the seed matches the commitment published when it
    opened, and the winners are the draw from that seed over the entrants."""
    return verify_commitment(seed_hex, commitment_hex) and verify_winners(
        seed_hex, entrants, k, winners
    )


def normalize(value: str) -> str:
    """How a keyword is compared: NFKC, case-folded, whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", value).casefold().split())


@dataclass(frozen=True, slots=True)
class Giveaway:
    id: str
    title: str
    prize: str
    winners_count: int
    rule: EntryRule
    keyword: str | None
    state: GiveawayState
    seed: str  # hex; secret until closed
    commitment: str
    created_at: int
    ends_at: int
    entrants_count: int
    closed_at: int | None = None
    entrants: tuple[str, ...] = ()  # sorted, kept once closed
    winners: tuple[str, ...] = ()

    def due(self, at_ms: int | None = None) -> bool:
        """Open but past its end: the next read or close draws it."""
        at = now_ms() if at_ms is None else at_ms
        return self.state is GiveawayState.OPEN and at >= self.ends_at

    def to_wire(self) -> dict[str, Any]:
        closed = self.state is GiveawayState.CLOSED
        return {
            "id": self.id,
            "title": self.title,
            "prize": self.prize,
            "winners_count": self.winners_count,
            "rule": self.rule.value,
            "state": self.state.value,
            "commitment": self.commitment,
            "created_at": self.created_at,
            "ends_at": self.ends_at,
            "closed_at": self.closed_at,
            "entrants_count": self.entrants_count,
            # never before the draw: the seed would let anyone predict it
            "seed": self.seed if closed else None,
            "winners": list(self.winners) if closed else None,
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any], entrants_count: int) -> Giveaway:
        h = {text(k): text(v) for k, v in raw.items()}
        closed = h["state"] == GiveawayState.CLOSED.value
        return cls(
            id=h["id"], title=h["title"], prize=h["prize"], winners_count=int(h["winners"]),
            rule=EntryRule(h["rule"]), keyword=h.get("keyword") or None,
            state=GiveawayState(h["state"]), seed=h["seed"], commitment=h["commitment"],
            created_at=int(h["created_at"]), ends_at=int(h["ends_at"]),
            entrants_count=int(h["entrants_count"]) if closed else entrants_count,
            closed_at=int(h["closed_at"]) if h.get("closed_at") else None,
            entrants=tuple(orjson.loads(h["entrants"])) if closed else (),
            winners=tuple(orjson.loads(h["winners_list"])) if closed else (),
        )  # fmt: skip


def _invalid(name: str, why: str) -> ProtocolError:
    return ProtocolError(f"{name}: {why}", code="invalid_field", details={"field": name})


def _str(body: dict[str, Any], name: str, max_len: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _invalid(name, f"a string of 1-{max_len} characters")
    return value.strip()


def _int(body: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(name, f"an integer between {low} and {high}")
    return value


def check_giveaway_id(value: Any) -> str:
    if not isinstance(value, str) or not GIVEAWAY_ID_RE.fullmatch(value):
        raise _invalid("giveaway", "a giveaway id such as 'g3'")
    return value


def _not_found(giveaway_id: str) -> NotFoundError:
    return NotFoundError(f"no giveaway {giveaway_id!r} in this room", code="giveaway_not_found")


class GiveawayStore:
    def __init__(self, redis: Redis, scripts: Scripts, log_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.log_maxlen = log_maxlen

    async def create(self, room: str, body: Any, *, at_ms: int | None = None) -> Giveaway:
        if not isinstance(body, dict):
            raise ProtocolError("the body must be a JSON object", code="bad_request")
        title = _str(body, "title", MAX_TITLE)
        prize = _str(body, "prize", MAX_PRIZE)
        winners = _int(body, "winners", 1, MAX_WINNERS)
        duration = _int(body, "duration_s", 1, MAX_DURATION_S, default=DEFAULT_DURATION_S)
        try:
            rule = EntryRule(body.get("rule", "any"))
        except ValueError:
            raise _invalid("rule", "'any' or 'keyword'") from None
        keyword = ""
        if rule is EntryRule.KEYWORD:
            keyword = _str(body, "keyword", MAX_KEYWORD)
            if not normalize(keyword):
                raise _invalid("keyword", "a keyword with some visible characters")
        seed = secrets.token_bytes(SEED_BYTES)
        commit = commitment(seed)
        giveaway_id = f"g{await self.redis.incr(keys.giveaway_counter(room))}"
        terms: dict[str, str | int] = {
            "title": title, "prize": prize, "winners": winners, "rule": rule.value,
            "keyword": keyword, "seed": seed.hex(), "commitment": commit,
        }  # fmt: skip
        announcement = {
            "giveaway": giveaway_id, "title": title, "prize": prize, "winners": winners,
            "rule": rule.value, "keyword": keyword or None, "commitment": commit,
        }  # fmt: skip
        result = await self.scripts.giveaway_create(
            self.redis,
            [keys.giveaway(room, giveaway_id), keys.giveaways(room), keys.room_stream(room)],
            [
                giveaway_id, "" if at_ms is None else at_ms, duration * 1000, self.log_maxlen,
                keys.room_bus(room), orjson.dumps(announcement),
                *(item for pair in terms.items() for item in pair),
            ],
        )  # fmt: skip
        if result[0] == b"err":
            raise ConflictError(f"giveaway {giveaway_id} exists", code="giveaway_exists")
        return await self.get(room, giveaway_id, at_ms=at_ms)

    async def _read(self, room: str, giveaway_id: str) -> Giveaway:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.giveaway(room, giveaway_id))
            pipe.scard(keys.giveaway_entrants(room, giveaway_id))
            raw, count = await pipe.execute()
        if not raw:
            raise _not_found(giveaway_id)
        return Giveaway.from_hash(raw, int(count))

    async def get(self, room: str, giveaway_id: str, *, at_ms: int | None = None) -> Giveaway:
        """The giveaway; one past its end is drawn first (closing on read)."""
        giveaway = await self._read(room, check_giveaway_id(giveaway_id))
        if giveaway.due(at_ms):
            return await self.close(room, giveaway_id, at_ms=at_ms)
        return giveaway

    async def list(self, room: str, *, at_ms: int | None = None) -> list[Giveaway]:
        ids = [text(g) for g in await self.redis.zrange(keys.giveaways(room), 0, -1)]
        return [await self.get(room, giveaway_id, at_ms=at_ms) for giveaway_id in ids]

    async def enter(self, room: str, giveaway_id: str, user: str, keyword: Any = None,
                    *, at_ms: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Enter `user`; idempotent. Returns `{"giveaway", "entered", "new", "entrants"}`."""
        giveaway = await self._read(room, check_giveaway_id(giveaway_id))
        given = normalize(keyword) if isinstance(keyword, str) else None
        if giveaway.rule is EntryRule.KEYWORD and given != normalize(giveaway.keyword or ""):
            raise RejectedError("that is not the giveaway's keyword", code="keyword_mismatch")
        result = await self.scripts.giveaway_enter(
            self.redis,
            [keys.giveaway(room, giveaway_id), keys.giveaway_entrants(room, giveaway_id)],
            ["" if at_ms is None else at_ms, user],
        )
        if result[0] != b"ok":
            code = text(result[1])
            if code == "giveaway_not_found":
                raise _not_found(giveaway_id)
            raise ConflictError("the giveaway is closed", code="giveaway_closed")
        return {"giveaway": giveaway_id, "entered": True, "new": bool(int(result[1])),
                "entrants": int(result[2])}  # fmt: skip

    async def on_comment(self, room: str, author: Author, comment: str) -> None:
        """Work in progress (issue 8): a comment carrying an open giveaway's keyword enters."""

    async def close(self, room: str, giveaway_id: str, *, at_ms: int | None = None) -> Giveaway:
        """Draw and close. Safe to race: the script closes once; a loser of the race (or a
        close of an already closed giveaway) just reads the stored result."""
        check_giveaway_id(giveaway_id)
        entrants_key = keys.giveaway_entrants(room, giveaway_id)
        for _ in range(_CLOSE_ATTEMPTS):
            giveaway = await self._read(room, giveaway_id)
            if giveaway.state is GiveawayState.CLOSED:
                return giveaway
            entrants = sorted(text(u) for u in await self.redis.smembers(entrants_key))
            winners = draw(bytes.fromhex(giveaway.seed), entrants, giveaway.winners_count)
            result = await self.scripts.giveaway_close(
                self.redis,
                [keys.giveaway(room, giveaway_id), entrants_key, keys.room_stream(room)],
                ["" if at_ms is None else at_ms, self.log_maxlen, keys.room_bus(room),
                 len(entrants), orjson.dumps(entrants), orjson.dumps(winners)],
            )  # fmt: skip
            if result[0] == b"ok" or text(result[1]) == "giveaway_closed":
                return await self._read(room, giveaway_id)
            if text(result[1]) == "giveaway_not_found":
                raise _not_found(giveaway_id)
            # entrants_changed: someone entered between our read and the script; draw again
        raise UnavailableError("the giveaway kept changing while closing; retry")

    async def check(self, room: str, giveaway_id: str) -> dict[str, Any]:
        """What `livecart giveaway verify` prints: the stored draw recomputed."""
        giveaway = await self._read(room, check_giveaway_id(giveaway_id))
        closed = giveaway.state is GiveawayState.CLOSED
        entrants = list(giveaway.entrants)
        winners = list(giveaway.winners)
        commitment_ok = closed and verify_commitment(giveaway.seed, giveaway.commitment)
        winners_ok = (
            closed
            and entrants == sorted(set(entrants))
            and len(entrants) == giveaway.entrants_count
            and verify_winners(giveaway.seed, entrants, giveaway.winners_count, winners)
        )
        return {
            "room": room, "giveaway": giveaway_id, "ok": commitment_ok and winners_ok,
            "state": giveaway.state.value, "commitment_ok": commitment_ok,
            "winners_ok": winners_ok, "commitment": giveaway.commitment,
            "seed": giveaway.seed if closed else None, "entrants": entrants,
            "winners": winners,
        }  # fmt: skip
