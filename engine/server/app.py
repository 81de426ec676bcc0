"""Wiring: the Starlette app, and `Engine`, which starts everything in order
(Redis - embedded or external, the node, the listener) and stops it in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import socket
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import TracebackType

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.commerce.images import ImageStore
from engine.core.errors import AuthError, ForbiddenError, LivecartError
from engine.core.metrics import METRICS
from engine.core.settings import Settings, load_secret
from engine.realtime.gateway import Gateway
from engine.rooms import auth
from engine.server import api
from engine.server.admission import parse_ip
from engine.server.api.base import error_response
from engine.server.api.images import SERVE as serve_images
from engine.server.api.throttle import CallerRate
from engine.server.listener import Listener
from engine.server.media import MediaFiles
from engine.server.node import Node
from engine.store import redis_client
from engine.store.postgres_server import EmbeddedPostgres
from engine.store.redis_server import EmbeddedRedis

log = logging.getLogger("livecart.engine")


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return api.OrjsonResponse({"ok": True})


async def readyz(request: Request) -> Response:
    """Readiness: Redis reachable, scripts loaded, pub/sub connected, and not draining.

    The broker's flag alone is not the truth about pub/sub: with sharded pub/sub and no
    room on this process it holds no connection at all, so nothing tells it that Redis is
    gone. A Redis that does not answer cannot be carrying the room bus either."""
    node = api.node_of(request)
    checks = await node.ready()
    checks["pubsub"] = checks["pubsub"] and checks["redis"]
    draining: bool = request.app.state.draining
    ok = all(checks.values()) and not draining
    body: dict[str, object] = {"ok": ok, "checks": checks}
    if draining:
        body["draining"] = True
    if node.simulated is not None:
        body["simulated_psp"] = True  # anyone can mark payments paid: never in production
    if node.ledger is not None:
        # The books lag or their database is away: shown, never a 503 (grabs and checkouts
        # do not wait for the ledger; engine/ledger/writer.py).
        with contextlib.suppress(RedisError, OSError):
            body["ledger"] = await node.ledger.status()
    if node.redis_config is not None and not node.redis_config.ok:
        # Overridden or unreadable at start (engine/store/redis_config.py): shown, never a 503.
        body["redis_config"] = node.redis_config.to_wire()
    return api.OrjsonResponse(body, status_code=200 if ok else 503)


# Headers a reverse proxy adds for the client it forwards: a request carrying one is not
# taken for a local one, whatever its peer (see `metrics_refusal`).
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def metrics_refusal(request: Request, token: str) -> LivecartError | None:
    """Why `request` may not read /metrics, or None when it may (docs/api.md § GET /metrics).

    With `token` (LIVECART_METRICS_TOKEN) set, a scrape must send it as a bearer token,
    compared in constant time; from loopback too. Unset, only a client on this host is
    answered: its connection from a loopback address, and no forwarding header. The
    peer is read from `request.client`, which uvicorn rewrites from `X-Forwarded-For`
    alone (for the peers in its FORWARDED_ALLOW_IPS, loopback by default, not
    LIVECART_TRUSTED_PROXIES): without that header it is the socket's own peer, so neither
    a client nor a proxy in front can make a remote request pass for a local one."""
    if token:
        given = auth.bearer_token(request.headers.get("authorization"))
        if given is None:
            return AuthError("send Authorization: Bearer <LIVECART_METRICS_TOKEN>",
                             code="auth_required")  # fmt: skip
        if not hmac.compare_digest(given.encode("latin-1"), token.encode("latin-1")):
            return AuthError("not the metrics token (LIVECART_METRICS_TOKEN)",
                             code="token_invalid")  # fmt: skip
        return None
    peer = parse_ip(request.client.host) if request.client else None
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    if peer is None or not peer.is_loopback or forwarded:
        return ForbiddenError(
            "/metrics answers only clients on the engine's own host (loopback, not through "
            "a proxy); set LIVECART_METRICS_TOKEN to scrape it from elsewhere with "
            "Authorization: Bearer <token>",
            code="forbidden",
        )
    return None


async def metrics(request: Request) -> Response:
    """Prometheus text exposition, to whom `metrics_refusal` lets: this process's metrics,
    or under `serve --workers N` every worker's added up (engine/server/metrics_share.py)."""
    refusal = metrics_refusal(request, api.node_of(request).settings.metrics_token)
    if refusal is not None:
        response = error_response(refusal)
        if refusal.http_status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return PlainTextResponse(METRICS.render(), media_type="text/plain; version=0.0.4")


async def index(request: Request) -> Response:
    return api.OrjsonResponse(
        {
            "service": "livecart",
            "websocket": "/ws/{room}",
            "api": "/api/rooms",
            "docs": ["docs/protocol.md", "docs/api.md"],
        }
    )


WEB_INDEX = Path(str(resources.files("clients") / "web" / "index.html"))


async def viewer_page(request: Request) -> Response:
    """The viewer's mobile page (issue 7, clients/web): one HTML for every room id."""
    return FileResponse(WEB_INDEX, media_type="text/html")


async def features(request: Request) -> Response:
    """The engine's features and the modules the console and the viewer page load for them
    (docs/architecture.md § The feature seam)."""
    node = api.node_of(request)
    listed = [{"name": f.name, **f.web_modules()} for f in node.features]
    return api.OrjsonResponse({"features": listed})


def _is_psp(route: BaseRoute) -> bool:
    """A route of the simulated payment provider (left out when it is switched off)."""
    return isinstance(route, Route) and route.path.startswith("/psp/")


