"""`EngineClient`: one simulated viewer's connection to livecart, for locust (gevent).

The client-wrapper layer of the locust side, as in locust's own examples (client wrapper
here; the `User` and the load shape in `loadtests/locustfile.py`). Every call fires
locust's `request` event with a (request_type, name) pair from `scenarios.REQUESTS`:

- ("HTTP", "token"): a viewer token minted with the host's token; ("HTTP", "checkout"),
  ("HTTP", "payment"), ("HTTP", "pay"): the buying side (locust's `FastHttpSession`,
  geventhttpclient underneath). `pay` fails unless the engine's outcome is `paid`.
- ("WS", "connect"): the WebSocket handshake; ("WS", "join"): `hello` to `welcome`.
- ("WS", "comment" | "like" | "grab" | "claim"): from sending the frame to the `ack` or
  `error` carrying its request id. An `error` is a failure whose text is the error code;
  a grab or claim answered `sold_out`, `limit_reached`... is an answer, not a failure:
  its status is counted in `outcomes` ("grab:reserved", "claim:sold_out", ...).
- ("PUSH", "comment") per comment entry and ("PUSH", "announcement") per sale_announced,
  coupon_dropped or product_pinned entry of a tick: receipt time minus the entry's `ts`;
  ("PUSH", "stock") per tick with `stock` or `drops`: receipt time minus the tick's `t`.

The socket is websocket-client's blocking `WebSocket`, which cooperates under gevent's
monkey patching (locust patches at import): a background greenlet per client blocks in
`recv` and dispatches frames, answers are matched to requests by id through
`AsyncResult`s, and other greenlets send meanwhile (websocket-client's send lock is a
patched lock). tests/test_loadtests_locust.py checks that 20 clients in one process do
not block each other. The protocol (the JSON codec, hello, the resume offset and tick
`seq`, request ids and their answers, close codes) is `clients.core`'s; this module is its
blocking transport and locust's reporting.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped]
import orjson
from gevent.event import AsyncResult, Event  # type: ignore[import-untyped]
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.event import EventHook
from locust.exception import CatchResponseError
from websocket import ABNF, WebSocket, WebSocketException, create_connection

from clients.core import JSON, Requests, Session, close_code
from loadtests.target import Tls

ANNOUNCEMENTS = frozenset({"sale_announced", "coupon_dropped", "product_pinned"})

log = logging.getLogger("livecart.loadtest")

EntryCallback = Callable[[dict[str, Any], float], None]  # (entry, receipt time in ms)
FrameCallback = Callable[[dict[str, Any]], None]


GOING_AWAY = 1001  # the engine's close when it stops or restarts (docs/protocol.md)
UNSERVED = "unserved"  # a request a 1001 left unanswered: not served, so sent again


class CallFailed(Exception):
    """A call that failed; it has already been reported to locust as a failure."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _AsHttp:
    """FastHttpSession fires its request events with the HTTP method as request_type;
    report them as "HTTP" (the name is given per call)."""

    def __init__(self, event: EventHook) -> None:
        self._fire: Callable[..., None] = event.fire

    def fire(self, **kwargs: Any) -> None:
        self._fire(**{**kwargs, "request_type": "HTTP"})


def _now_ms() -> float:
    return time.time() * 1000


def _drop(ws: WebSocket) -> None:
    """Close the socket at once, without a closing handshake."""
    ws.shutdown()  # type: ignore[no-untyped-call]


