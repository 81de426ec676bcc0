"""One TCP port for everything: uvicorn reads every HTTP request of every connection and
serves it with the Starlette app, except a WebSocket upgrade on `/ws/...`, which goes to
`websockets` on whichever request of a kept-alive connection it comes. A reverse proxy
pools its connections to the engine (nginx's `keepalive`): a viewer's handshake often
follows health checks and API calls on the same connection (docs/deploy.md § Reverse
proxy).

uvicorn hands an upgrade over by instantiating its `ws_protocol_class` (here `_Upgrade`)
and feeding it the request head it parsed. `_Upgrade` gives the transport to a
`websockets` connection for `GET /ws/...`, and serves any other upgrade as plain HTTP
(docs/protocol.md § Connecting). After the hand-off nothing sits between the socket and
the viewer's protocol, so the viewer path keeps the speed of a plain `websockets` server
(ARCHITECTURE.md) while HTTP keeps Starlette.

uvicorn limits neither the size of a request head nor how long it may take to arrive, so a
connection's first head is read by `_FirstHead` first: at most MAX_HEAD_BYTES (431
otherwise) within HEAD_TIMEOUT_S (closed otherwise). Later requests on a kept-alive
connection are uvicorn's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.server import ServerState
from websockets.asyncio.server import Server as WebSocketServer
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from engine.core.metrics import METRICS
from engine.core.settings import Settings
from engine.realtime.codec import SUBPROTOCOLS
from engine.realtime.gateway import WS_PATH_PREFIX
from engine.realtime.protocol import CloseCode
from engine.realtime.viewer_connection import ViewerConnection
from engine.server.admission import Admission, HandshakeRate, TrustedProxies

log = logging.getLogger("livecart.listener")

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
# When stopping: how long a connection accepted just before may take to send its first head.
FIRST_HEAD_GRACE_S = 1.0
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
# Retry-After of a handshake refused because its address holds its cap of connections.
CONNECTION_CAP_RETRY_AFTER_S = 10
# An idle kept-alive HTTP connection is closed after this long (uvicorn's own default,
# spelled out: a reverse proxy's pool must let go of connections sooner, docs/deploy.md).
KEEP_ALIVE_S = 5
# Request headers left out when an upgrade outside /ws/ is served as plain HTTP: uvicorn
# has already read its body (if any), so what is replayed is the head alone.
_NOT_REPLAYED = frozenset({b"upgrade", b"content-length", b"transfer-encoding"})


def select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The client's first supported codec; no offer at all means JSON."""
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    if offered:
        raise NegotiationError(f"supported subprotocols: {', '.join(SUBPROTOCOLS)}")
    return None


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEADDR and SO_REUSEPORT, not yet listening.

    Several processes that each bind such a socket share the port once they listen; the
    kernel spreads new connections among them (`livecart serve --workers N`,
    engine/server/workers.py).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def is_viewer_handshake(head: bytes) -> bool:
    """Whether an upgrade's request head (as uvicorn re-serialises it) is `GET /ws/...`."""
    method, _, rest = head.partition(b" ")
    return method == b"GET" and rest.startswith(WS_PATH_PREFIX.encode())


def as_plain_request(head: bytes) -> bytes:
    """An upgrade's request head without the upgrade (and body) headers."""
    request_line, *lines = head.split(b"\r\n")
    kept = [line for line in lines if line.partition(b":")[0].strip().lower() not in _NOT_REPLAYED]
    return b"\r\n".join([request_line, *kept])


def _hand_over(transport: asyncio.Transport, protocol: asyncio.Protocol, data: bytes) -> None:
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    protocol.data_received(data)


