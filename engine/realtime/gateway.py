"""The viewer WebSocket gateway: wires sockets to the protocol, the hub and the services.

Per connection: wait for `hello` (auth, room, optional resume offset), join the room's
hub, then answer each frame. Every failure of one frame becomes an `error` frame with a
code and the connection carries on; only abuse (error budget exceeded), auth failures
and bans close it, each with a documented close code.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from engine.commerce.stock import GrabAnswer, GrabRequest
from engine.core.errors import (
    AuthError,
    ForbiddenError,
    LivecartError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    UnavailableError,
)
from engine.core.feature import Frame, FrameCall
from engine.core.identity import Author, Role
from engine.core.metrics import METRICS
from engine.realtime.codec import Codec
from engine.realtime.hub import RoomHub, Viewer
from engine.realtime.protocol import (
    Claim,
    Click,
    ClientFrame,
    CloseCode,
    Comment,
    ConnectionGuard,
    FrameSchema,
    Grab,
    Hello,
    InvalidMessage,
    JoinWaitlist,
    Like,
    Ping,
    Release,
    ack_message,
    error_message,
    parse_frame,
    pong_message,
)
from engine.realtime.services import RoomServices
from engine.realtime.viewer_connection import ViewerConnection
from engine.rooms.presence import Arrival
from engine.store.keys import ROOM_ID_RE
from engine.store.meter import Metric

log = logging.getLogger("livecart.gateway")

WS_PATH_PREFIX = "/ws/"


class GatewayServices(RoomServices, Protocol):
    """The room services, and the hubs of this process (engine/server/node.py)."""

    async def acquire_hub(self, room_id: str) -> RoomHub: ...

    def release_hub(self, hub: RoomHub) -> None: ...


# Close codes of a refused join, by error code (else 3500: get a new token).
_JOIN_REFUSALS = {
    "banned": CloseCode.BANNED,
    "too_many_connections": CloseCode.TOO_MANY_CONNECTIONS,
    "unavailable": CloseCode.OVERLOADED,  # e.g. the identity service's JWKS did not answer
}


def room_of_path(path: str) -> str | None:
    room = path.split("?", 1)[0].removeprefix(WS_PATH_PREFIX).rstrip("/")
    return room if ROOM_ID_RE.fullmatch(room) else None


class Gateway:
    def __init__(self, node: GatewayServices) -> None:
        self.node = node
        self.limits = node.settings.limits
        # Open connections per (room, user) on this process (settings.connections_per_user).
        self.open_by_user: Counter[tuple[str, str]] = Counter()
        # The frame types features bring (engine/core/feature.py), by their schema, with
        # their services; the client frames this engine decodes are the core's and these.
        self.feature_frames: dict[type[Any], tuple[Frame, Any]] = {
            frame.schema: (frame, node.feature_services[feature.name])
            for feature in node.features for frame in feature.frames
        }  # fmt: skip
        self.schema = FrameSchema(list(self.feature_frames))
        # Refusals that are a lost race, not a misbehaving client (each feature's own).
        self.race_lost = frozenset[str]().union(
            *(frame.race_lost for frame, _ in self.feature_frames.values())
        )
        # The frames served without waiting (an order's answer comes from its batch): these
        # are served as soon as they are read when the connection has nothing in hand
        # (ViewerConnection.process_event), and by the read loop otherwise.
        self.at_once: dict[type[Any], Callable[[Viewer, RoomHub, Any], None]] = {
            Grab: self._order, Claim: self._order, Like: self._like, Ping: self._ping,
        }  # fmt: skip

    async def handle(self, conn: ServerConnection) -> None:
        conn_id = secrets.token_hex(6)
        codec = Codec.for_subprotocol(conn.subprotocol)
        METRICS.connections_total.inc()
        viewer: Viewer | None = None
        hub: RoomHub | None = None
        expiry: asyncio.TimerHandle | None = None
        held: tuple[str, str] | None = None  # the (room, user) slot this connection holds
        try:
            viewer, hub = await self._hello(conn, conn_id, codec)
            if viewer is None or hub is None:
                return
            held = (hub.room_id, viewer.author.user)
            expiry = self._close_at_expiry(viewer)
            self._attach(conn, viewer, hub)
            log.info(
                "viewer joined",
                extra={"room": hub.room_id, "conn": conn_id, "user": viewer.author.user},
            )
            async for frame in conn:
                if viewer.closing:
                    break  # over its budget: stop reading, what is left is dropped
                if viewer.leaving:
                    continue  # going away: not served; the client sends it again
                viewer.begin()
                try:
                    await self._on_frame(viewer, hub, frame)
                finally:
                    viewer.done()
            if viewer.closer is not None:
                await viewer.closer
        except ConnectionClosed:
            pass
        finally:
            if expiry is not None:
                expiry.cancel()
            if held is not None:
                self._release_slot(held)
            if hub is not None and viewer is not None:
                self._detach(conn)
                hub.leave(viewer)
                log.info("viewer left", extra={"room": hub.room_id, "conn": conn_id})

    # ---- joining ---------------------------------------------------------------------

    def _attach(self, conn: ServerConnection, viewer: Viewer, hub: RoomHub) -> None:
        """The joined viewer on its connection: its frames served at once when they can
        be, and the engine's going away followed."""
        if isinstance(conn, ViewerConnection):
            conn.viewer = viewer
            conn.serve_at_once = partial(self._serve_at_once, viewer, hub)
            if conn.going_away:  # the engine began stopping during the hello
                viewer.go_away()

    @staticmethod
    def _detach(conn: ServerConnection) -> None:
        if isinstance(conn, ViewerConnection):
            conn.serve_at_once = None

    def _close_at_expiry(self, viewer: Viewer) -> asyncio.TimerHandle | None:
        """A token is checked at `hello`; the connection it opened ends when it expires
        (close 3500: sign in again), so a token cannot outlive its `exp` on an open socket."""
        if viewer.author.expires_at is None:
            return None
        delay = max(0.0, viewer.author.expires_at - time.time())
        return asyncio.get_running_loop().call_later(
            delay, viewer.close_soon, CloseCode.AUTH_FAILED, "token expired"
        )

    def _refuse(
        self, conn: ServerConnection, codec: Codec, error: LivecartError, close: CloseCode
    ) -> None:
        Viewer(
            conn, "", codec, Author("", "", Role.ANONYMOUS), ConnectionGuard(self.limits, 0)
        ).send(error_message(error))
        METRICS.errors.inc(1, error.code)
        METRICS.disconnects.inc(1, close.name.lower())

    async def _hello(
        self, conn: ServerConnection, conn_id: str, codec: Codec
    ) -> tuple[Viewer | None, RoomHub | None]:
        room_id = room_of_path(conn.request.path if conn.request else "")
        if room_id is None:
            self._refuse(
                conn,
                codec,
                NotFoundError("no such room path", code="room_not_found"),
                CloseCode.ROOM_NOT_FOUND,
            )
            await conn.close(CloseCode.ROOM_NOT_FOUND, "room not found")
            return None, None
        try:
            frame = await asyncio.wait_for(conn.recv(), self.limits.hello_timeout_s)
        except TimeoutError:
            METRICS.disconnects.inc(1, "hello_timeout")
            await conn.close(CloseCode.HELLO_TIMEOUT, "no hello in time")
            return None, None
        try:
            hello = parse_frame(frame, codec, self.limits, self.schema)
            if not isinstance(hello, Hello):
                raise ProtocolError("the first frame must be a hello", code="hello_required")
            hub = await self._acquire(room_id)
        except LivecartError as error:
            close = (
                CloseCode.ROOM_NOT_FOUND
                if isinstance(error, NotFoundError)
                else CloseCode.PROTOCOL_ABUSE
            )
            if isinstance(error, UnavailableError):
                close = CloseCode.OVERLOADED
            self._refuse(conn, codec, error, close)
            await conn.close(close, error.code)
            return None, None
        slot: tuple[str, str] | None = None
        try:
            author = await self._authenticate(hub, hello, conn_id)
            slot = self._take_slot(room_id, author.user)
            viewer = Viewer(
                conn, conn_id, codec, author, ConnectionGuard(self.limits, time.monotonic())
            )
            assert hub.room is not None
            arrival = await self.node.presence.seen(
                room_id, author.user, hub.room.host,
                anonymous_from=self._address(conn) if author.role is Role.ANONYMOUS else "",
                anonymous_per_address=self.node.settings.anonymous_viewers_per_ip,
            )  # fmt: skip
            await hub.join(viewer, hello.since)
            try:
                self._count_arrival(room_id, arrival, resumed=hello.since is not None)
                if hello.ref is not None:
                    await self.node.referrals.on_join(room_id, author, hello.ref)
            except BaseException:
                # Joined but not handed to the read loop (whose `finally` leaves): leave
                # here, or the room would count a ghost viewer (and its watch time) forever.
                hub.leave(viewer)
                raise
            slot = None  # handed over: released when the connection ends (handle)
            return viewer, hub
        except LivecartError as error:
            close = _JOIN_REFUSALS.get(error.code, CloseCode.AUTH_FAILED)
            self._refuse(conn, codec, error, close)
            await conn.close(close, error.code)
            return None, None
        except (RedisError, OSError):
            self._refuse(
                conn, codec, UnavailableError("storage unavailable; retry"), CloseCode.OVERLOADED
            )
            await conn.close(CloseCode.OVERLOADED, "unavailable")
            return None, None
        finally:
            if slot is not None:
                self._release_slot(slot)
            self.node.release_hub(hub)

    def _take_slot(self, room: str, user: str) -> tuple[str, str]:
        """Count one more connection of `user` in `room`, or refuse it beyond the cap."""
        slot = (room, user)
        cap = self.node.settings.connections_per_user
        if cap and self.open_by_user[slot] >= cap:
            raise RateLimitedError(
                f"this user already has {cap} connections to this room; close one first",
                code="too_many_connections", details={"limit": cap},
            )  # fmt: skip
        self.open_by_user[slot] += 1
        return slot

    def _release_slot(self, slot: tuple[str, str]) -> None:
        self.open_by_user[slot] -= 1
        if self.open_by_user[slot] <= 0:
            del self.open_by_user[slot]

    @staticmethod
    def _address(conn: ServerConnection) -> str:
        """The client's address as the listener admitted it (behind trusted proxies, the
        forwarded one); the socket's peer when it was not admitted by the listener."""
        if isinstance(conn, ViewerConnection) and conn.client_ip is not None:
            return conn.client_ip
        peer = conn.remote_address
        return str(peer[0]) if peer else ""

    def _count_arrival(self, room: str, arrival: Arrival, *, resumed: bool) -> None:
        meter = self.node.meter
        if not resumed:  # a connection picking up where it left off is the same view
            meter.count(room, Metric.VIEWS)
        if arrival in {Arrival.NEW, Arrival.RETURNING}:
            meter.count(room, Metric.VIEWERS)
            meter.count(room, Metric.NEW_VIEWERS if arrival is Arrival.NEW
                        else Metric.RETURNING_VIEWERS)  # fmt: skip

    async def _acquire(self, room_id: str) -> RoomHub:
        try:
            return await self.node.acquire_hub(room_id)
        except (RedisError, OSError) as exc:
            raise UnavailableError("storage unavailable; retry") from exc

    async def _authenticate(self, hub: RoomHub, hello: Hello, conn_id: str) -> Author:
        assert hub.room is not None
        if hello.token is None:
            if not hub.room.settings.allow_anonymous:
                raise AuthError("this room needs a sign-in token", code="auth_required")
            return Author(f"anon-{hello.device or conn_id}", "guest", Role.ANONYMOUS)
        claims = await self.node.verify_token(hello.token, hub.room_id)
        await self.node.access.check(claims)  # revoked (3500) or banned (3501)
        return Author(claims.user, claims.name, claims.role, claims.expires_at,
                      claims.issued_at)  # fmt: skip

    # ---- frames ----------------------------------------------------------------------

    async def _on_frame(self, viewer: Viewer, hub: RoomHub, frame: str | bytes) -> None:
        now = time.monotonic()
        ref: str | None = None
        try:
            try:
                message = parse_frame(frame, viewer.codec, self.limits, self.schema)
            except InvalidMessage as invalid:  # it decoded: it takes a token like any frame
                ref = invalid.ref
                self._admit(viewer, now)
                raise
            ref = message.id  # type: ignore[attr-defined]  # every frame has `id`
            self._admit(viewer, now)
            METRICS.messages_received.inc(1, type(message).__name__.lower())
            await self._dispatch(viewer, hub, message)
        except LivecartError as error:
            self._error(viewer, error, ref, now)
        except (RedisError, OSError) as exc:
            log.warning("redis error serving %s: %s", viewer.conn_id, exc)
            self._error(viewer, UnavailableError("storage unavailable; retry"), ref, now)

    def _serve_at_once(self, viewer: Viewer, hub: RoomHub, frame: str | bytes) -> bool:
        """Serve a frame of `at_once` now (ViewerConnection.process_event); False leaves
        it to the read loop: a frame that does not decode (the loop says why), one that
        must wait for storage, and any frame once the connection is closing or leaving."""
        if viewer.closing or viewer.leaving:
            return False
        try:
            message = parse_frame(frame, viewer.codec, self.limits, self.schema)
        except LivecartError:
            return False
        serve = self.at_once.get(type(message))
        if serve is None:
            return False
        now = time.monotonic()
        viewer.begin()
        try:
            self._admit(viewer, now)
            METRICS.messages_received.inc(1, type(message).__name__.lower())
            serve(viewer, hub, message)
        except LivecartError as error:
            self._error(viewer, error, message.id, now)  # type: ignore[attr-defined]
        except Exception:  # as the read loop's failure would: logged, closed with 1011
            log.exception("serving a frame failed for %s", viewer.conn_id)
            viewer.close_soon(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            viewer.done()
        return True

    @staticmethod
    def _admit(viewer: Viewer, now: float) -> None:
        """Take a token of the frame rate limit, or refuse the frame as `rate_limited`."""
        if not viewer.guard.admit(now):
            raise RateLimitedError(
                "too many frames; slow down",
                code="rate_limited",
                details={"retry_after_ms": viewer.guard.retry_after_ms()},
            )

    def _error(self, viewer: Viewer, error: LivecartError, ref: str | None, now: float) -> None:
        METRICS.errors.inc(1, error.code)
        viewer.send(error_message(error, ref))
        # Refusals the client could not avoid (storage down, another bid landing first)
        # do not count as abuse.
        unavoidable = isinstance(error, UnavailableError) or error.code in self.race_lost
        if not unavoidable and viewer.guard.record_error(now):
            viewer.close_soon(CloseCode.PROTOCOL_ABUSE, "too many errors")

    async def _dispatch(self, viewer: Viewer, hub: RoomHub, message: ClientFrame) -> None:
        serve = self.at_once.get(type(message))
        if serve is not None:
            serve(viewer, hub, message)
        elif isinstance(message, Comment):
            if not viewer.author.role.can_comment:
                raise ForbiddenError("sign in to comment", code="forbidden")
            assert hub.room is not None
            entry = await self.node.comments.post(
                hub.room_id, viewer.author, message.text, hub.room.settings, hub.words
            )
            viewer.send(ack_message(message.id, entry=entry.to_wire()))
            await self.node.after_comment(hub.room_id, viewer.author, message.text)
        elif isinstance(message, Click):
            await self._click(viewer, hub, message)
        elif isinstance(message, Release | JoinWaitlist):
            await self._shop(viewer, hub.room_id, message)
        elif type(message) in self.feature_frames:
            await self._feature_frame(viewer, hub, message)
        else:
            raise ProtocolError(
                "already joined; hello is only the first frame", code="already_joined"
            )

    async def _feature_frame(self, viewer: Viewer, hub: RoomHub, message: Any) -> None:
        """A frame a feature answers: its handler's result in the ack (when the frame has an
        id, or always with `ack_without_id`)."""
        frame, service = self.feature_frames[type(message)]
        if frame.signed_in and not viewer.author.role.can_comment:
            raise ForbiddenError("sign in first", code="forbidden")
        result = await frame.handle(service, FrameCall(hub.room_id, viewer.author, message))
        if message.id is not None or frame.ack_without_id:
            viewer.send(ack_message(message.id, result=result))

    @staticmethod
    def _like(viewer: Viewer, hub: RoomHub, message: Like) -> None:
        hub.add_likes(message.count)
        if message.id is not None:
            viewer.send(ack_message(message.id))

    @staticmethod
    def _ping(viewer: Viewer, hub: RoomHub, message: Ping) -> None:
        viewer.send(pong_message(message.id, int(time.time() * 1000)))

    async def _click(self, viewer: Viewer, hub: RoomHub, message: Click) -> None:
        # Once per connection and product: opening a card again is not another click. Only
        # products of the room count, so the metrics hash and the per-connection set stay
        # bounded by the catalog, not by what viewers invent.
        if viewer.clicked is None:
            viewer.clicked = set()
        if message.product not in viewer.clicked:
            await hub.check_product(message.product)
            viewer.clicked.add(message.product)
            self.node.meter.count(hub.room_id, Metric.CLICKS, dim=message.product)
        if message.id is not None:
            viewer.send(ack_message(message.id))

    def _answered(
        self, viewer: Viewer, room: str, request: Grab | Claim, started: float,
        answer: GrabAnswer | Exception,
    ) -> None:  # fmt: skip
        """A grab's or a claim's answer from its batch: the ack, or an error frame."""
        is_grab = isinstance(request, Grab)
        if is_grab:
            elapsed = time.perf_counter() - started
            METRICS.grab_seconds.observe(elapsed)
            METRICS.room_grab_seconds.observe(elapsed, room)
        error: LivecartError | None = None
        if isinstance(answer, LivecartError):
            error = answer
        elif isinstance(answer, Exception):
            log.warning("%s failed for %s: %s", type(request).__name__, viewer.conn_id, answer)
            error = UnavailableError("storage unavailable; retry")
        elif answer.status == "sale_not_found" and isinstance(request, Grab):
            error = NotFoundError(f"no sale {request.sale!r} in this room", code="sale_not_found")
        elif answer.status == "drop_not_found" and isinstance(request, Claim):
            error = NotFoundError(f"no coupon drop {request.drop!r} in this room",
                                  code="drop_not_found")  # fmt: skip
        if error is not None:
            self._error(viewer, error, request.id, time.monotonic())
            return
        assert isinstance(answer, GrabAnswer)
        (METRICS.grabs if is_grab else METRICS.coupon_claims).inc(1, answer.status)
        if is_grab:
            METRICS.room_grabs.inc(1, room, answer.status)
        ack = ack_message(request.id, result=answer.body)
        if answer.replayed:
            ack["replayed"] = True
        viewer.send(ack)

    def _order(self, viewer: Viewer, hub: RoomHub, message: Grab | Claim) -> None:
        """A grab or a coupon claim, queued for its batch. Not awaited: the answer is
        written from the batch's completion, and this connection reads on (its grabs can
        join the same batch). Going away waits for the answer (begin/done)."""
        _may_buy(viewer)
        room, user = hub.room_id, viewer.author.user
        answered = partial(self._answered, viewer, room, message, time.perf_counter())
        on_answer = partial(_then_done, viewer, answered)
        viewer.begin()
        try:
            if isinstance(message, Grab):
                request = GrabRequest(user, message.id, message.quantity)
                self.node.stock.grab_nowait(room, message.sale, request, on_answer)
            else:
                self.node.coupons.claim_nowait(room, message.drop, user, message.id, on_answer)
        except BaseException:
            viewer.done()
            raise

    async def _shop(self, viewer: Viewer, room: str, message: Release | JoinWaitlist) -> None:
        _may_buy(viewer)
        stock, user = self.node.stock, viewer.author.user
        if isinstance(message, Release):
            await stock.release(room, message.reservation, user)
            viewer.send(ack_message(message.id, released=message.reservation))
        else:
            position = await stock.join_waitlist(room, message.sale, user)
            viewer.send(ack_message(message.id, sale=message.sale, position=position))


def _then_done(viewer: Viewer, answered: Callable[[Any], None], answer: Any) -> None:
    """A grab's or claim's answer written, then counted done (Viewer.begin/done)."""
    try:
        answered(answer)
    finally:
        viewer.done()


def _may_buy(viewer: Viewer) -> None:
    """Anonymous sessions watch but do not buy (grab, claim, release, waitlist)."""
    if not viewer.author.role.can_comment:
        raise ForbiddenError("sign in to buy", code="forbidden")