def build_app(node: Node) -> Starlette:
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *(r for r in api.ROUTES if node.simulated is not None or not _is_psp(r)),
        # The streamer console (issue 6): static files, no build step; `/console` redirects
        # to `/console/`.
        Mount("/console", app=StaticFiles(packages=[("streamer_console", "static")], html=True)),
        # The viewer's page (issue 7): `/live/{room}` is the shareable link of a room.
        Mount("/live/static", app=StaticFiles(packages=[("clients", "web")])),
        Route("/live/{room}", viewer_page),
        # The JavaScript SDK (clients/js, @livecart/client) as plain ES modules: both pages
        # import it from here, and so may any page on the engine's origin.
        Mount("/sdk", app=StaticFiles(packages=[("clients", "js/src")])),
        Route("/features", features),
        # Uploaded product images (engine/commerce/images.py), public and cached forever.
        serve_images,
    ]
    if node.settings.media_dir is not None:  # covers, pictures, a stream: engine/server/media.py
        routes.append(Mount("/media", app=MediaFiles(node.settings.media_dir)))
    for feature in node.features:  # engine/core/feature.py: each its routes and page modules
        routes.extend(feature.routes)
        if feature.web is not None:
            routes.append(
                Mount(f"/features/{feature.name}", app=StaticFiles(directory=feature.web))
            )
    app = Starlette(routes=routes)
    app.state.node = node
    app.state.caller_rate = CallerRate(node.settings.limits)  # viewers' HTTP writes
    app.state.draining = False  # set on SIGTERM: /readyz answers 503 (Engine.drain)
    return app


class Engine:
    """One engine process. `async with Engine(settings) as engine:` serves until exit."""

    def __init__(self, settings: Settings, *, images: ImageStore | None = None) -> None:
        self.settings = settings
        self.images = images  # None: files in the data dir (engine/commerce/images.py)
        self.embedded: EmbeddedRedis | None = None
        self.embedded_postgres: EmbeddedPostgres | None = None
        self.node: Node | None = None
        self.app: Starlette | None = None
        self.listener: Listener | None = None
        self.gateway: Gateway | None = None

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}/ws"

    async def start(self, sock: socket.socket | None = None) -> None:
        redis_url = self.settings.redis_url
        if redis_url is None:
            self.embedded = EmbeddedRedis(
                Path(self.settings.data_dir) / "redis", appendfsync=self.settings.appendfsync
            )
            await asyncio.to_thread(self.embedded.start)
            redis_url = self.embedded.url
        try:
            database_url = await self._database_url()
            self.node = Node(
                self.settings, redis_url, load_secret(self.settings), images=self.images,
                database_url=database_url,
            )  # fmt: skip
            await self.node.start()
            self.app = build_app(self.node)
            self.gateway = Gateway(self.node)
            self.listener = Listener(self.settings, self.app, self.gateway.handle)
            await self.listener.start(sock)
        except BaseException:
            await self.stop()
            raise
        redis = redis_client.redacted(redis_url)
        log.info("engine listening", extra={"url": self.base_url, "redis": redis})
        if self.node.simulated is not None:
            log.warning(
                "the simulated payment provider is ON (/psp/): anyone can mark a payment "
                "paid; unset LIVECART_SIMULATED_PSP for real money"
            )

    async def _database_url(self) -> str | None:
        """The ledger's PostgreSQL: DATABASE_URL, else a private one in the data dir (none
        with the ledger off)."""
        if not self.settings.ledger:
            return None
        if self.settings.database_url:
            return self.settings.database_url
        self.embedded_postgres = EmbeddedPostgres(Path(self.settings.data_dir) / "postgres")
        await asyncio.to_thread(self.embedded_postgres.start)
        return self.embedded_postgres.url

    async def stop(self, *, linger_s: float = 0.0) -> None:
        """Stop gracefully (Listener.stop; `linger_s` for idle kept-alive connections)."""
        if self.listener is not None:
            await self.listener.stop(linger_s=linger_s)
            self.listener = None
        self.app = None
        if self.node is not None:
            await self.node.stop()
            self.node = None
        if self.embedded_postgres is not None:
            await asyncio.to_thread(self.embedded_postgres.stop)
            self.embedded_postgres = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def drain(self) -> None:
        """Answer /readyz with 503 from now on, serving everything else as before."""
        if self.app is not None:
            self.app.state.draining = True

    async def serve_until_signal(
        self, ready: Callable[[], None] | None = None, *, retire: bool = False
    ) -> signal.Signals:
        """Serve until SIGINT/SIGTERM (or SIGHUP, with `retire`); the caller then stops the
        engine gracefully. Returns the signal that ended it.

        SIGTERM, an orchestrator's or a deploy's stop, first drains for `drain_s`: /readyz
        turns 503 while viewers and requests are still served, so a load balancer takes
        the engine out of rotation before its connections are closed. SIGINT (Ctrl-C), or
        a second signal during the drain, stops at once. `ready` (saying the engine
        serves) runs once the handlers are in place: a signal sent right after it must
        not meet the default action, which kills at once.

        SIGHUP with `retire` (a worker replaced by `serve --workers`' rolling restart,
        engine/server/workers.py) stops at once too, without the readiness drain: the port
        stays served by the worker's replacement."""
        signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if retire else ()))
        for sig in handled:
            loop.add_signal_handler(sig, signals.put_nowait, sig)
        try:
            if ready is not None:
                ready()
            received = await signals.get()
            if received is signal.SIGTERM and self.settings.drain_s > 0:
                self.drain()
                log.info("draining", extra={"drain_s": self.settings.drain_s})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signals.get(), self.settings.drain_s)
            return received
        finally:
            for sig in handled:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            log.info("shutting down")