class EngineClient:
    def __init__(
        self,
        environment: Environment,
        base_url: str,
        room: str,
        host_token: str,
        *,
        timeout_s: float = 10.0,
        outcomes: Counter[str] | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # --ca-file / --insecure (loadtests/target.py), from the environment by default.
        self.tls = Tls.from_env() if tls is None else tls
        scheme, _, rest = self.base_url.partition("://")
        self.ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/{room}"
        self.room = room
        self.host_token = host_token
        self.timeout_s = timeout_s
        self.request_event = environment.events.request
        self._fire_event: Callable[..., None] = self.request_event.fire
        self.http = FastHttpSession(
            self.base_url,
            request_event=_AsHttp(self.request_event),
            user=None,
            connection_timeout=timeout_s,
            network_timeout=timeout_s,
            max_retries=0,  # as FastHttpUser: a retried payment would be a second payment
            **self.tls.fast_http(),
        )
        self.user: str | None = None
        self.ws: WebSocket | None = None
        self.welcome: dict[str, Any] = {}
        self.welcomed_ms = 0.0  # when it arrived (local clock)
        # The token, the resume point (last welcome or tick), tick seq and gaps.
        self.session = Session()
        self.close_code: int | None = None
        self.disconnects = 0
        self.outcomes: Counter[str] = Counter() if outcomes is None else outcomes
        # Callbacks, run in the reader greenlet: keep them short (spawn to do more).
        self.on_entry: EntryCallback | None = None  # every entry of every tick
        self.on_sale_announced: EntryCallback | None = None  # sale, starts_at, server_time
        self.on_product_pinned: Callable[[str], None] | None = None  # product id
        self.on_coupon_dropped: EntryCallback | None = None  # drop, opens_at, server_time
        self.on_notice: FrameCallback | None = None
        self.on_closed: Callable[[int | None], None] | None = None
        self.requests: Requests[AsyncResult] = Requests()  # ids per user, not per socket
        self._reader: gevent.Greenlet | None = None
        self._joined = Event()  # set while joined: a request waits on it after a 1001

    @property
    def token(self) -> str | None:
        return self.session.token

    @property
    def offset(self) -> str | None:
        """Where a join resumes: the last welcome's or tick's offset."""
        return self.session.offset

    @property
    def seq(self) -> int:
        return self.session.seq

    @property
    def gaps(self) -> int:
        """Ticks whose seq was not the previous + 1 (and resumes not recovered)."""
        return self.session.gaps

    @property
    def connected(self) -> bool:
        return self.ws is not None and self._reader is not None and not self._reader.dead

    # ---- reporting ------------------------------------------------------------------------

    def _fire(
        self, kind: str, name: str, started: float, length: int, error: str | None = None
    ) -> None:
        self._fire_event(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=None if error is None else CatchResponseError(error),
            context={},
        )

    def _push(self, name: str, latency_ms: float, length: int = 0) -> None:
        self._fire_event(
            request_type="PUSH",
            name=name,
            response_time=max(0.0, latency_ms),  # same host: skew is rounding, not news
            response_length=length,
            exception=None,
            context={},
        )

    # ---- HTTP -----------------------------------------------------------------------------

    def _http(
        self,
        name: str,
        path: str,
        body: Any,
        token: str | None,
        check: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> dict[str, Any]:
        """POST `body`; the JSON answer. A non-2xx answer is a failure named by its error
        code; `check` may name a failure in a 2xx answer."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with self.http.post(
            path, name=name, json=body, headers=headers, catch_response=True
        ) as response:
            try:
                data = orjson.loads(response.content) if response.content else {}
            except orjson.JSONDecodeError:
                data = {}
            if not isinstance(data, dict):
                data = {}
            error: str | None = None
            if response.status_code == 0 or response.status_code >= 400:
                code = (data.get("error") or {}).get("code") or getattr(response, "error", "")
                error = f"{response.status_code} {code}"
            elif check is not None:
                error = check(data)
            if error is not None:
                response.failure(error)
                raise CallFailed(error)
            response.success()
        return data

    def mint_token(self, user: str) -> str:
        """A viewer token for `user`, minted with the host's token."""
        path = f"/api/rooms/{self.room}/tokens"
        data = self._http("token", path, {"user": user, "role": "viewer"}, self.host_token)
        self.user = user
        self.session.token = token = str(data["token"])
        return token

    def checkout(
        self,
        reservations: list[str],
        *,
        address: dict[str, str],
        contact: dict[str, str],
        coupons: list[str] | None = None,
    ) -> dict[str, Any]:
        """An order in pending_payment (a random idempotency key: one attempt each)."""
        body = {
            "reservations": reservations,
            "coupons": coupons or [],
            "shipping_address": address,
            "contact": contact,
            "idempotency_key": secrets.token_hex(12),
        }
        order = self._http("checkout", f"/api/rooms/{self.room}/orders", body, self.token)
        self.outcomes["checkout:ordered"] += 1
        return order

    def start_payment(self, order: str) -> dict[str, Any]:
        """A payment at the provider: `payment`, `pay_url`, `amount`, `currency`."""
        path = f"/api/rooms/{self.room}/orders/{order}/payment"
        return self._http("payment", path, None, self.token)

    def pay(self, payment: str) -> dict[str, Any]:
        """Complete the payment at the simulated provider; a failure unless the engine's
        answer (relayed by the provider) is `paid`."""

        def paid(data: dict[str, Any]) -> str | None:
            outcome = (data.get("engine") or {}).get("outcome")
            self.outcomes[f"pay:{outcome}"] += 1
            return None if outcome == "paid" else f"outcome {outcome}"

        return self._http("pay", f"/psp/pay/{payment}", {"outcome": "succeeded"}, None, paid)

    # ---- WebSocket ------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the socket (("WS", "connect"))."""
        started = time.perf_counter()
        try:
            ws = create_connection(
                self.ws_url,
                timeout=self.timeout_s,
                subprotocols=[JSON.subprotocol],
                enable_multithread=True,
                sslopt=self.tls.sslopt(),
            )
        except (WebSocketException, OSError) as exc:
            self._fire("WS", "connect", started, 0, f"connect_failed: {exc}")
            raise CallFailed("connect_failed") from exc
        if ws.getsubprotocol() != JSON.subprotocol:
            ws.close()
            self._fire("WS", "connect", started, 0, "subprotocol_refused")
            raise CallFailed("subprotocol_refused")
        self.ws = ws
        self._fire("WS", "connect", started, 0)

    def join(self, since: str | None = None) -> dict[str, Any]:
        """Send `hello` (resuming after `since`, if given) and wait for `welcome` (("WS",
        "join")); then start reading."""
        ws = self.ws
        assert ws is not None, "connect() first"
        self.session.offset = since
        started = time.perf_counter()
        first: dict[str, Any]
        try:
            ws.send(JSON.encode(self.session.hello()))
            frame = ws.recv()  # the socket still has the connect timeout
            self.welcomed_ms = _now_ms()
            first = JSON.decode(frame) if frame else {"code": "closed"}
        except (WebSocketException, OSError, orjson.JSONDecodeError) as exc:
            first, frame = {"code": f"no_welcome: {exc}"}, ""
        if first.get("type") != "welcome":
            code = str(first.get("code", "no_welcome"))
            self._fire("WS", "join", started, len(frame), code)
            self._shutdown()
            raise CallFailed(code)
        self._fire("WS", "join", started, len(frame))
        ws.settimeout(None)  # a quiet room sends nothing for a while
        self.welcome = first
        self.session.on_welcome(first)
        self.close_code = None
        self._joined.set()
        self._reader = gevent.spawn(self._read, ws)
        return first

    def start(self, user: str) -> dict[str, Any]:
        """Mint a token for `user`, connect and join; the welcome."""
        self.mint_token(user)
        self.connect()
        return self.join()

    def close(self) -> None:
        """Close the socket (stops the reader first: one greenlet reads a socket)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True)
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except (WebSocketException, OSError):
                _drop(ws)
        self._fail_pending("closed")

    def _shutdown(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            _drop(ws)

    def _read(self, ws: WebSocket) -> None:
        code: int | None = None
        while True:
            try:
                opcode, data = ws.recv_data()
            except (WebSocketException, OSError):
                break  # dropped without a close frame
            if opcode == ABNF.OPCODE_CLOSE:
                code = close_code(data)
                break
            received_ms = _now_ms()
            try:
                self._on_frame(JSON.decode(data), len(data), received_ms)
            except Exception:
                log.exception("livecart frame handling failed")
        _drop(ws)
        if self.ws is ws:
            self.ws = None
        self.close_code = code
        self.disconnects += 1
        self._joined.clear()
        # 1001: the engine went away having answered every frame it served; what is
        # unanswered was not served, and request() sends it again once rejoined.
        self._fail_pending(UNSERVED if code == GOING_AWAY else "disconnected")
        if self.on_closed is not None:
            self.on_closed(code)

    def _on_frame(self, message: dict[str, Any], size: int, received_ms: float) -> None:
        waiter = self.requests.match(message)
        if waiter is not None:
            waiter.set((message, size))
            return
        kind = message.get("type")
        if kind == "error":  # no ref (e.g. the ban push), or its request gave up
            log.warning("livecart error frame: %s", message.get("code"))
        elif kind == "tick":
            self._on_tick(message, received_ms)
        elif kind == "notice" and self.on_notice is not None:
            self.on_notice(message)

    def _on_tick(self, tick: dict[str, Any], received_ms: float) -> None:
        for entry in self.session.on_tick(tick):
            entry_kind = entry.get("kind")
            if entry_kind == "comment":
                self._push("comment", received_ms - entry["ts"])
            elif entry_kind in ANNOUNCEMENTS:
                self._push("announcement", received_ms - entry["ts"])
            if self.on_entry is not None:
                self.on_entry(entry, received_ms)
            if entry_kind == "sale_announced" and self.on_sale_announced is not None:
                self.on_sale_announced(entry, received_ms)
            elif entry_kind == "coupon_dropped" and self.on_coupon_dropped is not None:
                self.on_coupon_dropped(entry, received_ms)
            elif entry_kind == "product_pinned" and self.on_product_pinned is not None:
                self.on_product_pinned(str(entry["ref"]))
        if "stock" in tick or "drops" in tick:
            self._push("stock", received_ms - tick["t"])

    def _fail_pending(self, code: str) -> None:
        for waiter in self.requests.drain():
            waiter.set_exception(CallFailed(code))

    def request(self, name: str, message: dict[str, Any]) -> dict[str, Any]:
        """Send `message` with a fresh request id and wait for its answer (("WS", name)).
        Returns the ack; raises CallFailed on an error frame, a timeout or a drop."""
        started = time.perf_counter()
        request_id: str | None = None
        while True:
            ws = self.ws
            if ws is None or not self.connected:
                # After a 1001 the user rejoins (EngineUser.stay_connected): wait for it.
                wait_s = self.timeout_s - (time.perf_counter() - started)
                if self.close_code == GOING_AWAY and wait_s > 0 and self._joined.wait(wait_s):
                    continue
                self._fire("WS", name, started, 0, "disconnected")
                raise CallFailed("disconnected")
            waiter = AsyncResult()
            request_id, framed = self.requests.open(message, waiter, request_id)
            try:
                ws.send(JSON.encode(framed))
                reply, size = waiter.get(timeout=self.timeout_s)
            except gevent.Timeout:
                self.requests.forget(request_id)
                self._fire("WS", name, started, 0, "timeout")
                raise CallFailed("timeout") from None
            except CallFailed as exc:
                if exc.code == UNSERVED:
                    continue  # sent again, with its id, once rejoined
                self._fire("WS", name, started, 0, exc.code)
                raise
            except (WebSocketException, OSError) as exc:
                self.requests.forget(request_id)
                if self.close_code == GOING_AWAY or not self.connected:
                    self._joined.wait(0.5)  # the reader may be seeing the 1001
                    if self.close_code == GOING_AWAY:
                        continue
                self._fire("WS", name, started, 0, "disconnected")
                raise CallFailed("disconnected") from exc
            break
        if reply["type"] == "error":
            code = str(reply.get("code"))
            self._fire("WS", name, started, size, code)
            raise CallFailed(code)
        self._fire("WS", name, started, size)
        answer: dict[str, Any] = reply
        return answer

    def comment(self, text: str) -> dict[str, Any]:
        """Post a comment; the stored entry."""
        entry: dict[str, Any] = self.request("comment", {"type": "comment", "text": text})["entry"]
        return entry

    def like(self, count: int = 1) -> None:
        self.request("like", {"type": "like", "count": count})

    def click(self, product: str) -> None:
        """Open a product's card (counted once per connection and product by the engine)."""
        self.request("click", {"type": "click", "product": product})

    def grab(self, sale: str, quantity: int = 1) -> dict[str, Any]:
        """One tap (a fresh request id): the answer, `status` reserved, sold_out,
        limit_reached, not_started or ended (all answers, none a failure)."""
        ack = self.request("grab", {"type": "grab", "sale": sale, "quantity": quantity})
        result: dict[str, Any] = ack["result"]
        self.outcomes[f"grab:{result['status']}"] += 1
        return result

    def claim(self, drop: str) -> dict[str, Any]:
        """One claim (a fresh request id): `status` claimed, sold_out, limit_reached,
        not_started or ended."""
        result: dict[str, Any] = self.request("claim", {"type": "claim", "drop": drop})["result"]
        self.outcomes[f"claim:{result['status']}"] += 1
        return result
