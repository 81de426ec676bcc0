"""`ViewerClient`: one viewer's realtime connection, with resume and jittered reconnect.

    client = ViewerClient("ws://127.0.0.1:8000/ws", "demo", token)
    welcome = await client.connect()
    entry = await client.comment("hello!")      # raises LivecartClientError on refusal
    await client.enter_giveaway("g1")            # over HTTP with the same token
    answer = await client.bid("a1", 2500, max=4000)
    won = await client.wait_for_notice("auction_won")   # private notices, also in `notices`
    frame = await client.next_event()            # ticks, notices, reconnects...
    await client.close()

The client keeps the last offset it has seen; after a retryable disconnect it reconnects
with backoff and resumes from that offset, so the entries it hands out have no gap and
no duplicate. It counts what would betray a server bug (`gaps`, `duplicates`) instead of
hiding it, so tests can assert both are zero. The protocol itself (codecs, hello, resume
state, request ids, close codes) is `clients.core`; this class is its asyncio transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from clients.api import ApiClient
from clients.backoff import Backoff
from clients.core import (
    CODECS,
    Requests,
    Session,
    retry_after_s,
    shed_delay_s,
    should_reconnect,
)
from clients.errors import LivecartClientError

GOING_AWAY = 1001  # the engine's close when it stops or restarts: unanswered = not served

__all__ = ["ViewerClient", "should_reconnect"]  # should_reconnect: the SDK's rule, documented


def _product_card(entry: dict[str, Any]) -> dict[str, Any]:
    """The product of a product_pinned/updated entry (its id travels in `ref`)."""
    card = {key: value for key, value in entry.items() if key not in {"kind", "ref", "ts"}}
    card["id"] = entry["ref"]
    return card


def _retry_after(exc: BaseException) -> dict[str, Any]:
    """`{"retry_after_ms"}` when the engine shed the handshake (503 with Retry-After)."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code == 503:
        told = retry_after_s(exc.response.headers.get("Retry-After"))
        if told is not None:
            return {"retry_after_ms": int(told) * 1000}
    return {}


