"""Where a viewer sits in the features' keys: giveaways (a won draw keeps the winner's id:
it is verified from the entrants' ids), auctions and their bids, group-buy teams. A mixin
of engine/ledger/privacy_redis.py's RoomScan.
"""

from __future__ import annotations

import re

import orjson

from engine.ledger.key_edits import hdel, loads_or_none, rename_bids, rewrite_hash, swap_field, to
from engine.ledger.privacy_scan import ScanState, records_naming
from engine.store.redis_client import text


def _leader_renamed(now: dict[str, str], user: str, alias: str) -> dict[str, str]:
    """An auction's or a team's leader, id and shown name, as the pseudonym."""
    return {"leader": alias, "leader_name": alias} if now.get("leader") == user else {}


class FeatureKeys(ScanState):
    async def _giveaway(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        g = await self.read_hash(key)
        user = self.who.user
        entrants = loads_or_none(g.get("entrants") or "[]") or []
        winners = loads_or_none(g.get("winners_list") or "[]") or []
        excluded = loads_or_none(g.get("excluded") or "[]") or []
        names = loads_or_none(g.get("names") or "{}") or {}
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
            self.stays(key, "a won draw keeps its winner's id: the draw is verified from the "
                       "entrants' ids")  # fmt: skip

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            now_entrants = loads_or_none(now.get("entrants") or "[]") or []
            now_names = loads_or_none(now.get("names") or "{}") or {}
            changed: dict[str, str] = {}
            if user in now_names:
                now_names[user] = self.who.alias
                changed["names"] = orjson.dumps(now_names).decode()
            if user in now_entrants and user not in winners:
                # Not a winner: leaving the entrants moves no one else's rank in the draw.
                now_entrants.remove(user)
                changed["entrants"] = orjson.dumps(now_entrants).decode()
                changed["entrants_count"] = str(len(now_entrants))
                now_excluded = loads_or_none(now.get("excluded") or "[]") or []
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
            self.stays(key, "a won draw's entrants (the name goes)")
            self.edits.append(swap_field(key, self.who.user, self.who.user,
                                          to(self.who.alias)))  # fmt: skip
        else:
            self.edits.append(lambda redis: hdel(redis, key, self.who.user))

    async def _awards(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        award = await self.redis.hget(key, self.who.user)
        if award is not None:
            self.add("giveaway_awards", suffix, award=loads_or_none(text(award)))
            self.stays(key, "a won draw's award")

    async def _winners(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        won = await self.redis.hget(key, self.who.user)
        if won is not None:
            self.add("giveaway_wins", suffix, giveaways=text(won).split())
            self.stays(key, "the room's index of won draws")

    async def _auction(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        a = await self.read_hash(key)
        user, alias = self.who.user, self.who.alias
        mine = records_naming(a, "offer:", "user", user)
        if user not in (a.get("leader"), a.get("winner")) and not mine:
            return
        self.add("auctions", suffix, auction=a.get("id"), leader=a.get("leader") == user,
                 winner=a.get("winner") == user, offers=list(mine.values()))  # fmt: skip
        if a.get("leader") == user:
            self.who.saw(a.get("leader_name"))

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            changed = _leader_renamed(now, user, alias)
            if now.get("winner") == user:
                changed["winner"] = alias
            for name, offer in records_naming(now, "offer:", "user", user).items():
                changed[name] = orjson.dumps({**offer, "user": alias}).decode()
            return changed or None

        self.edits.append(rewrite_hash(key, edit))

    async def _bids(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        bids = [loads_or_none(text(raw)) for raw in await self.redis.lrange(key, 0, -1)]
        places = [n for n, bid in enumerate(bids) if isinstance(bid, dict)
                  and bid.get("u") == self.who.user]  # fmt: skip
        if not places:
            return
        self.add("bids", suffix, bids=[bids[n] for n in places])
        self.edits.append(lambda redis: rename_bids(redis, key, self.who.user, self.who.alias))

    async def _team(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        t = await self.read_hash(key)
        user, alias = self.who.user, self.who.alias
        if f"user:{user}" not in t and t.get("leader") != user:
            return
        members = list(records_naming(t, "member:", "u", user).values())
        self.add("group_buy_teams", suffix, team=t.get("id"), deal=t.get("deal"),
                 leader=t.get("leader") == user, members=members)  # fmt: skip
        self.who.saw(*(m.get("name") for m in members))

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            changed = _leader_renamed(now, user, alias)
            if f"user:{user}" in now:
                changed[f"user:{user}"] = ""
                changed[f"user:{alias}"] = now[f"user:{user}"]
            for name, member in records_naming(now, "member:", "u", user).items():
                changed[name] = orjson.dumps({**member, "u": alias, "name": alias}).decode()
            return changed or None

        self.edits.append(rewrite_hash(key, edit))
