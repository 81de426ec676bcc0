"""One room's viewers on this engine process, and its tick.

The hub collects everything that happened in the room since the last tick (log entries
from the room's bus, like and presence totals) and, once per tick, encodes ONE frame
per codec and writes it, serialized once, to every local viewer
(engine/realtime/frames_out.py). Per-viewer frames (acks, errors, notices) are written on
that viewer's connection only.

Two offsets keep joins and resumes gap-free and duplicate-free:
- `received_id`: the newest log entry this hub has taken in (from the bus or a backfill);
- `delivered_id`: the newest entry included in a broadcast tick.
A joining viewer gets history up to `delivered_id` and is added to the broadcast set in
the same synchronous step, so the next tick carries exactly what follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection

from engine.core.errors import NotFoundError
from engine.core.identity import Author, Role
from engine.core.loop import stop_tasks
from engine.core.metrics import METRICS
from engine.core.stream_ids import stream_id_key
from engine.realtime.codec import Codec
from engine.realtime.frames_out import write_message
from engine.realtime.protocol import (
    CloseCode,
    ConnectionGuard,
    SessionState,
    error_message,
    notice_message,
)
from engine.realtime.rush_pace import tick_waits
from engine.realtime.sampling import CommentSampler
from engine.realtime.services import wire_limits
from engine.realtime.storefront import Storefront
from engine.rooms.access import REVOKED, is_revoked, revoked_error
from engine.rooms.moderation import BannedWordFilter
from engine.rooms.presence import RoomStats
from engine.rooms.rooms import Room, RoomSettings, RoomState
from engine.store.roomlog import BusMessage, Entry

if TYPE_CHECKING:
    from engine.realtime.services import RoomServices

log = logging.getLogger("livecart.hub")


class Viewer:
    """One joined connection: who it is and how to write to it."""

    __slots__ = (
        "author", "busy", "clicked", "closer", "codec", "conn", "conn_id", "guard", "hub",
        "leaving", "state",
    )  # fmt: skip

    def __init__(
        self,
        conn: ServerConnection,
        conn_id: str,
        codec: Codec,
        author: Author,
        guard: ConnectionGuard,
    ) -> None:
        self.conn = conn
        self.conn_id = conn_id
        self.codec = codec
        self.author = author
        self.guard = guard
        self.hub: RoomHub | None = None
        self.state = SessionState.AWAITING_HELLO
        self.clicked: set[str] | None = None  # products whose card this connection opened
        # The close decided for this connection (once): nothing it sends is served after.
        self.closer: asyncio.Task[None] | None = None
        # Frames being served and grabs or claims awaiting their answer: going away waits
        # for them (go_away).
        self.busy = 0
        self.leaving = False

    def send(self, message: dict[str, Any]) -> None:
        """Write one frame now, without waiting (the socket's buffer bound still applies)."""
        data = self.codec.encode(message)
        write_message((self.conn,), data, text=self.codec.text)
        METRICS.frames_sent.inc(1, "direct")
        METRICS.bytes_sent.inc(len(data))

    @property
    def closing(self) -> bool:
        return self.closer is not None

    def close_soon(self, code: CloseCode, reason: str) -> None:
        """Close with `code` once; from then on the gateway serves none of its frames (a
        flood already read is dropped, not processed)."""
        if self.closer is not None:
            return
        METRICS.disconnects.inc(1, code.name.lower())
        self.closer = asyncio.get_running_loop().create_task(self.conn.close(code, reason))

    def go_away(self) -> None:
        """The engine stops (or a worker is replaced): close with 1001 (reconnect and
        resume) once every frame being served has had its answer written. Frames read
        after this are not served, so a request a client sees unanswered at the 1001 was
        not applied, and it may send it again after resuming (docs/protocol.md § Close
        codes)."""
        self.leaving = True
        if self.busy <= 0:
            self.close_soon(CloseCode.GOING_AWAY, "server shutting down")

    def begin(self) -> None:
        """A frame starts being served, or a grab or claim waits for its answer."""
        self.busy += 1

    def done(self) -> None:
        """What `begin` counted has been answered."""
        self.busy -= 1
        if self.leaving and self.busy <= 0:
            self.close_soon(CloseCode.GOING_AWAY, "server shutting down")


class RoomHub:
    def __init__(self, room_id: str, node: RoomServices) -> None:
        self.room_id = room_id
        self.node = node
        self.settings = node.settings
        self.room: Room | None = None
        self.words = BannedWordFilter()
        # Products known to exist (products are never deleted), so a click on one costs
        # no round trip; an unknown id is looked up each time and refused if absent.
        self.products: set[str] = set()
        self.members: dict[Codec, set[ServerConnection]] = {codec: set() for codec in Codec}
        self.viewers: set[Viewer] = set()
        self.by_user: dict[str, set[Viewer]] = {}
        self.joining = 0
        self.idle_since: float | None = time.monotonic()
        self.pending: list[Entry] = []
        self.received_id: str | None = None
        self.delivered_id = "0-0"
        self.seq = 0
        self.stats = RoomStats()
        self.stats_dirty = False
        self.like_delta = 0
        self.sampler = CommentSampler(RoomSettings().display_rate, time.monotonic())
        self.storefront = Storefront(room_id, node)
        # Entry kinds (prefixes) that change what the storefront shows, the features' too.
        self.storefront_kinds = (
            "product_",
            "sale_",
            "coupon_",
            *(kind for f in node.features for kind in f.entry_kinds),
        )  # fmt: skip
        self.ticked_at = 0.0  # when the tick loop last flushed (monotonic s)
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ---- lifecycle -----------------------------------------------------------------

    def start(self, room: Room) -> None:
        self._apply_room(room)
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name=f"tick:{self.room_id}"),
            asyncio.create_task(self._sync_loop(), name=f"sync:{self.room_id}"),
        ]

    async def stop(self) -> None:
        # The flag, not only cancel(): a client library that turns a cancellation into
        # a connection error must not keep a loop alive.
        self.stopped.set()
        await stop_tasks(self._tasks)
        with contextlib.suppress(RedisError, OSError):
            await self.node.presence.sync(self.room_id, -1, self.like_delta)

    def _apply_room(self, room: Room) -> None:
        self.room = room
        self.sampler.set_rate(room.settings.display_rate)

    async def on_subscribed(self) -> None:
        """Redis confirmed the room's subscription: start from the log's end the first
        time; after a reconnect, backfill what was published while unsubscribed."""
        if self.received_id is None:
            last = await self.node.room_log.last_id(self.room_id)
            self.received_id = self.delivered_id = last
            await self.reload_words()
            self.ready.set()
            return
        missed, complete = await self.node.room_log.after(
            self.room_id, self.received_id, self.settings.stream_maxlen
        )
        for entry in missed:
            self._take(entry)
        if complete:
            log.info("room %s backfilled %d entries after resubscribe", self.room_id, len(missed))
        else:
            # Only if the bus was down while more than stream_maxlen entries were written.
            METRICS.backfill_gaps.inc()
            log.error("room %s lost entries while unsubscribed: the log was trimmed", self.room_id)

    async def reload_words(self) -> None:
        self.words = BannedWordFilter(await self.node.moderation.banned_words(self.room_id))

    async def check_product(self, product_id: str) -> None:
        """Refuse (`product_not_found`) a product id this room's catalog does not hold."""
        if product_id in self.products:
            return
        if not await self.node.catalog.exists(self.room_id, product_id):
            raise NotFoundError(f"no product {product_id!r} in this room",
                                code="product_not_found")  # fmt: skip
        self.products.add(product_id)

    # ---- membership ----------------------------------------------------------------

    async def join(self, viewer: Viewer, since: str | None) -> None:
        """Send the welcome (history or replay) and add the viewer to the broadcast set."""
        assert self.room is not None
        if since is not None:
            await self._catch_up(since)
        await self.storefront.refresh()
        recovered: bool | None = None
        while True:
            upto = self.delivered_id
            replay = None
            if since is not None and stream_id_key(since) <= stream_id_key(upto):
                replay = await self.node.room_log.between(
                    self.room_id, since, upto, self.settings.max_replay
                )
            if since is not None:
                recovered = replay is not None
            history = replay if replay is not None else await self._recent_comments(upto)
            if upto == self.delivered_id:
                break
        welcome: dict[str, Any] = {
            "type": "welcome",
            "conn_id": viewer.conn_id,
            "user": viewer.author.user,
            "name": viewer.author.name,
            "role": viewer.author.role.value,
            "room": self.room.to_wire(),
            "server_time": int(time.time() * 1000),
            "seq": self.seq,
            "offset": self.delivered_id,
            "history": [e.to_wire() for e in history],
            "stats": self.stats.to_wire(),
            "limits": wire_limits(self.node.settings, self.room.settings),
            **self.storefront.welcome(),
        }
        if recovered is not None:
            welcome["recovered"] = recovered
        # From here to the end nothing awaits: the next tick is the viewer's next frame.
        viewer.send(welcome)
        self.storefront.seen(1)
        viewer.hub = self
        viewer.state = SessionState.JOINED
        self.members[viewer.codec].add(viewer.conn)
        self.viewers.add(viewer)
        self.by_user.setdefault(viewer.author.user, set()).add(viewer)
        self.idle_since = None
        self.node.watchtime.joined(self.room_id, viewer.author)

    async def _recent_comments(self, upto: str) -> list[Entry]:
        recent = await self.node.room_log.recent(self.room_id, upto, self.settings.join_history)
        return [entry for entry in recent if entry.is_comment]

    async def _catch_up(self, since: str, timeout_s: float = 1.0) -> None:
        """A resuming viewer's offset can be ahead of this process: it was served by
        another process whose feed ran a tick ahead. Wait (briefly) for this hub to
        deliver up to it, so the next tick carries nothing the viewer already has. An
        offset that stays ahead (from another room or a wiped log) is unrecoverable."""
        deadline = time.monotonic() + timeout_s
        while stream_id_key(since) > stream_id_key(self.delivered_id):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(self.settings.tick_ms / 1000)

    def leave(self, viewer: Viewer) -> None:
        if viewer.hub is not self:
            return
        self.node.watchtime.left(self.room_id, viewer.author)
        viewer.hub = None
        viewer.state = SessionState.CLOSED
        self.members[viewer.codec].discard(viewer.conn)
        self.viewers.discard(viewer)
        same_user = self.by_user.get(viewer.author.user)
        if same_user is not None:
            same_user.discard(viewer)
            if not same_user:
                del self.by_user[viewer.author.user]
        if not self.viewers and self.joining == 0:
            self.idle_since = time.monotonic()

    @property
    def online_here(self) -> int:
        return len(self.viewers)

    # ---- input from the bus ----------------------------------------------------------

    def on_bus(self, message: BusMessage) -> None:
        if not message.id:
            self._on_control(message.kind, orjson.loads(message.data))
        elif self.received_id is not None:
            self._take(message.entry())

    def _take(self, entry: Entry) -> None:
        assert self.received_id is not None
        if entry.order <= stream_id_key(self.received_id):
            return  # already taken (a backfill overlapping the live feed)
        self.pending.append(entry)
        self.received_id = entry.id

    def _on_control(self, kind: str, data: dict[str, Any]) -> None:
        user = str(data.get("user", ""))
        targets = list(self.by_user.get(user, ()))
        if kind == "banned":
            rank = int(data.get("rank", Role.MODERATOR.rank))
            for viewer in targets:
                if viewer.author.role.rank >= rank:
                    continue  # a ban reaches only roles ranked below its issuer's
                viewer.send(
                    {
                        "type": "error",
                        "code": "banned",
                        "message": "you were banned from this room",
                        "retryable": False,
                    }
                )
                viewer.close_soon(CloseCode.BANNED, "banned")
        elif kind == REVOKED:
            before = int(data.get("before", 0))
            for viewer in targets:
                if is_revoked(viewer.author.issued_at or 0, before):
                    viewer.send(error_message(revoked_error()))
                    viewer.close_soon(CloseCode.AUTH_FAILED, "token revoked")
        elif kind == "banned_words":
            asyncio.get_running_loop().create_task(self.reload_words())
        elif user:
            # Addressed to one user (mutes, waitlist offers, prizes, outbids, a feature's
            # replies): a private notice on each of their connections here.
            for viewer in targets:
                viewer.send(notice_message(kind, **data))

    def add_likes(self, count: int) -> None:
        self.like_delta += count

    # ---- output ------------------------------------------------------------------------

    def _apply_entry(self, entry: Entry) -> None:
        """Keep the room snapshot (sent in welcomes) in step with delivered entries."""
        room = self.room
        assert room is not None
        if entry.kind == "room_state":
            self.room = replace(room, state=RoomState(entry.data["state"]))
        elif entry.kind == "room_updated":
            changes = {k: v for k, v in entry.data.items() if k != "settings"}
            if "settings" in entry.data:
                changes["settings"] = RoomSettings(**entry.data["settings"])
            self._apply_room(replace(room, **changes))
        elif entry.kind.startswith(self.storefront_kinds):
            self.storefront.apply(entry)
            if entry.kind == "product_pinned":
                self.room = replace(room, pinned_product=entry.ref)
                self.storefront.seen(len(self.viewers))
            elif entry.kind == "product_unpinned":
                self.room = replace(room, pinned_product=None)
        elif entry.kind == "comment_pinned":
            self.room = replace(room, pinned={"id": entry.ref, **entry.data})
        elif entry.kind == "comment_unpinned" or (
            entry.kind == "comment_deleted" and room.pinned and room.pinned.get("id") == entry.ref
        ):
            self.room = replace(room, pinned=None)

    def flush(self, now: float) -> None:
        """Broadcast one tick frame if anything changed since the last one."""
        entries, self.pending = self.pending, []
        for entry in entries:
            self._apply_entry(entry)
        if self.received_id is not None:
            self.delivered_id = self.received_id
        changes = self.storefront.take_changes()
        if not entries and not self.stats_dirty and not changes:
            return
        if not self.viewers:
            self.stats_dirty = False
            return
        started = time.perf_counter()
        kept, dropped = self.sampler.select(entries, now)
        self.seq += 1
        frame: dict[str, Any] = {
            "type": "tick",
            "seq": self.seq,
            "t": int(time.time() * 1000),
            "offset": self.delivered_id,
        }
        if kept:
            frame["entries"] = [e.to_wire() for e in kept]
        if dropped:
            frame["sampled_out"] = dropped
            METRICS.sampled_out.inc(dropped)
        if self.stats_dirty:
            frame["stats"] = self.stats.to_wire()
            self.stats_dirty = False
        frame.update(changes)  # stock, drops and the features' fields
        for codec, conns in self.members.items():
            if conns:
                data = codec.encode(frame)
                write_message(conns, data, text=codec.text)
                METRICS.frames_sent.inc(len(conns), "tick")
                METRICS.bytes_sent.inc(len(data) * len(conns))
        METRICS.tick_seconds.observe(time.perf_counter() - started)

    def answering(self) -> bool:
        """Whether grabs or coupon claims of the room wait for answers on this process."""
        return self.node.stock.answering(self.room_id) or self.node.coupons.answering(self.room_id)

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.tick_ms / 1000
        deadline = loop.time()
        while not self.stopped.is_set():
            deadline += interval
            delay = deadline - loop.time()
            if delay < 0:  # fell behind (busy CPU): skip missed ticks, never burst
                deadline = loop.time()
                delay = 0
            await asyncio.sleep(delay)
            now = time.monotonic()
            if tick_waits(self.answering(), now - self.ticked_at):
                continue  # the room's buyers are answered first (engine/realtime/rush_pace.py)
            self.ticked_at = now
            try:
                self.flush(now)
            except Exception:
                log.exception("tick failed in room %s", self.room_id)

    async def _sync_loop(self) -> None:
        interval = self.settings.sync_ms / 1000
        while not self.stopped.is_set():
            await asyncio.sleep(interval)
            delta, self.like_delta = self.like_delta, 0
            started = time.perf_counter()
            try:
                stats = await self.node.presence.sync(self.room_id, self.online_here, delta)
            except (RedisError, OSError) as exc:
                self.like_delta += delta  # keep the likes for the next attempt
                if self.stopped.is_set():
                    return
                log.warning("room %s sync failed: %s", self.room_id, exc)
                await asyncio.sleep(interval)
                continue
            METRICS.redis_rtt.observe(time.perf_counter() - started)
            if stats != self.stats:
                self.stats = stats
                self.stats_dirty = True
            try:
                await self.storefront.poll()
            except (RedisError, OSError) as exc:
                log.warning("room %s stock poll failed: %s", self.room_id, exc)
            except Exception:  # a bug must not stop the room's stats and stock for good
                log.exception("room %s stock poll failed", self.room_id)

    def kick_all(self, code: CloseCode, reason: str) -> None:
        for viewer in list(self.viewers):
            viewer.close_soon(code, reason)