class ViewerClient:
    def __init__(
        self,
        ws_url: str,
        room: str,
        token: str | None = None,
        *,
        codec: str = "json",
        reconnect: bool = True,
        backoff: Backoff | None = None,
        request_timeout_s: float = 10.0,
        ref: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = f"{ws_url.rstrip('/')}/{room}"
        self.room = room
        self.codec = codec
        self._codec = CODECS[codec]
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.request_timeout_s = request_timeout_s
        # A wss:// engine's certificate check (None: the system's CAs); unused for ws://.
        self.ssl_context = ssl_context
        # The resume offset, tick seq, gaps and duplicates; `ref` is a share link's ref,
        # sent in every hello (the engine keeps first touch).
        self.session = Session(token, ref=ref)
        self.ws: ClientConnection | None = None
        self.welcome: dict[str, Any] = {}
        self.stats: dict[str, int] = {}
        self.product: dict[str, Any] | None = None
        self.sales: dict[str, dict[str, Any]] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.sampled_out = 0
        self.reconnects = 0
        self.close_code: int | None = None
        self.notices: list[dict[str, Any]] = []  # private notices, oldest first
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.requests: Requests[asyncio.Future[dict[str, Any]]] = Requests()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._joined = asyncio.Event()  # set while joined: a request waits on it after a 1001

    # ---- session state (clients/core.py) ------------------------------------------------

    @property
    def token(self) -> str | None:
        return self.session.token

    @token.setter
    def token(self, token: str | None) -> None:
        self.session.token = token

    @property
    def ref(self) -> str | None:
        return self.session.ref

    @ref.setter
    def ref(self, ref: str | None) -> None:
        self.session.ref = ref

    @property
    def offset(self) -> str | None:
        """The last offset seen (welcome or tick): where a reconnect resumes."""
        return self.session.offset

    @property
    def seq(self) -> int:
        return self.session.seq

    @property
    def gaps(self) -> int:
        return self.session.gaps

    @property
    def duplicates(self) -> int:
        return self.session.duplicates

    async def send_raw(self, frame: bytes | str) -> None:
        """Send an arbitrary frame (for tests of the engine's input validation)."""
        assert self.ws is not None
        await self.ws.send(frame)

    # ---- connection ---------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Connect, say hello and return the welcome. Raises LivecartClientError if refused."""
        self.session.restart()  # a first join; reconnects resume
        await self._open()
        self._task = asyncio.create_task(self._run())
        return self.welcome

    async def _open(self) -> None:
        """One connection: the hello resumes from the session's offset once there is one."""
        # A wss:// engine's certificate check (ssl=None is refused there, ssl= on ws://).
        tls: dict[str, Any] = {}
        if self.ssl_context is not None and self.url.startswith("wss://"):
            tls["ssl"] = self.ssl_context
        try:
            ws = await connect(
                self.url,
                subprotocols=[self._codec.subprotocol],  # type: ignore[list-item]
                compression=None,
                open_timeout=10,
                max_size=4 * 1024 * 1024,
                **tls,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise LivecartClientError("connect_failed", str(exc), retryable=True,
                                      details=_retry_after(exc)) from exc  # fmt: skip
        decode = self._codec.decode
        try:
            await ws.send(self._codec.encode(self.session.hello()))
            first: dict[str, Any] = decode(
                await asyncio.wait_for(ws.recv(), self.request_timeout_s)
            )
        except (ConnectionClosed, TimeoutError) as exc:
            await ws.close()
            raise LivecartClientError(
                "connect_failed", f"no welcome: {exc}", retryable=True
            ) from exc
        if first.get("type") != "welcome":
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), 2)
            self.close_code = ws.close_code
            raise LivecartClientError.from_wire(first)
        self.ws = ws
        self._on_welcome(first)
        self._joined.set()

    def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self.stats = welcome.get("stats", {})
        self.product = welcome.get("product")
        self.sales = {sale["id"]: sale for sale in welcome.get("sales", [])}
        start_over, history = self.session.on_welcome(welcome)
        if start_over:
            # The server could not replay everything since our offset: start over from
            # the recent history it sent instead.
            self.entries.clear()
        for entry in history:
            self._take_entry(entry)

    def _take_entry(self, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        if kind == "comment":
            self.entries[entry["id"]] = entry
        elif kind == "comment_deleted":
            self.entries.pop(entry.get("ref", ""), None)
        elif (
            kind == "product_updated" and (self.product or {}).get("id") == entry["ref"]
        ) or kind == "product_pinned":
            self.product = _product_card(entry)
        elif kind == "product_unpinned":
            self.product = None
        elif kind == "sale_announced":
            self.sales[entry["ref"]] = {**entry, "id": entry["ref"], "state": "scheduled"}

    async def _run(self) -> None:
        while True:
            ws = self.ws
            assert ws is not None
            try:
                decode = self._codec.decode
                async for frame in ws:
                    self._on_frame(decode(frame))
            except ConnectionClosed:
                pass
            self.close_code = ws.close_code
            self._joined.clear()
            self._fail_pending(
                LivecartClientError("disconnected", "connection lost", retryable=True)
            )
            if self._closing or not self.reconnect or not should_reconnect(self.close_code):
                self.events.put_nowait({"type": "closed", "code": self.close_code})
                return
            if not await self._reconnect():
                return

    async def _reconnect(self) -> bool:
        told_s = 0.0  # a shedding server's Retry-After, with jitter on top
        while True:
            try:
                delay = self.backoff.next_delay()
            except StopIteration:
                self.events.put_nowait({"type": "closed", "code": self.close_code})
                return False
            await asyncio.sleep(max(delay, told_s))
            told_s = 0.0
            if self.is_closing():
                return False
            try:
                await self._open()
            except LivecartClientError as exc:
                if "retry_after_ms" in exc.details:
                    told_s = shed_delay_s(exc.details["retry_after_ms"] / 1000, self.backoff.rng)
                if not exc.retryable and exc.code != "connect_failed":
                    self.events.put_nowait(
                        {"type": "closed", "code": self.close_code, "error": exc.code}
                    )
                    return False
                continue
            if self.is_closing():  # close() was called while we were reconnecting
                assert self.ws is not None
                await self.ws.close()
                return False
            self.backoff.reset()
            self.reconnects += 1
            self.events.put_nowait(
                {"type": "reconnected", "recovered": self.welcome.get("recovered")}
            )
            return True

    def _on_frame(self, message: dict[str, Any]) -> None:
        future = self.requests.match(message)
        if future is not None:
            if not future.done():
                future.set_result(message)
            return
        kind = message.get("type")
        if kind == "tick":
            for entry in self.session.on_tick(message):
                self._take_entry(entry)
            self.sampled_out += message.get("sampled_out", 0)
            if "stats" in message:
                self.stats = message["stats"]
            for sale_id, stock in message.get("stock", {}).items():
                self.sales.setdefault(sale_id, {"id": sale_id}).update(stock)
        elif kind == "notice":
            self.notices.append(message)
        self.events.put_nowait(message)

    def _fail_pending(self, error: LivecartClientError) -> None:
        for future in self.requests.drain():
            if not future.done():
                future.set_exception(error)

    # ---- requests -----------------------------------------------------------------------

    async def request(
        self, message: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Send a message with an id (fresh unless given) and wait for its ack (or raise
        its error). A request a `1001` left unanswered was not served (docs/protocol.md §
        Close codes): with `reconnect`, it is sent again, with its id, once resumed (within
        the request timeout)."""
        if self.ws is None:
            raise LivecartClientError("not_connected", "call connect() first")
        deadline = time.monotonic() + self.request_timeout_s
        while True:
            ws = self.ws
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            request_id, framed = self.requests.open(message, future, request_id)
            try:
                await ws.send(self._codec.encode(framed))
                reply = await asyncio.wait_for(future, deadline - time.monotonic())
            except (ConnectionClosed, LivecartClientError) as exc:
                if isinstance(exc, LivecartClientError) and exc.code != "disconnected":
                    raise
                if await self._resumed_after_going_away(ws, deadline):
                    continue
                raise LivecartClientError("disconnected", str(exc), retryable=True) from exc
            finally:
                self.requests.forget(request_id)
            break
        if reply["type"] == "error":
            raise LivecartClientError.from_wire(reply)
        return reply

    async def _resumed_after_going_away(self, ws: ClientConnection, deadline: float) -> bool:
        """Whether `ws` was closed with 1001 and the client has resumed since (waiting for
        it until `deadline`)."""
        with contextlib.suppress(TimeoutError):  # the close code is known once closed
            await asyncio.wait_for(ws.wait_closed(), max(0.0, deadline - time.monotonic()))
        if ws.close_code != GOING_AWAY or not self.reconnect or self._closing:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._joined.wait(), max(0.0, deadline - time.monotonic()))
        return self._joined.is_set() and self.ws is not ws

    async def comment(self, text: str) -> dict[str, Any]:
        """Post a comment; returns the stored entry (id, ts, text...)."""
        ack = await self.request({"type": "comment", "text": text})
        entry: dict[str, Any] = ack["entry"]
        return entry

    async def like(self, count: int = 1, *, confirm: bool = False) -> None:
        if confirm:
            await self.request({"type": "like", "count": count})
        elif self.ws is not None:
            await self.ws.send(self._codec.encode({"type": "like", "count": count}))

    async def click(self, product: str) -> None:
        """Tell the show's metrics the viewer opened `product`'s card (acknowledged; a
        second click on the same product from this connection is not counted again)."""
        await self.request({"type": "click", "product": product})

    async def grab(
        self, sale: str, quantity: int = 1, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Try to reserve units; returns the answer (`status`: reserved, sold_out,
        limit_reached, not_started or ended). Retrying with the same `request_id` returns
        the original answer (`replayed` is then true)."""
        message: dict[str, Any] = {"type": "grab", "sale": sale, "quantity": quantity}
        ack = await self.request(message, request_id=request_id)
        result: dict[str, Any] = {**ack["result"], "replayed": ack.get("replayed", False)}
        return result

    async def claim(self, drop: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Claim one coupon of a drop; returns the answer (`status`: claimed, sold_out,
        limit_reached, not_started, ended, or tier_not_eligible for a drop limited to some
        customer tiers of the shop). Same `request_id`, same answer."""
        ack = await self.request({"type": "claim", "drop": drop}, request_id=request_id)
        result: dict[str, Any] = {**ack["result"], "replayed": ack.get("replayed", False)}
        return result

    async def release(self, reservation: str) -> None:
        await self.request({"type": "release", "reservation": reservation})

    async def join_waitlist(self, sale: str) -> int:
        """Queue for units that come back; returns the position (1 is next)."""
        ack = await self.request({"type": "waitlist", "sale": sale})
        position: int = ack["position"]
        return position

    async def vote(self, poll: str, option: int) -> dict[str, Any]:
        """Vote for option `option` (0-based) of an open poll: `{poll, option, changed}`;
        raises LivecartClientError `poll_not_found`, `poll_closed` or `already_voted`
        (docs/polls.md)."""
        ack = await self.request({"type": "vote", "poll": poll, "option": option})
        result: dict[str, Any] = ack["result"]
        return result

    async def bid(
        self, auction: str, amount: int, max: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Bid `amount` (minor units) on an auction, optionally with a proxy `max` the engine
        bids up to for you. Returns `{status: "leading" | "outbid", price, leader, min_bid,
        ends_at}`; raises LivecartClientError `bid_too_low` (details.min_bid),
        `auction_closed` or `auction_not_found`."""
        message: dict[str, Any] = {"type": "bid", "auction": auction, "amount": amount}
        if max is not None:
            message["max"] = max
        ack = await self.request(message, request_id=request_id)
        result: dict[str, Any] = ack["result"]
        return result

    async def enter_giveaway(self, giveaway: str, keyword: str | None = None) -> dict[str, Any]:
        """Enter a giveaway (over HTTP: `POST .../giveaways/{g}/enter`, with this client's
        token); idempotent. Returns `{giveaway, entered, new, entrants}`. A keyword
        giveaway can also be entered by commenting its keyword."""
        if not self.token:
            raise LivecartClientError("auth_required", "sign in to enter a giveaway")
        base = self.url.rsplit("/ws/", 1)[0].replace("ws", "http", 1)
        body = {} if keyword is None else {"keyword": keyword}
        async with ApiClient(base, self.room, self.token) as http:
            path = f"/api/rooms/{self.room}/giveaways/{giveaway}/enter"
            result: dict[str, Any] = await http.call("POST", path, body)
        return result

    async def wait_for_notice(
        self,
        kind: str,
        where: Callable[[dict[str, Any]], bool] | None = None,
        timeout_s: float = 10.0,
    ) -> dict[str, Any]:
        """The first private notice of `kind` (and matching `where`), already received or
        still to come; notices stay in `notices`."""
        async with asyncio.timeout(timeout_s):
            while True:
                for notice in self.notices:
                    if notice.get("kind") == kind and (where is None or where(notice)):
                        return notice
                await asyncio.sleep(0.02)

    async def ping(self) -> float:
        """Round trip to the engine in milliseconds."""
        started = time.perf_counter()
        await self.request({"type": "ping"})
        return (time.perf_counter() - started) * 1000

    async def next_event(self, timeout_s: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout_s)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """The next event matching `predicate` (earlier ones are consumed)."""
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.events.get()
                if predicate(event):
                    return event

    def is_closing(self) -> bool:
        """Whether close() was called (a method: the flag changes across awaits)."""
        return self._closing

    async def close(self) -> None:
        self._closing = True
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
