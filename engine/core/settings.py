"""Engine settings: one frozen dataclass, read from the environment, overridden by the CLI."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.origins import check_origins


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits of the realtime gateway (documented in docs/protocol.md)."""

    max_frame_bytes: int = 16 * 1024
    hello_timeout_s: float = 10.0
    # Token bucket on every client frame of one connection.
    messages_per_second: float = 20.0
    message_burst: int = 40
    # Errors within `error_window_s` before the connection is closed as abusive.
    max_errors: int = 30
    error_window_s: float = 10.0
    # Likes one `like` frame may carry (clients aggregate taps).
    max_likes_per_frame: int = 100
    # Bytes queued to one socket before the viewer counts as too slow and is dropped.
    write_buffer_bytes: int = 256 * 1024
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0


# Environment variable -> (setting, conversion). A variable that is set must be valid,
# except that these may be set to "" to mean unset.
_EMPTY_IS_UNSET = {
    "REDIS_URL", "LIVECART_SECRET", "LIVECART_PAYMENT_SECRET", "LIVECART_REMINDER_WEBHOOK_URL",
    "LIVECART_REDIS_UNSAFE_OK", "LIVECART_METRICS_TOKEN", "LIVECART_JWT_PUBLIC_KEY_FILE",
    "LIVECART_JWKS_URL", "LIVECART_JWT_AUDIENCE", "LIVECART_MEDIA_DIR", "DATABASE_URL",
    "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "LIVECART_STRIPE_API_BASE",
}  # fmt: skip


# The features a default engine runs (engine/features/): their packages, by dotted path.
DEFAULT_FEATURES = (
    "engine.features.auctions",
    "engine.features.giveaways",
    "engine.features.groupbuys",
    "engine.features.comment_buy",
    "engine.features.polls",
)

# The room bus's pub/sub settings (engine/store/bus.py PubSubMode, or auto).
PUBSUB_SETTINGS = ("auto", "sharded", "plain")


def _switch(value: str) -> bool:
    """On unless spelled off: `0`, `off`, `false` or `no`."""
    return value.lower() not in {"0", "off", "false", "no"}


