"""Where a viewer sits in a room's own keys and its social ones: presence and watch time,
orders by user, reminders and poll votes (a hash field by user), moderation (kept: a ban
stays in force), share names and referrals, set, sorted-set and list memberships, the
room's streams, a pinned comment and rate limits. A mixin of
engine/ledger/privacy_redis.py's RoomScan.
"""

from __future__ import annotations

import re
from typing import Any

from engine.ledger.key_edits import (
    added,
    deleted,
    hash_items,
    keep,
    loads_or_none,
    rewrite_hash,
    stream_items,
    swap_field,
    swap_member,
    to,
)
from engine.ledger.privacy_scan import ScanState
from engine.store.redis_client import text

_LABELS = {"viewers": "joined_at_ms", "watch_ms": "watched_ms", "watch_since": "watching_since_ms",
           "user_orders": "order_ids", "reminder_subs": "reminders_since_ms"}  # fmt: skip


def _names_user(value: Any, user: str) -> bool:
    """A decoded JSON value holds `user` as a string or a key, at any depth."""
    if isinstance(value, str):
        return value == user
    if isinstance(value, list):
        return any(_names_user(item, user) for item in value)
    if isinstance(value, dict):
        return user in value or any(_names_user(item, user) for item in value.values())
    return False


class RoomKeys(ScanState):
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
                self.stays(key, "a mute still in force")
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
                self.stays(key, "a ban, revocation or block stays in force")

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

    def _referrer_renamed(self, value: str, _there: str | None) -> str:
        referrer, _, since = value.partition(" ")
        return f"{self.who.alias} {since}" if referrer == self.who.user else value

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

    async def _stream(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        user = self.who.user
        for entry_id, fields in await stream_items(self.redis, key):
            if suffix == "log":
                data = loads_or_none(fields.get("d", "")) or {}
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
        pinned = loads_or_none(text(await self.redis.hget(key, "pinned")) or "null")
        if isinstance(pinned, dict) and pinned.get("user") == self.who.user:
            self.add("pinned_comment", suffix, comment=pinned)

            def edit(now: dict[str, str]) -> dict[str, str] | None:
                still = loads_or_none(now.get("pinned") or "null")
                if isinstance(still, dict) and still.get("user") == self.who.user:
                    return {"pinned": "", "pinned_id": ""}  # unpinned
                return None

            self.edits.append(rewrite_hash(key, edit))

    async def _limit(self, key: str, suffix: str, match: re.Match[str]) -> None:
        """A rate limit's or a repeat guard's few seconds: gone with the user."""
        if match["user"] == self.who.user:
            self.add("limits", suffix, ttl_ms=int(await self.redis.pttl(key)))
            self.edits.append(lambda redis: deleted(redis, key))
