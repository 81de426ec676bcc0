"""The engine node: one per process. Owns the Redis client, the scripts, the services,
the pub/sub broker and the room hubs, and starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.commerce.catalog import Catalog
from engine.commerce.coupons import Coupons
from engine.commerce.images import FileImageStore, ImageStore
from engine.commerce.notifiers import notifier_for
from engine.commerce.orders import OrderStore
from engine.commerce.payments import Payments
from engine.commerce.providers import make_provider
from engine.commerce.psp import SimulatedProvider
from engine.commerce.risk import Blocklist, RiskRules
from engine.commerce.sales import SaleStore
from engine.commerce.stock import Stock
from engine.core.errors import LivecartError, UnavailableError
from engine.core.feature import load_features
from engine.core.identity import Author
from engine.core.loop import stop_tasks
from engine.core.metrics import METRICS
from engine.core.settings import Settings
from engine.ledger.service import Ledger
from engine.realtime.hub import RoomHub
from engine.rooms import auth, jwt_auth
from engine.rooms.access import Access
from engine.rooms.comments import CommentService
from engine.rooms.moderation import Moderation
from engine.rooms.presence import Presence
from engine.rooms.rooms import RoomStore
from engine.rooms.watchtime import WatchTime
from engine.server.sweeper import Sweeper
from engine.social.referrals import Referrals
from engine.social.reminders import Reminders
from engine.store import bus, redis_client, redis_config
from engine.store.broker import Broker
from engine.store.meter import Meter, Metric
from engine.store.roomlog import BusMessage, RoomLog
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.node")

_HUB_START_TIMEOUT_S = 10.0
# (room, author, comment text): run after every posted comment
CommentHook = Callable[[str, Author, str], Awaitable[None]]


class Node:
    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        secret: str,
        *,
        images: ImageStore | None = None,
        database_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.secret = secret
        self.jwt = jwt_verifier(settings)
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.redis: Redis = redis_client.connect(redis_url)
        # What Redis's own settings risk (eviction, no persistence): read at start.
        self.redis_config: redis_config.RedisConfigCheck | None = None
        self.scripts = Scripts()
        self.meter = Meter(self.redis, enabled=settings.metrics,
                           flush_s=settings.metrics_flush_ms / 1000)  # fmt: skip
        maxlen = settings.stream_maxlen
        self.rooms = RoomStore(self.redis, self.scripts, maxlen)
        self.room_log = RoomLog(self.redis)
        self.comments = CommentService(self.redis, self.scripts, maxlen)
        self.moderation = Moderation(self.redis, self.scripts, maxlen)
        self.access = Access(self.redis, self.scripts)
        self.presence = Presence(
            self.redis, self.scripts, self.process_id, stale_ms=max(3000, 10 * settings.sync_ms)
        )
        self.catalog = Catalog(self.redis, self.scripts, maxlen)
        self.sales = SaleStore(
            self.redis, self.scripts, self.catalog, maxlen, settings.outbox_maxlen
        )
        self.stock = Stock(
            self.redis,
            self.scripts,
            outbox_maxlen=settings.outbox_maxlen,
            max_batch=settings.grab_max_batch,
            window_s=settings.grab_window_ms / 1000,
            meter=self.meter,
        )
        self.coupons = Coupons(
            self.redis, self.scripts, log_maxlen=maxlen, outbox_maxlen=settings.outbox_maxlen,
            max_batch=settings.grab_max_batch, meter=self.meter,
        )  # fmt: skip
        self.risk = RiskRules(settings.max_orders_per_user, settings.max_orders_per_device,
                              settings.review_threshold)  # fmt: skip
        self.blocklist = Blocklist(self.redis)
        self.orders = OrderStore(
            self.redis, self.scripts, sales=self.sales, stock=self.stock, coupons=self.coupons,
            risk=self.risk,
            payment_window_ms=settings.payment_window_s * 1000, shipping_fee=settings.shipping_fee,
            events_maxlen=settings.order_events_maxlen, outbox_maxlen=settings.outbox_maxlen,
            meter=self.meter,
        )  # fmt: skip
        derived = hmac.new(secret.encode(), b"livecart payments", hashlib.sha256).hexdigest()
        payment_secret = (settings.payment_secret or derived).encode()
        self.provider = make_provider(settings, self.redis, self.scripts, payment_secret)
        # The simulated provider's own routes (/psp/...) are mounted only when it is in use.
        self.simulated = self.provider if isinstance(self.provider, SimulatedProvider) else None
        self.payments = Payments(self.redis, self.orders, self.provider, payment_secret,
                                 tolerance_s=settings.callback_tolerance_s)  # fmt: skip
        self.watchtime = WatchTime(self.redis)
        # Uploaded product images: files in the data dir unless another store (an object
        # store, for several hosts) is given behind the same protocol.
        self.images: ImageStore = images or FileImageStore(settings.data_dir / "images")
        self.referrals = Referrals(self.redis, secret, self.scripts)
        self.reminders = Reminders(
            self.redis, self.scripts,
            notifier=notifier_for(settings.reminder_webhook_url, secret),
        )  # fmt: skip
        # The features (engine/core/feature.py) and the service each built for this process.
        self.features = load_features(settings.features)
        self.feature_services: dict[str, Any] = {f.name: f.service(self) for f in self.features}
        self.payments.paid_hooks.extend(self._feature_hooks("on_paid"))
        self.sweeper = Sweeper(self.redis, self.stock, self.orders,
                               interval_s=settings.sweep_ms / 1000,
                               passes=[self.reminders.sweep,
                                       *self._feature_hooks("sweep")])  # fmt: skip
        self.comment_hooks: list[CommentHook] = self._feature_hooks("on_comment")
        self.pubsub_redis: Redis = redis_client.connect(redis_url, resend=False)
        self.broker = Broker(self.pubsub_redis, self._on_bus, self._on_subscribed)
        # The books in PostgreSQL (engine/ledger/): none unless the engine was given a database.
        self.ledger = (
            Ledger(
                self.redis,
                database_url,
                self.process_id,
                batch_size=settings.ledger_batch,
                claim_idle_ms=settings.ledger_claim_idle_ms,
                retention_days=settings.address_retention_days,
            )
            if database_url
            else None
        )
        self.hubs: dict[str, RoomHub] = {}
        self._starting: dict[str, asyncio.Task[RoomHub]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        METRICS.rooms.read = lambda: {(): float(len(self.hubs))}
        METRICS.connections.read = self._connection_counts
        METRICS.room_viewers.read = lambda: {
            (room_id,): float(len(hub.viewers)) for room_id, hub in self.hubs.items()
        }

    def _feature_hooks(self, name: str) -> list[Any]:
        """The features' callables of this kind (sweep, on_comment, on_paid), each bound to
        the feature's service."""
        return [partial(hook, self.feature_services[f.name])
                for f in self.features if (hook := getattr(f, name)) is not None]  # fmt: skip

    def service(self, feature: str) -> Any:
        """A feature's service on this process (`Feature.service` built it)."""
        return self.feature_services[feature]

    async def verify_token(self, token: str, room: str) -> auth.Claims:
        """A token's claims for `room`: an `lc1.` token signed with the secret or one being
        rotated out, or a JWT from the identity service when one is configured."""
        if self.jwt is not None and jwt_auth.is_jwt(token):
            return await self.jwt.verify(token, room=room)
        return auth.verify(self.secret, token, room=room, previous=self.settings.previous_secrets)

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._wait_for_redis()
        self.redis_config = await redis_config.check(
            self.redis, unsafe_ok=self.settings.redis_unsafe_ok
        )
        self.broker.mode = await bus.choose(self.settings.pubsub, self.redis)
        self.scripts.use(self.broker.mode)  # before any script runs: they publish with it
        await self.scripts.load(self.redis)
        self.broker.start()
        try:  # ready means subscribed too: a viewer joining now must get the room's feed
            await asyncio.wait_for(self.broker.connected.wait(), _HUB_START_TIMEOUT_S)
        except TimeoutError:
            await self.broker.stop()
            raise UnavailableError("Redis pub/sub did not connect in time") from None
        self.sweeper.start()
        self.meter.start()
        if self.ledger is not None:
            await self.ledger.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="livecart-housekeeping")

    async def _wait_for_redis(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            try:
                await self.redis.ping()
                # Also the pub/sub client's first command: a cluster client learns the
                # cluster's slots from it, which pub/sub needs before it can subscribe.
                await self.pubsub_redis.ping()
                return
            except (RedisError, OSError) as exc:
                attempt += 1
                if time.monotonic() > deadline:
                    raise UnavailableError(
                        f"Redis at {redis_client.redacted(self.redis_url)} is unreachable: {exc}"
                    ) from exc
                log.warning("waiting for Redis (%s), attempt %d", exc, attempt)
                await asyncio.sleep(min(2.0, 0.1 * attempt))

    async def stop(self) -> None:
        if self._housekeeping is not None:
            await stop_tasks([self._housekeeping])
        for hub in list(self.hubs.values()):
            await hub.stop()
        self.hubs.clear()
        await self.sweeper.stop()
        await self.meter.stop()
        if self.ledger is not None:
            await self.ledger.stop()
        await self.reminders.close()
        with contextlib.suppress(RedisError, OSError):
            await self.watchtime.flush()
        await self.stock.close()
        await self.coupons.close()
        if self.provider is not None:
            await self.provider.close()
        await self.broker.stop()
        await self.pubsub_redis.aclose()
        await self.redis.aclose()

    async def ready(self) -> dict[str, bool]:
        checks = {"redis": False, "scripts": False, "pubsub": self.broker.connected.is_set()}
        with contextlib.suppress(RedisError, OSError):
            checks["redis"] = bool(await self.redis.ping())
            checks["scripts"] = await self.scripts.loaded(self.redis)
            if not checks["scripts"]:
                # A restarted or failed-over Redis has an empty script cache; calls
                # reload on NOSCRIPT anyway, and readiness reloads them all at once.
                await self.scripts.load(self.redis)
                checks["scripts"] = await self.scripts.loaded(self.redis)
        return checks

    async def after_comment(self, room: str, author: Author, comment: str) -> None:
        """What a posted comment can also mean to the features (`on_comment`: a giveaway's
        keyword, a comment-to-buy order...). The comment itself is already in the room; these
        answer privately, and a failure here is logged, never an error on the comment."""
        self.meter.count(room, Metric.COMMENTS)
        for hook in self.comment_hooks:
            try:
                await hook(room, author, comment)
            except (LivecartError, RedisError, OSError) as exc:
                log.warning("comment hook %s failed in room %s: %s", hook, room, exc)

    # ---- hubs ------------------------------------------------------------------------

    async def acquire_hub(self, room_id: str) -> RoomHub:
        """The room's hub on this process, started (subscribed, caught up) if needed.
        The caller must `join` or call `release_hub` afterwards."""
        hub = self.hubs.get(room_id)
        if hub is None:
            task = self._starting.get(room_id)
            if task is None:
                task = asyncio.create_task(self._start_hub(room_id))
                self._starting[room_id] = task
            hub = await asyncio.shield(task)
        hub.joining += 1
        hub.idle_since = None
        return hub

    def release_hub(self, hub: RoomHub) -> None:
        """Undo one `acquire_hub` (after the join finished or failed)."""
        hub.joining -= 1
        if not hub.viewers and hub.joining == 0:
            hub.idle_since = time.monotonic()

    async def _start_hub(self, room_id: str) -> RoomHub:
        try:
            room = await self.rooms.get(room_id)
            hub = RoomHub(room_id, self)
            await hub.storefront.load(room.pinned_product)
            hub.start(room)
            self.hubs[room_id] = hub
            self.broker.subscribe(room_id)
            try:
                await asyncio.wait_for(hub.ready.wait(), _HUB_START_TIMEOUT_S)
            except TimeoutError:
                self.hubs.pop(room_id, None)
                self.broker.unsubscribe(room_id)
                await hub.stop()
                raise UnavailableError("the room's realtime feed is not available; retry") from None
            return hub
        finally:
            self._starting.pop(room_id, None)

    def _on_bus(self, room_id: str, payload: bytes) -> None:
        hub = self.hubs.get(room_id)
        if hub is None:
            return
        try:
            hub.on_bus(BusMessage.parse(payload))
        except Exception:
            log.exception("bad bus message in room %s: %r", room_id, payload[:200])

    async def _on_subscribed(self, room_id: str) -> None:
        hub = self.hubs.get(room_id)
        if hub is not None:
            await hub.on_subscribed()

    async def _housekeep(self) -> None:
        """Drop hubs that have had no viewers for `hub_linger_s`."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for room_id, hub in list(self.hubs.items()):
                idle = hub.idle_since
                if (
                    idle is not None
                    and hub.joining == 0
                    and now - idle > self.settings.hub_linger_s
                ):
                    del self.hubs[room_id]
                    self.broker.unsubscribe(room_id)
                    await hub.stop()
                    METRICS.forget_room(room_id)

    def _connection_counts(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {}
        for hub in self.hubs.values():
            for codec, conns in hub.members.items():
                key = (codec.name.lower(),)
                counts[key] = counts.get(key, 0) + len(conns)
        return counts


def jwt_verifier(settings: Settings) -> jwt_auth.JwtVerifier | None:
    """The JWT verifier of the settings' keys, or None when no JWT key is configured."""
    public_key = None
    if settings.jwt_public_key_file:
        with open(settings.jwt_public_key_file, "rb") as handle:
            public_key = jwt_auth.load_public_key(handle.read())
    hs256 = jwt_auth.parse_hs256_keys(settings.jwt_hs256_keys)
    if not (hs256 or public_key or settings.jwks_url):
        return None
    return jwt_auth.JwtVerifier(
        hs256=hs256,
        public_key=public_key,
        jwks_url=settings.jwks_url,
        audience=settings.jwt_audience,
        refresh_s=settings.jwks_refresh_s,
    )