def _comma_list(value: str) -> tuple[str, ...]:
    """`a, b,c` -> ("a", "b", "c"); empty items are dropped. Workers get it back joined."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "LIVECART_HOST": ("host", str),
    "LIVECART_PORT": ("port", int),
    "REDIS_URL": ("redis_url", str),
    "LIVECART_REDIS_UNSAFE_OK": ("redis_unsafe_ok", _switch),
    "LIVECART_DATA_DIR": ("data_dir", Path),
    "LIVECART_SECRET": ("secret", str),
    "LIVECART_TICK_MS": ("tick_ms", int),
    "LIVECART_GRAB_WINDOW_MS": ("grab_window_ms", float),
    "LIVECART_PAYMENT_WINDOW_S": ("payment_window_s", int),
    "LIVECART_SHIPPING_FEE": ("shipping_fee", int),
    "LIVECART_MAX_ORDERS_PER_USER": ("max_orders_per_user", int),
    "LIVECART_MAX_ORDERS_PER_DEVICE": ("max_orders_per_device", int),
    "LIVECART_REVIEW_THRESHOLD": ("review_threshold", int),
    "LIVECART_PAYMENT_SECRET": ("payment_secret", str),
    "LIVECART_PREVIOUS_SECRETS": ("previous_secrets", _comma_list),
    "LIVECART_JWT_HS256_KEYS": ("jwt_hs256_keys", _comma_list),
    "LIVECART_JWT_PUBLIC_KEY_FILE": ("jwt_public_key_file", str),
    "LIVECART_JWKS_URL": ("jwks_url", str),
    "LIVECART_JWKS_REFRESH_S": ("jwks_refresh_s", float),
    "LIVECART_JWT_AUDIENCE": ("jwt_audience", str),
    "LIVECART_REMINDER_WEBHOOK_URL": ("reminder_webhook_url", str),
    "LIVECART_APPENDFSYNC": ("appendfsync", str),
    "LIVECART_PUBSUB": ("pubsub", str),
    "LIVECART_METRICS": ("metrics", _switch),
    "LIVECART_METRICS_TOKEN": ("metrics_token", str),
    "LIVECART_SIMULATED_PSP": ("simulated_psp", _switch),
    "LIVECART_PAYMENT_PROVIDER": ("payment_provider", str),
    "LIVECART_METRICS_FLUSH_MS": ("metrics_flush_ms", int),
    "LIVECART_HANDSHAKES_PER_IP_PER_S": ("handshakes_per_ip_per_s", float),
    "LIVECART_HANDSHAKES_PER_S": ("handshakes_per_s", float),
    "LIVECART_CONNECTIONS_PER_IP": ("connections_per_ip", int),
    "LIVECART_CONNECTIONS_PER_USER": ("connections_per_user", int),
    "LIVECART_ANONYMOUS_VIEWERS_PER_IP": ("anonymous_viewers_per_ip", int),
    "LIVECART_FEATURES": ("features", _comma_list),
    "LIVECART_PUBLIC_URL": ("public_url", str),
    "LIVECART_MEDIA_DIR": ("media_dir", Path),
    "LIVECART_ALLOWED_ORIGINS": ("allowed_origins", _comma_list),
    "LIVECART_TRUSTED_PROXIES": ("trusted_proxies", _comma_list),
    "LIVECART_DRAIN_S": ("drain_s", float),
    "LIVECART_LOG_FORMAT": ("log_format", str),
    "LIVECART_LOG_LEVEL": ("log_level", str),
    "DATABASE_URL": ("database_url", str),
    "LIVECART_LEDGER": ("ledger", _switch),
    "LIVECART_LEDGER_BATCH": ("ledger_batch", int),
    "LIVECART_LEDGER_CLAIM_IDLE_MS": ("ledger_claim_idle_ms", int),
    "LIVECART_ADDRESS_RETENTION_DAYS": ("address_retention_days", int),
    "STRIPE_API_KEY": ("stripe_api_key", str),
    "STRIPE_WEBHOOK_SECRET": ("stripe_webhook_secret", str),
    "LIVECART_STRIPE_API_BASE": ("stripe_api_base", str),
    "LIVECART_STRIPE_PAYMENT_METHODS": ("stripe_payment_methods", _comma_list),
}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    # Start even on a Redis that may evict keys or persists nothing (engine/store/redis_config.py):
    # the problems are then logged at start and shown on /readyz.
    redis_unsafe_ok: bool = False
    data_dir: Path = Path(".livecart")
    secret: str = field(default="", repr=False)
    # Secrets being rotated out: tokens they signed are still accepted until they expire.
    previous_secrets: tuple[str, ...] = field(default=(), repr=False)
    # JWTs from the operator's identity service (engine/rooms/jwt_auth.py, docs/security.md):
    # HS256 secrets as `kid:secret` items, an RS256/ES256 public key's PEM file, a JWKS URL
    # fetched again for an unknown kid at most every jwks_refresh_s, and the `aud` required.
    jwt_hs256_keys: tuple[str, ...] = field(default=(), repr=False)
    jwt_public_key_file: str = ""
    jwks_url: str = ""
    jwks_refresh_s: float = 30.0
    jwt_audience: str = ""
    # Room fan-out cadence: everything since the last tick goes out as one frame.
    tick_ms: int = 100
    # How often each process exchanges like deltas and online counts with Redis.
    sync_ms: int = 100
    # Comments a new viewer gets on join; entries kept in the room stream.
    join_history: int = 50
    stream_maxlen: int = 2000
    # Entries a resuming viewer may replay before the server says `recovered: false`.
    max_replay: int = 500
    # A room hub with no local viewers stays subscribed this long before it is dropped.
    hub_linger_s: float = 15.0
    # Stock events kept in each room's outbox stream (approximate).
    outbox_maxlen: int = 200_000
    # Grab micro-batching (engine/commerce/stock.py): extra wait before a batch goes out, and batch
    # size. One batch per sale and process is in flight at a time (arrival order).
    grab_window_ms: float = 0.0
    grab_max_batch: int = 256
    # How often each process sweeps expired reservations back to stock.
    sweep_ms: int = 250
    # Orders: how long a buyer has to pay (the order's deadline replaces the hold), the flat
    # shipping fee (minor units), order events kept, and risk rules (engine/commerce/risk.py).
    payment_window_s: int = 300
    shipping_fee: int = 600
    order_events_maxlen: int = 100_000
    max_orders_per_user: int = 5
    max_orders_per_device: int = 10
    review_threshold: int = 100_000
    # Payment callbacks: HMAC key shared with the provider (default: derived from the token
    # secret) and how old a callback may be.
    payment_secret: str = field(default="", repr=False)
    callback_tolerance_s: int = 300
    # Show reminders go to this webhook (engine/commerce/notifiers.py); unset: to the log.
    reminder_webhook_url: str = ""
    # Show metrics (engine/store/meter.py): counted in memory, written to Redis this often. Off:
    # nothing is counted (the hot-path cost benchmark's baseline; reports are then empty).
    # Browser origins, besides the engine's own, whose pages may open viewer WebSockets
    # ("*": any). Handshakes without an Origin (apps, the SDK) are not affected.
    allowed_origins: tuple[str, ...] = ()
    # The engine's public base URL (behind a load balancer: "https://shop.example"). The
    # payment provider calls back under it; unset, at the address a request came in on.
    public_url: str = ""
    # A folder served at /media/ on the engine's own origin (engine/server/media.py): cover
    # images, product pictures, an HLS stream. Unset: no /media/ route (`livecart demo`
    # sets one in its data dir).
    media_dir: Path | None = None
    # Viewer WebSocket handshakes a second, per client IP and per process (bursts of twice
    # as many; 0: no limit); beyond them a handshake is answered 503 with Retry-After
    # (engine/server/admission.py). Per IP is generous: carrier NAT puts many phones behind one.
    handshakes_per_ip_per_s: float = 100.0
    handshakes_per_s: float = 1000.0
    # Open viewer connections on one process (0: no cap): per client IP (beyond: the
    # handshake gets 503 with Retry-After) and per user in one room (beyond: close 3504).
    connections_per_ip: int = 1000
    connections_per_user: int = 10
    # Anonymous identities (device ids a client makes up) counted as unique viewers per
    # client IP and room (0: no bound); later ones watch uncounted
    # (engine/rooms/lua/viewer_seen.lua).
    anonymous_viewers_per_ip: int = 100
    # Reverse proxies (addresses or networks) whose X-Forwarded-Host and X-Forwarded-For
    # are believed: the host a browser asked for, the client's address (engine/server/admission.py).
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1")
    # On SIGTERM, /readyz answers 503 this long while everything else is still served, so a
    # load balancer stops sending traffic before connections are closed (engine/server/app.py).
    drain_s: float = 5.0
    # The built-in simulated payment provider (/psp/...): for development, demos and load
    # tests, where anyone may mark a payment paid. Off unless asked for (`livecart demo`
    # turns it on): its routes are not mounted and no payment can start.
    simulated_psp: bool = False
    # The payment provider (engine/commerce/providers.py): "" none, "simulated", or
    # "package.module:factory". Unset, LIVECART_SIMULATED_PSP=on selects the simulated one.
    payment_provider: str = ""
    # Stripe (engine/commerce/stripe_provider.py, docs/payments.md): the secret API key, the
    # webhook endpoint's signing secret, the API's base URL (a test server's, else Stripe's)
    # and the payment methods its checkout offers.
    stripe_api_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_api_base: str = ""
    stripe_payment_methods: tuple[str, ...] = ("card", "alipay", "wechat_pay")
    # The books (engine/ledger/, docs/ledger.md): order events copied into PostgreSQL. On,
    # with no DATABASE_URL, a private PostgreSQL runs in the data dir; off, no ledger.
    ledger: bool = True
    database_url: str | None = field(default=None, repr=False)
    # Order events written to PostgreSQL in one transaction, at most.
    ledger_batch: int = 500
    # Order events another engine's ledger writer read and left unwritten this long (it
    # died mid-batch) are taken over by a live writer (engine/ledger/writer.py).
    ledger_claim_idle_ms: int = 30_000
    # A buyer's shipping address and contact are erased from the ledger this long after
    # the order closed (paid orders: after fulfilment or refund).
    address_retention_days: int = 90
    metrics: bool = True
    metrics_flush_ms: int = 1000
    # GET /metrics (engine/server/app.py): set, a scrape must send `Authorization: Bearer <it>`;
    # unset, only a client on this host (loopback, not forwarded by a proxy) is answered.
    metrics_token: str = field(default="", repr=False)
    appendfsync: str = "everysec"
    # The room bus's pub/sub (engine/store/bus.py): auto = sharded on Redis >= 7, else plain.
    pubsub: str = "auto"
    log_format: str = "text"
    log_level: str = "INFO"
    limits: Limits = field(default_factory=Limits)
    # Feature packages to load (engine/core/feature.py): dotted paths, in order.
    features: tuple[str, ...] = DEFAULT_FEATURES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (field_name, convert) in _ENV.items():
            if name in env and (env[name] or name not in _EMPTY_IS_UNSET):
                values[field_name] = convert(env[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def provider(self) -> str:
        """The payment provider in use: the setting, or the simulated one when switched on."""
        return self.payment_provider or ("simulated" if self.simulated_psp else "")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        for name, low, high in _RANGES:
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name} must be between {low} and {high}")
        if self.appendfsync not in {"always", "everysec", "no"}:
            raise ValueError("appendfsync must be always, everysec or no")
        if self.pubsub not in PUBSUB_SETTINGS:
            raise ValueError("pubsub must be auto, sharded or plain")
        if self.grab_window_ms < 0:
            raise ValueError("grab_window_ms must be >= 0")
        if self.shipping_fee < 0 or self.review_threshold < 1:
            raise ValueError("shipping_fee must be >= 0 and review_threshold >= 1")
        if self.reminder_webhook_url and not self.reminder_webhook_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("reminder_webhook_url must be an http(s) URL")
        _check_networks(self.trusted_proxies)
        if (
            self.payment_provider not in {"", "simulated", "stripe"}
            and ":" not in self.payment_provider
        ):
            raise ValueError(
                "payment_provider must be 'simulated', 'stripe' or 'package.module:factory', "
                f"not {self.payment_provider!r}"
            )
        _check_metrics_token(self.metrics_token)
        if self.media_dir is not None and not self.media_dir.is_dir():
            raise ValueError(f"LIVECART_MEDIA_DIR {self.media_dir} is not a directory")
        check_origins(self.allowed_origins, self.public_url)
        _check_secrets(self)
        if self.join_history > self.stream_maxlen:
            raise ValueError("join_history cannot exceed stream_maxlen")


# Settings that must lie in a range: (name, lowest, highest).
_RANGES: tuple[tuple[str, float, float], ...] = (
    ("tick_ms", 1, 5000),
    ("sync_ms", 1, 5000),
    ("metrics_flush_ms", 10, 60_000),
    ("payment_window_s", 10, 24 * 3600),
    ("drain_s", 0, 300),
    ("jwks_refresh_s", 0, 3600),
    # One script call reads and writes its batch with one command per kind (grab.lua), and
    # Redis's Lua takes at most ~8,000 arguments per call.
    ("grab_max_batch", 1, 1000),
    ("ledger_batch", 1, 10_000),
    ("ledger_claim_idle_ms", 100, 3_600_000),
    ("address_retention_days", 1, 3650),
    # Connection caps: 0 means no cap.
    ("connections_per_ip", 0, 10**9),
    ("connections_per_user", 0, 10**9),
    ("anonymous_viewers_per_ip", 0, 10**9),
)

MIN_METRICS_TOKEN_CHARS = 16


def _check_metrics_token(token: str) -> None:
    """LIVECART_METRICS_TOKEN, when set: at least MIN_METRICS_TOKEN_CHARS visible ASCII
    characters, as a bearer token is sent (the message never shows it)."""
    visible = all("!" <= c <= "~" for c in token)
    if token and (len(token) < MIN_METRICS_TOKEN_CHARS or not visible):
        raise ValueError(
            f"LIVECART_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} visible ASCII "
            f"characters without spaces ({len(token)} given): generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def _check_networks(networks: tuple[str, ...]) -> None:
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            message = f"trusted_proxies: {network!r} is not an IP address or network"
            raise ValueError(message) from None


# Secrets are HMAC keys: at least 32 characters (`secrets.token_urlsafe(32)` gives 43).
MIN_SECRET_CHARS = 32
_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_secret(name: str, secret: str) -> None:
    """Refuse a secret shorter than MIN_SECRET_CHARS (the message never shows it)."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"{name} must be at least {MIN_SECRET_CHARS} characters long, not {len(secret)}: "
            f"generate one with {_GENERATE}"
        )