class _FirstHead(asyncio.Protocol):
    """Reads a connection's first request head within the limits, then hands the
    transport (and the bytes read) to uvicorn."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.listener.reading_first_head.add(self)
        self.timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S, transport.close)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES or (end < 0 and len(self.buffer) > MAX_HEAD_BYTES):
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
            self.transport.close()
            return
        if end < 0:
            return
        self._done()
        _hand_over(self.transport, self.listener.http_protocol(), bytes(self.buffer))

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _done(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.listener.reading_first_head.discard(self)


class _Upgrade(asyncio.Protocol):
    """uvicorn's `ws_protocol_class`: given an upgrade's request head (in one
    `data_received`), hands the transport to the protocol the request is for."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        assert self.transport is not None
        if is_viewer_handshake(data):
            self.inner = self.listener.ws_protocol()
        else:
            self.inner, data = self.listener.http_protocol(), as_plain_request(data)
        _hand_over(self.transport, self.inner, data)
        # uvicorn 0.30 points the transport at this protocol only after this call returns:
        # point it at the inner one again before anything else is read (and forward what
        # reaches this one meanwhile).
        asyncio.get_running_loop().call_soon(self._repoint)

    def _repoint(self) -> None:
        if self.transport is not None and self.transport.get_protocol() is self:
            assert self.inner is not None
            self.transport.set_protocol(self.inner)

    def eof_received(self) -> bool | None:
        return None if self.inner is None else self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


Handler = Callable[[ServerConnection], Awaitable[None]]


