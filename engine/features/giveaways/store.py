"""Giveaways (lucky bags): a provably fair draw among a room's viewers, and its prizes.

    open ──ends_at / host closes──▶ closed ──awards──▶ (every winner has their prize)

When a giveaway opens, the engine draws a secret seed, stores it, and publishes only its
commitment in the `giveaway_opened` room-log entry. Viewers enter while it is open (one
entry per user). Closing is one Lua script that flips open → closed exactly once and stores
the draw; the `giveaway_closed` entry reveals the seed with the winners, and the record
keeps the sorted entrants and the sorted excluded entrants, so anyone can recompute the
draw (engine/features/giveaways/draw.py, `livecart giveaway verify`).

Entry rules: `any` (any signed-in user), `keyword` (the entry carries the keyword, 口令, or
the user posts a comment containing it: `on_comment`), `watch` (the user has watched the
show for at least `min_watch_s`, engine/rooms/watchtime.py).

Limits: `one_win_per_show` (no one who already won a giveaway in this room) and
`exclude_recent_winners` N (no winner of the last N giveaways closed in this room). They are
applied, and recorded, at the draw: the close reads the room's closed giveaways and their
winners, stores the entrants it excludes, and draws among the rest, so `verify` recomputes
the draw from the record alone and the audit re-derives the exclusions from the room's
closed giveaways (engine/features/giveaways/audit.py). Entering also refuses a user the limits
exclude at that moment (`already_won`, `recent_winner`), only so they know early.

Prizes (a label, a product unit, a coupon) are set aside at open and given after the draw,
each winner's exactly once, by engine/features/giveaways/prizes.py.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.commerce.coupons import Coupons
from engine.commerce.sales import SaleStore
from engine.commerce.stock import Stock
from engine.core.errors import ConflictError, NotFoundError, RejectedError, UnavailableError
from engine.core.fields import invalid_field
from engine.core.identity import Author, Role
from engine.core.room_cache import RoomCache
from engine.features.giveaways.draw import (
    commitment,
    draw,
    excluded_entrants,
    new_seed,
    normalize,
)
from engine.features.giveaways.model import (
    MAX_PRIZE,
    EntryRule,
    Giveaway,
    GiveawayState,
    GiveawayTerms,
)
from engine.features.giveaways.prizes import Prizes
from engine.rooms.watchtime import WatchTime
from engine.store import keys
from engine.store.meter import Meter, Metric, off
from engine.store.redis_client import text
from engine.store.roomlog import notify_user
from engine.store.scripts import Scripts

NAME = "giveaways"
GIVEAWAY_ID_RE = re.compile(r"g[0-9]{1,9}")
_CLOSE_ATTEMPTS = 20
KEYWORDS_TTL_S = 1.0  # a room's open keywords kept this long unless a change is seen first


def check_giveaway_id(value: Any) -> str:
    if not isinstance(value, str) or not GIVEAWAY_ID_RE.fullmatch(value):
        raise invalid_field("giveaway", "a giveaway id such as 'g3'")
    return value


def _not_found(giveaway_id: str) -> NotFoundError:
    return NotFoundError(f"no giveaway {giveaway_id!r} in this room", code="giveaway_not_found")


async def load_giveaway(redis: Redis, room: str, giveaway_id: str) -> Giveaway:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.giveaway(room, giveaway_id))
        pipe.hlen(keys.giveaway_entrants(room, giveaway_id))
        pipe.hgetall(keys.giveaway_awards(room, giveaway_id))
        raw, count, awards = await pipe.execute()
    if not raw:
        raise _not_found(giveaway_id)
    return Giveaway.from_hash(raw, int(count), awards)


class GiveawayStore:
    def __init__(self, redis: Redis, scripts: Scripts, log_maxlen: int, *, sales: SaleStore,
                 stock: Stock, coupons: Coupons, watchtime: WatchTime,
                 meter: Meter | None = None) -> None:  # fmt: skip
        self.redis = redis
        self.meter = meter or off()
        self.scripts = scripts
        self.log_maxlen = log_maxlen
        self.prizes = Prizes(redis, sales=sales, stock=stock, coupons=coupons)
        self.watchtime = watchtime
        # Every viewer comment consults them: kept per room, forgotten when a giveaway opens
        # or closes, here or (by its room-log entry, GiveawaysView) on another process.
        self.keywords = RoomCache(self._open_keywords, KEYWORDS_TTL_S)

    # ---- opening ------------------------------------------------------------------------

    async def create(self, room: str, terms: GiveawayTerms, *,
                     at_ms: int | None = None) -> Giveaway:  # fmt: skip
        kind, sku, template = terms.prize_kind, terms.prize_sku, terms.prize_template
        # Looked up even when the host names the prize: it refuses an unknown SKU or template.
        default_prize = await self.prizes.default_label(room, kind, sku, template)
        prize = terms.prize_label
        if prize is None:
            assert default_prize is not None  # a label's prize is required (GiveawayTerms)
            prize = default_prize[:MAX_PRIZE]
        keyword, watch_s, one_win = terms.entry_keyword, terms.watch_s, terms.one_win_per_show
        title, recent = terms.title.strip(), terms.exclude_recent_winners
        seed = new_seed()
        commit = commitment(seed)
        giveaway_id = f"g{await self.redis.incr(keys.giveaway_counter(room))}"
        prize_refs = await self.prizes.set_aside(
            room, giveaway_id, kind=kind, sku=sku, template=template, winners=terms.winners,
        )  # fmt: skip
        stored: dict[str, str | int] = {
            "title": title, "prize": prize, "winners": terms.winners,
            "rule": terms.rule.value, "keyword": keyword, "seed": seed.hex(),
            "commitment": commit, "min_watch_s": watch_s,
            "one_win": "1" if one_win else "0", "exclude_recent": recent,
            "prize_kind": kind.value, "sku": sku, "template": template,
            **prize_refs,
        }  # fmt: skip
        announcement = {
            "giveaway": giveaway_id, "title": title, "prize": prize,
            "prize_kind": kind.value, "winners": terms.winners,
            "rule": terms.rule.value, "keyword": keyword or None,
            "min_watch_s": watch_s or None, "one_win_per_show": one_win,
            "exclude_recent_winners": recent, "commitment": commit,
        }  # fmt: skip
        result = await self.scripts.all["giveaway_create"](
            self.redis,
            [keys.giveaway(room, giveaway_id), keys.giveaways(room), keys.room_stream(room),
             keys.giveaway_keywords(room)],
            [
                giveaway_id, "" if at_ms is None else at_ms, terms.duration_s * 1000,
                self.log_maxlen, keys.room_bus(room), orjson.dumps(announcement),
                normalize(keyword), *(item for pair in stored.items() for item in pair),
            ],
        )  # fmt: skip
        self.keywords.forget(room)
        if result[0] == b"err":
            raise ConflictError(f"giveaway {giveaway_id} exists", code="giveaway_exists")
        return await self.get(room, giveaway_id, at_ms=at_ms)

    # ---- reading ------------------------------------------------------------------------

    async def _read(self, room: str, giveaway_id: str) -> Giveaway:
        return await load_giveaway(self.redis, room, giveaway_id)

    async def get(self, room: str, giveaway_id: str, *, at_ms: int | None = None) -> Giveaway:
        """The giveaway; one past its end is drawn first (closing on read), and a closed one
        whose awards are unfinished gets them finished."""
        giveaway = await self._read(room, check_giveaway_id(giveaway_id))
        if giveaway.due(at_ms) or (giveaway.state is GiveawayState.CLOSED
                                   and not giveaway.awarded):  # fmt: skip
            return await self.close(room, giveaway_id, at_ms=at_ms)
        return giveaway

    async def list(self, room: str, *, at_ms: int | None = None) -> list[Giveaway]:
        ids = [text(g) for g in await self.redis.zrange(keys.giveaways(room), 0, -1)]
        return [await self.get(room, giveaway_id, at_ms=at_ms) for giveaway_id in ids]

    # ---- entering -----------------------------------------------------------------------

    async def enter(self, room: str, giveaway_id: str, user: str, keyword: str | None = None,
                    *, name: str = "", at_ms: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Enter `user`; idempotent. Returns `{"giveaway", "entered", "new", "entrants"}`."""
        giveaway = await self._read(room, check_giveaway_id(giveaway_id))
        given = None if keyword is None else normalize(keyword)
        if giveaway.rule is EntryRule.KEYWORD and given != normalize(giveaway.keyword or ""):
            raise RejectedError("that is not the giveaway's keyword", code="keyword_mismatch")
        return await self._enter(room, giveaway, user, name, at_ms)

    async def _enter(self, room: str, giveaway: Giveaway, user: str, name: str,
                     at_ms: int | None) -> dict[str, Any]:  # fmt: skip
        if giveaway.rule is EntryRule.WATCH:
            watched = await self.watchtime.watched_ms(room, user, at_ms=at_ms)
            if watched < giveaway.min_watch_s * 1000:
                raise RejectedError(
                    f"watch the show for {giveaway.min_watch_s} s to enter",
                    code="not_watched_enough",
                    details={"watched_s": watched // 1000, "min_watch_s": giveaway.min_watch_s},
                )
        if giveaway.one_win_per_show or giveaway.exclude_recent:
            await self._check_limits(room, giveaway, user)
        result = await self.scripts.all["giveaway_enter"](
            self.redis,
            [keys.giveaway(room, giveaway.id), keys.giveaway_entrants(room, giveaway.id)],
            ["" if at_ms is None else at_ms, user, name or user],
        )
        if result[0] != b"ok":
            if text(result[1]) == "giveaway_not_found":
                raise _not_found(giveaway.id)
            raise ConflictError("the giveaway is closed", code="giveaway_closed")
        new = bool(int(result[1]))
        if new:
            self.meter.count(room, Metric.GIVEAWAY_ENTRIES)
        return {"giveaway": giveaway.id, "entered": True, "new": new,
                "entrants": int(result[2])}  # fmt: skip

    async def _check_limits(self, room: str, giveaway: Giveaway, user: str) -> None:
        """Refuse early whom the draw would exclude now (the draw decides; see the top)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.giveaway_room_winners(room), user)
            pipe.lrange(keys.giveaways_closed(room), -max(1, giveaway.exclude_recent), -1)
            won_raw, closed = await pipe.execute()
        won = {user: text(won_raw).split()} if won_raw else {}
        recent = [text(g) for g in closed] if giveaway.exclude_recent else []
        if not excluded_entrants([user], won, recent, giveaway.one_win_per_show):
            return
        if giveaway.one_win_per_show:
            raise RejectedError("you already won a giveaway in this show", code="already_won")
        raise RejectedError(f"winners of the last {giveaway.exclude_recent} giveaways cannot "
                            "enter", code="recent_winner")  # fmt: skip

    async def on_comment(self, room: str, author: Author, comment: str) -> None:
        """A viewer's comment containing an open keyword giveaway's keyword enters them; they
        hear back privately (`giveaway_entered`, or `giveaway_entry_refused` with the code).
        The open keywords come from `keywords`, not from Redis on every comment."""
        if author.role is not Role.VIEWER:
            return  # the host announcing the keyword does not enter
        open_keywords = await self.keywords.get(room)
        if not open_keywords:
            return
        said = normalize(comment)
        for giveaway_id, keyword in open_keywords.items():
            if keyword not in said:
                continue
            try:
                giveaway = await self._read(room, giveaway_id)
                entered = await self._enter(room, giveaway, author.user, author.name, None)
            except (NotFoundError, ConflictError):
                continue  # closed meanwhile (or ended and about to be drawn)
            except RejectedError as exc:
                await notify_user(
                    self.redis, self.scripts, room, author.user, "giveaway_entry_refused",
                    giveaway=giveaway_id, code=exc.code, message=str(exc),
                )  # fmt: skip
                continue
            if entered["new"]:
                await notify_user(self.redis, self.scripts, room, author.user, "giveaway_entered",
                                  giveaway=giveaway_id, entrants=entered["entrants"])  # fmt: skip

    async def _open_keywords(self, room: str) -> dict[str, str]:
        """The room's open keyword giveaways: id -> normalized keyword."""
        raw = await self.redis.hgetall(keys.giveaway_keywords(room))
        return {text(giveaway_id): text(keyword) for giveaway_id, keyword in raw.items()}

    # ---- the draw and the awards --------------------------------------------------------

    async def close(self, room: str, giveaway_id: str, *, at_ms: int | None = None) -> Giveaway:
        """Draw and close, then finish the awards. Safe to race: the script closes once; a
        loser of the race (or a close of a closed giveaway) reads the stored result, and
        awards are idempotent."""
        giveaway = await self._draw(room, check_giveaway_id(giveaway_id), at_ms)
        return await self._finish_awards(room, giveaway)

    async def _draw(self, room: str, giveaway_id: str, at_ms: int | None) -> Giveaway:
        """Close with the draw (no awards yet); the closed giveaway."""
        entrants_key = keys.giveaway_entrants(room, giveaway_id)
        for _ in range(_CLOSE_ATTEMPTS):
            giveaway = await self._read(room, giveaway_id)
            if giveaway.state is GiveawayState.CLOSED:
                return giveaway
            limited = giveaway.one_win_per_show or giveaway.exclude_recent > 0
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(entrants_key)
                pipe.llen(keys.giveaways_closed(room))
                pipe.lrange(keys.giveaways_closed(room), -max(1, giveaway.exclude_recent), -1)
                if limited:
                    pipe.hgetall(keys.giveaway_room_winners(room))
                entrants_raw, closed_count, recent_raw, *won_raw = await pipe.execute()
            names = {text(u): text(n) for u, n in entrants_raw.items()}
            entrants = sorted(names)
            won = {text(u): text(ids).split() for u, ids in (won_raw[0] if limited else {}).items()}
            recent = [text(g) for g in recent_raw] if giveaway.exclude_recent else []
            excluded = excluded_entrants(entrants, won, recent, giveaway.one_win_per_show)
            eligible = sorted(set(entrants) - set(excluded))
            winners = draw(bytes.fromhex(giveaway.seed), eligible, giveaway.winners_count)
            result = await self.scripts.all["giveaway_close"](
                self.redis,
                [keys.giveaway(room, giveaway_id), entrants_key, keys.room_stream(room),
                 keys.giveaways_closed(room), keys.giveaway_room_winners(room),
                 keys.giveaway_keywords(room)],
                ["" if at_ms is None else at_ms, self.log_maxlen, keys.room_bus(room),
                 len(entrants), int(closed_count), orjson.dumps(entrants),
                 orjson.dumps(excluded), orjson.dumps(winners),
                 orjson.dumps({w: names[w] for w in winners})],
            )  # fmt: skip
            if result[0] == b"ok" or text(result[1]) == "giveaway_closed":
                self.keywords.forget(room)
                return await self._read(room, giveaway_id)
            if text(result[1]) == "giveaway_not_found":
                raise _not_found(giveaway_id)
            # entrants_changed: someone entered, or another giveaway closed; draw again
        raise UnavailableError("the giveaway kept changing while closing; retry")

    async def _finish_awards(self, room: str, giveaway: Giveaway) -> Giveaway:
        """The giveaway with every winner's award given and recorded
        (engine/features/giveaways/prizes.py)."""
        if giveaway.awarded:
            return giveaway
        await self.prizes.finish(room, giveaway)
        return await self._read(room, giveaway.id)

    # ---- verification -------------------------------------------------------------------


async def check_draw(redis: Redis, room: str, giveaway_id: str) -> dict[str, Any]:
    """What `livecart giveaway verify` prints: the stored draw recomputed (reads only)."""
    giveaway = await load_giveaway(redis, room, check_giveaway_id(giveaway_id))
    closed = giveaway.state is GiveawayState.CLOSED
    entrants = list(giveaway.entrants)
    excluded = list(giveaway.excluded)
    winners = list(giveaway.winners)
    commitment_ok = closed and giveaway.seed_matches()
    winners_ok = (
        closed
        and giveaway.entrants_recorded()
        and excluded == sorted(set(excluded))
        and giveaway.winners_drawn()
    )
    return {
        "room": room, "giveaway": giveaway_id, "ok": commitment_ok and winners_ok,
        "state": giveaway.state.value, "commitment_ok": commitment_ok,
        "winners_ok": winners_ok, "commitment": giveaway.commitment,
        "seed": giveaway.seed if closed else None, "entrants": entrants,
        "excluded": excluded, "winners": winners,
    }  # fmt: skip
