"""One TCP port for everything: WebSocket upgrades on `/ws/...` go to `websockets`,
every other request goes to uvicorn running the Starlette app.

The first request head of each connection is read by a small sniffer protocol, which
then hands the transport (and the bytes it read) to the chosen protocol. After that
hand-off nothing sits between the socket and its protocol, so the viewer path keeps the
speed of a plain `websockets` server (ARCHITECTURE.md) while HTTP keeps Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp
from uvicorn.server import ServerState
from websockets.asyncio.server import Server as WebSocketServer
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from engine.admission import Admission, HandshakeRate
from engine.codec import SUBPROTOCOLS
from engine.gateway import WS_PATH_PREFIX, ViewerConnection
from engine.metrics import METRICS
from engine.protocol import CloseCode
from engine.settings import Settings

log = logging.getLogger("livecart.listener")

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0


def is_websocket_upgrade(head: bytes) -> bool:
    """Whether a request head is `GET /ws/...` with `Upgrade: websocket`."""
    request_line, _, headers = head.partition(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[1].startswith(WS_PATH_PREFIX.encode()):
        return False
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


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
    kernel spreads new connections among them (`livecart serve --workers N`, engine/workers.py).
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


class _Sniffer(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.listener.sniffing.add(self)
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
        if self.timer is not None:
            self.timer.cancel()
        self.listener.sniffing.discard(self)
        head = bytes(self.buffer[:end])
        protocol = self.listener.protocol_for(head)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(bytes(self.buffer))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.listener.sniffing.discard(self)


Handler = Callable[[ServerConnection], Awaitable[None]]


class Listener:
    """The engine's socket: serves `app` over HTTP and `ws_handler` over WebSocket."""

    def __init__(self, settings: Settings, app: ASGIApp, ws_handler: Handler) -> None:
        self.settings = settings
        self.ws_handler = ws_handler
        self.http_config = uvicorn.Config(
            app, lifespan="off", ws="none", log_config=None, access_log=False, server_header=False
        )
        self.http_config.load()
        self.http_state = ServerState()
        self.ws_server = WebSocketServer(self._unused_create_server, self._ws_connection)
        self.server: asyncio.Server | None = None
        self.admission = Admission(
            settings.allowed_origins,
            HandshakeRate(settings.handshakes_per_ip_per_s, settings.handshakes_per_s),
        )
        # Connections that have not finished sending their first request head.
        self.sniffing: set[_Sniffer] = set()

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
                lambda: _Sniffer(self),
                self.settings.host,
                self.settings.port,
                reuse_address=True,
                backlog=4096,
            )
        else:
            self.server = await loop.create_server(lambda: _Sniffer(self), sock=sock, backlog=4096)
        # websockets' Server consults its asyncio server to refuse handshakes while closing.
        self.ws_server.server = self.server

    def protocol_for(self, head: bytes) -> asyncio.Protocol:
        if is_websocket_upgrade(head):
            return self._ws_protocol()
        protocol_class: Any = self.http_config.http_protocol_class
        protocol: asyncio.Protocol = protocol_class(
            config=self.http_config, server_state=self.http_state, app_state={}
        )
        return protocol

    def _ws_protocol(self) -> ViewerConnection:
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
        (engine/admission.py) before anything else is spent on it."""
        peer = connection.remote_address
        refusal = self.admission.check(
            ip=str(peer[0]) if peer else "", origin=request.headers.get("Origin"),
            host=request.headers.get("Host"), now=time.monotonic(),
        )  # fmt: skip
        if refusal is None:
            return None
        METRICS.handshakes_refused.inc(1, "origin" if refusal.status == 403 else "rate")
        response = connection.respond(refusal.status, refusal.reason + "\n")
        if refusal.retry_after_s is not None:
            response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response

    async def _ws_connection(self, connection: ServerConnection) -> None:
        """Run one WebSocket connection (what `websockets.serve` does for its own sockets)."""
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await connection.handshake(self._admit, None, None)
            if connection.protocol.state is not State.OPEN:
                connection.transport.abort()
                return
            self.ws_server.all_connections.add(connection)
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
            self.ws_server.handler_tasks.discard(asyncio.current_task())

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, send every viewer 1001 (reconnect elsewhere), finish HTTP requests."""
        if self.server is None:
            return
        self.server.close()
        for sniffer in list(self.sniffing):
            if sniffer.transport is not None:
                sniffer.transport.close()
        closing = [
            asyncio.create_task(conn.close(CloseCode.GOING_AWAY, "server shutting down"))
            for conn in list(self.ws_server.all_connections)
            if conn.protocol.state is State.OPEN
        ]
        for http_connection in list(self.http_state.connections):
            http_connection.shutdown()
        pending = [*closing, *self.ws_server.handler_tasks, *self.http_state.tasks]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout_s)
            for task in late:
                task.cancel()
        for http_connection in list(self.http_state.connections):
            with contextlib.suppress(Exception):
                http_connection.transport.close()
        self.server = None