class Listener:
    """The engine's socket: serves `app` over HTTP and `ws_handler` over WebSocket."""

    def __init__(self, settings: Settings, app: ASGIApp, ws_handler: Handler) -> None:
        self.settings = settings
        self.ws_handler = ws_handler
        self.app = app
        self.http_config = uvicorn.Config(
            self._http_app, lifespan="off", interface="asgi3", http="httptools",
            ws=cast(Any, self._upgrade),
            log_config=None, access_log=False, server_header=False, timeout_keep_alive=KEEP_ALIVE_S,
        )  # fmt: skip
        self.http_config.load()
        self.http_state = ServerState()
        self.ws_server = WebSocketServer(self._unused_create_server, self._ws_connection)
        self.server: asyncio.Server | None = None
        self.admission = Admission(
            settings.allowed_origins,
            HandshakeRate(settings.handshakes_per_ip_per_s, settings.handshakes_per_s),
            TrustedProxies(settings.trusted_proxies),
            public_url=settings.public_url,
        )
        # Open viewer connections by client address (settings.connections_per_ip).
        self.open_by_ip: Counter[str] = Counter()
        # Connections that have not finished sending their first request head.
        self.reading_first_head: set[_FirstHead] = set()
        # Set by stop(): every HTTP answer closes its connection, viewers go away.
        self.going_away = False

    async def _http_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, whose answers say `Connection: close` once the listener stops, so a
        kept-alive connection ends after the request it carries (rather than being closed
        under a client about to send one)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.going_away:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)

    def _upgrade(self, **_: Any) -> _Upgrade:
        """uvicorn's `ws_protocol_class` (called with its config and state, unused here)."""
        return _Upgrade(self)

    @staticmethod
    async def _unused_create_server() -> asyncio.Server:
        raise RuntimeError("the listener owns the socket")

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self, sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is None:
            self.server = await loop.create_server(
                lambda: _FirstHead(self),
                self.settings.host,
                self.settings.port,
                reuse_address=True,
                backlog=4096,
            )
        else:
            self.server = await loop.create_server(lambda: _FirstHead(self), sock=sock,
                                                   backlog=4096)  # fmt: skip
        # websockets' Server consults its asyncio server to refuse handshakes while closing.
        self.ws_server.server = self.server

    def http_protocol(self) -> asyncio.Protocol:
        protocol_class: Any = self.http_config.http_protocol_class
        protocol: asyncio.Protocol = protocol_class(
            config=self.http_config, server_state=self.http_state, app_state={}
        )
        return protocol

    def ws_protocol(self) -> ViewerConnection:
        limits = self.settings.limits
        protocol = ServerProtocol(
            subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
            select_subprotocol=select_subprotocol,
            extensions=None,  # no permessage-deflate: it costs memory and CPU per socket
            max_size=limits.max_frame_bytes,
        )
        return ViewerConnection(
            protocol,
            self.ws_server,
            ping_interval=limits.ping_interval_s,
            ping_timeout=limits.ping_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            max_queue=16,
            write_limit=(limits.write_buffer_bytes, limits.write_buffer_bytes // 4),
        )

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake from a foreign page or beyond the connection rate
        (engine/server/admission.py) before anything else is spent on it."""
        peer = connection.remote_address
        ip, host = self.admission.proxies.client(str(peer[0]) if peer else "", request.headers)
        refusal = self.admission.check_client(ip, host, request.headers, time.monotonic())
        if refusal is None:
            cap = self.settings.connections_per_ip
            if cap and self.open_by_ip[ip] >= cap:
                METRICS.handshakes_refused.inc(1, "connections")
                response = connection.respond(503, "too many connections from this address\n")
                response.headers["Retry-After"] = str(CONNECTION_CAP_RETRY_AFTER_S)
                return response
            # Counted from here (a handshake in progress holds its place) until it ends.
            self.open_by_ip[ip] += 1
            assert isinstance(connection, ViewerConnection)
            connection.client_ip = ip
            return None
        METRICS.handshakes_refused.inc(1, "origin" if refusal.status == 403 else "rate")
        response = connection.respond(refusal.status, refusal.reason + "\n")
        if refusal.retry_after_s is not None:
            response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response

    def _closed(self, connection: ServerConnection) -> None:
        ip = connection.client_ip if isinstance(connection, ViewerConnection) else None
        if ip is None:
            return  # never admitted
        self.open_by_ip[ip] -= 1
        if self.open_by_ip[ip] <= 0:
            del self.open_by_ip[ip]

    async def _ws_connection(self, connection: ServerConnection) -> None:
        """Run one WebSocket connection (what `websockets.serve` does for its own sockets)."""
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await connection.handshake(self._admit, None, None)
            if connection.protocol.state is not State.OPEN:
                connection.transport.abort()
                return
            self.ws_server.all_connections.add(connection)
            if self.going_away and isinstance(connection, ViewerConnection):
                connection.go_away()  # handshaken while stopping: goes away once joined
            connection.start_keepalive()
            try:
                async with connection:
                    await self.ws_handler(connection)
            except Exception:
                log.exception("connection handler failed")
            finally:
                self.ws_server.all_connections.discard(connection)
        except Exception:
            connection.transport.abort()
        finally:
            self._closed(connection)
            self.ws_server.handler_tasks.discard(asyncio.current_task())

    async def stop(self, timeout_s: float = 10.0, *, linger_s: float = 0.0) -> None:
        """Stop accepting, then let every accepted connection finish: a connection still
        sending its first request head gets FIRST_HEAD_GRACE_S to send it (and is served);
        each viewer goes away with 1001 (reconnect and resume) once the frames it sent are
        answered (Viewer.go_away); HTTP requests in progress are answered, with
        `Connection: close`. Idle kept-alive HTTP connections are closed at once, or with
        `linger_s`, left open for up to that long: their next request is answered (and
        closes them) or their keep-alive timeout closes them, as when the engine runs, so
        no client meets a connection closed just as it sends a request on it (a worker
        replaced by a rolling restart, engine/server/workers.py).

        Only this process's listening socket closes: a socket shared with other processes
        (`serve --workers`) keeps listening, and the connections in its accept queue are
        accepted by them."""
        if self.server is None:
            return
        self.server.close()
        self.going_away = True
        await _until(lambda: not self.reading_first_head, FIRST_HEAD_GRACE_S)
        for first_head in list(self.reading_first_head):
            if first_head.transport is not None:
                first_head.transport.close()
        for conn in list(self.ws_server.all_connections):
            if isinstance(conn, ViewerConnection):
                conn.go_away()
        if linger_s > 0:
            await _until(lambda: not self.http_state.connections, linger_s)
        for http_connection in list(self.http_state.connections):
            http_connection.shutdown()
        pending = [*self.ws_server.handler_tasks, *self.http_state.tasks]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout_s / 2)
            # A viewer whose answers never came: closed now, answered or not.
            closing = [
                asyncio.create_task(conn.close(CloseCode.GOING_AWAY, "server shutting down"))
                for conn in list(self.ws_server.all_connections)
                if conn.protocol.state is State.OPEN
            ]
            if late or closing:
                _, late = await asyncio.wait([*late, *closing], timeout=timeout_s / 2)
            for task in late:
                task.cancel()
        for http_connection in list(self.http_state.connections):
            with contextlib.suppress(Exception):
                http_connection.transport.close()
        self.server = None


async def _until(done: Callable[[], bool], timeout_s: float) -> None:
    """Wait (polling) until `done()` or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.02)