def _check_secrets(settings: Settings) -> None:
    if settings.secret:
        check_secret("LIVECART_SECRET", settings.secret)
    if settings.payment_secret:
        check_secret("LIVECART_PAYMENT_SECRET", settings.payment_secret)
    # A short secret being rotated out is as forgeable as a short current one.
    for n, previous in enumerate(settings.previous_secrets, 1):
        check_secret(f"LIVECART_PREVIOUS_SECRETS (secret {n})", previous)
    for n, item in enumerate(settings.jwt_hs256_keys, 1):
        kid, sep, key = item.partition(":")
        if not sep or not kid.strip():
            raise ValueError(f"LIVECART_JWT_HS256_KEYS item {n} must be kid:secret")
        check_secret(f"LIVECART_JWT_HS256_KEYS (key {kid.strip()!r})", key)
    if settings.jwks_url and not settings.jwks_url.startswith(("http://", "https://")):
        raise ValueError("LIVECART_JWKS_URL must be an http(s) URL")


def read_secret_file(path: Path) -> str:
    """A token secret kept in a file: refused unless it is this user's alone (owned by
    them, no group or other permission) and at least MIN_SECRET_CHARS long."""
    with open(path, encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.getuid():
            raise ValueError(
                f"the token secret file {path} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.getuid()}): run livecart as its owner, or chown it to this user "
                f"and run `chmod 600 {path}`"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ValueError(
                f"the token secret file {path} is open to other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {path}`, and consider "
                "the secret leaked if others could read it (delete the file for a new one)"
            )
        secret = handle.read().strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"the token secret file {path} holds {len(secret)} characters, fewer than "
            f"{MIN_SECRET_CHARS}: delete it to have a new secret generated (tokens signed "
            "with the old one stop working), or set LIVECART_SECRET"
        )
    return secret


def load_secret(settings: Settings) -> str:
    """The token secret: LIVECART_SECRET, else one generated once and kept in the data dir.

    Keeping it in the data dir lets `livecart token` and `livecart serve` agree without
    configuration on a developer machine; production sets LIVECART_SECRET. Either must be
    at least MIN_SECRET_CHARS long, and the file this user's alone (`read_secret_file`).
    """
    if settings.secret:
        check_secret("LIVECART_SECRET", settings.secret)
        return settings.secret
    path = settings.data_dir / "secret"
    if path.exists():
        return read_secret_file(path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    secret = secrets.token_urlsafe(32)
    tmp = path.with_name(f"secret.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    try:
        # Two processes racing here must end up with one secret: link fails if it exists.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return read_secret_file(path)
