"""Who may open a viewer WebSocket, decided at the handshake before any work is done:
the browser's Origin, and how fast connections arrive (sans-I/O; engine/server/listener.py
answers the refusals).

Origin. A browser sends `Origin` with every WebSocket handshake and lets any page open
one, so a hostile page could open a socket to the engine with the visitor's cookies. The
engine uses no cookies (tokens travel in the `hello`), but it still refuses pages it does
not serve. A handshake without `Origin` (native apps, the SDK, servers) passes; one with
an `Origin` passes when that origin is configured: listed in `allowed_origins`
(`LIVECART_ALLOWED_ORIGINS`, comma-separated; `*` allows any) or the origin of the
engine's `public_url` (`LIVECART_PUBLIC_URL`). Otherwise: 403.

Same origin is not enough for a name. Under DNS rebinding an attacker's page at
`http://attacker.example:8000` has its name re-resolved to the engine's address: the
browser then sends `Origin` and `Host` both `attacker.example:8000`, equal to each other.
So an origin equal to the request's `Host` passes unconfigured only when that host cannot
be rebound: an IP literal, or `localhost` and its subdomains (RFC 6761: never asked of
DNS), which is how `livecart demo`, a developer's browser and the tests reach the engine
(Jupyter and Django's development `ALLOWED_HOSTS` draw the same line). A named host's own
pages need it configured (`LIVECART_PUBLIC_URL`, or `LIVECART_ALLOWED_ORIGINS`); the 403
says so, and `livecart serve` warns at start when neither is set.

Behind a reverse proxy. The proxy connects, not the browser, and often rewrites `Host`
(nginx's `proxy_set_header Host $host` drops the port). From a peer listed in
`trusted_proxies` (`LIVECART_TRUSTED_PROXIES`, IP addresses or networks; loopback by
default) the engine believes two headers the proxy sets: `X-Forwarded-Host` (its last
value: the host the browser asked for) stands in for `Host` in the Origin check, and
`X-Forwarded-For` gives the client address the rate below is kept for (its last entry
that is not itself a trusted proxy: entries before it are whatever the client sent). From
any other peer both headers are ignored, so a client cannot pick the host it is compared
with or the address it is counted as. `Forwarded` (RFC 7239) is not read: a proxy that
sets only the X- headers passes a client's `Forwarded` on untouched.

Rate. A reconnection storm (a stream hiccup, a deploy) sends every viewer back at once.
Handshakes take tokens from two buckets, one per client IP and one for the process; an
empty bucket answers 503 with `Retry-After`, which clients follow with jittered backoff,
instead of the process spending itself on handshakes it cannot serve.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from engine.core.origins import DEFAULT_PORTS, authority, origin_key

# Per-IP buckets idle this long are forgotten (memory stays bounded under churn).
IDLE_FORGET_S = 60.0
PRUNE_AT = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 403 (origin) or 503 (rate)
    reason: str
    retry_after_s: int | None = None


FOREIGN_ORIGIN = "this origin may not open viewer connections"
UNCONFIGURED_ORIGIN = (
    "this origin may not open viewer connections: a page served under a name must be "
    "configured (set LIVECART_PUBLIC_URL to the engine's public URL, or list the origin in "
    "LIVECART_ALLOWED_ORIGINS)"
)
NO_ORIGIN_CONFIGURED = (
    "no browser origin is configured (LIVECART_PUBLIC_URL, LIVECART_ALLOWED_ORIGINS): "
    "browser pages may open viewer sockets only when served from localhost or an IP "
    "address; set LIVECART_PUBLIC_URL to the engine's public URL (e.g. https://shop.example)"
)


class Origins:
    """The browser origins that may open viewer sockets (see the module docstring):
    `allowed` (LIVECART_ALLOWED_ORIGINS) and the origin of `public_url`."""

    def __init__(self, allowed: Iterable[str], public_url: str = "") -> None:
        self.allowed = tuple(allowed)
        self.any = "*" in self.allowed
        keys = {origin_key(origin) for origin in self.allowed}
        if public_url:
            keys.add(origin_key(public_url))
        self.keys = frozenset(key for key in keys if key is not None)
        self.configured = self.any or bool(self.keys)

    def refusal(self, origin: str | None, host: str | None) -> str | None:
        """None when a handshake with this `Origin` (None: no header) and `Host` (or the
        trusted proxy's `X-Forwarded-Host`) may go on, else why not."""
        if origin is None or self.any or origin in self.allowed:
            return None
        key = origin_key(origin)
        if key is None:  # "null" (sandboxed iframes, file:// pages), or not a web origin
            return FOREIGN_ORIGIN
        if key in self.keys:
            return None
        default = DEFAULT_PORTS[key[0]]
        if host is None or key[1:] != authority(host, default):
            return FOREIGN_ORIGIN
        # The page is the engine's own by its Host. Believed only for a host DNS
        # rebinding cannot take; a name must be configured.
        return None if cannot_be_rebound(key[1]) else UNCONFIGURED_ORIGIN


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...],
                   public_url: str = "") -> bool:  # fmt: skip
    """Whether a handshake's `Origin` may open a socket (see the module docstring)."""
    return Origins(allowed, public_url).refusal(origin, host) is None


def cannot_be_rebound(host: str) -> bool:
    """An IP literal (IPv6 in brackets or not), or `localhost` and its subdomains, which
    resolvers and browsers answer themselves (RFC 6761)."""
    name = host.lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_warning(allowed: tuple[str, ...], public_url: str) -> str | None:
    """What `livecart serve` warns at start when no browser origin is configured."""
    return None if allowed or public_url else NO_ORIGIN_CONFIGURED


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HeaderLines(Protocol):
    """A request's headers (websockets' `Headers`): every value of a name, in order."""

    def get_all(self, key: str) -> list[str]: ...


def parse_ip(text: str) -> IPAddress | None:
    """An address as a peer or `X-Forwarded-For` gives it (IPv4-mapped IPv6 as IPv4;
    `a.b.c.d:port` and `[v6]:port` as some proxies write them), else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _values(headers: HeaderLines, name: str) -> list[str]:
    """A header's comma-separated values over all its lines, in order."""
    return [v.strip() for line in headers.get_all(name) for v in line.split(",") if v.strip()]


def _single(headers: HeaderLines, name: str) -> str | None:
    """A header that must occur once: its value, else None (absent or repeated)."""
    values = headers.get_all(name)
    return values[0] if len(values) == 1 else None


class TrustedProxies:
    """The peers whose `X-Forwarded-Host` and `X-Forwarded-For` are believed (see the
    module docstring): `networks` are addresses or networks, `10.0.0.0/8` or `::1`."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def trusts(self, address: str) -> bool:
        ip = parse_ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str, headers: HeaderLines) -> tuple[str, str | None]:
        """(the client's address, the host it asked for) of a request from `peer`."""
        host = _single(headers, "Host")
        if not self.trusts(peer):
            return peer, host
        address = peer
        for hop in reversed(_values(headers, "X-Forwarded-For")):
            ip = parse_ip(hop)
            address = hop if ip is None else str(ip)
            if not self.trusts(hop):
                break
        forwarded_hosts = _values(headers, "X-Forwarded-Host")
        return address, forwarded_hosts[-1] if forwarded_hosts else host


@dataclass
class _Bucket:
    tokens: float
    at: float


class HandshakeRate:
    """Token buckets for handshakes: `per_ip` a second per client IP and `per_process` a
    second for the process, each with a burst of twice its rate (0 disables a bucket)."""

    def __init__(self, per_ip: float, per_process: float) -> None:
        self.per_ip = per_ip
        self.per_process = per_process
        self.ips: dict[str, _Bucket] = {}
        self.process = _Bucket(2 * per_process, 0.0)

    def admit(self, ip: str, now: float) -> float:
        """0.0 when the handshake may go on (a token taken from each bucket), else the
        seconds until a token is back in the bucket that is empty."""
        wait = 0.0
        if self.per_ip > 0:
            bucket = self.ips.get(ip)
            if bucket is None:
                if len(self.ips) >= PRUNE_AT:
                    self._prune(now)
                bucket = self.ips[ip] = _Bucket(2 * self.per_ip, now)
            wait = max(wait, _refill_wait(bucket, self.per_ip, now))
        if self.per_process > 0:
            wait = max(wait, _refill_wait(self.process, self.per_process, now))
        if wait > 0:
            return wait
        if self.per_ip > 0:
            self.ips[ip].tokens -= 1
        if self.per_process > 0:
            self.process.tokens -= 1
        return 0.0

    def _prune(self, now: float) -> None:
        for ip in [ip for ip, b in self.ips.items() if now - b.at > IDLE_FORGET_S]:
            del self.ips[ip]


def _refill_wait(bucket: _Bucket, rate: float, now: float) -> float:
    bucket.tokens = min(2 * rate, bucket.tokens + (now - bucket.at) * rate)
    bucket.at = now
    return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate


class Admission:
    def __init__(
        self,
        allowed_origins: tuple[str, ...],
        rate: HandshakeRate,
        proxies: TrustedProxies,
        *,
        public_url: str = "",
    ) -> None:
        self.origins = Origins(allowed_origins, public_url)
        self.rate = rate
        self.proxies = proxies

    def check(self, *, peer: str, headers: HeaderLines, now: float) -> Refusal | None:
        """A handshake from `peer` (the socket's remote address) with these headers."""
        ip, host = self.proxies.client(peer, headers)
        return self.check_client(ip, host, headers, now)

    def check_client(self, ip: str, host: str | None, headers: HeaderLines,
                     now: float) -> Refusal | None:  # fmt: skip
        """The same, for a client already resolved behind the trusted proxies
        (`proxies.client`): the listener resolves it once and keeps the address."""
        origins = headers.get_all("Origin")
        # Several Origin headers are no browser's: compared as "", which nothing matches.
        origin = None if not origins else origins[0] if len(origins) == 1 else ""
        refused = self.origins.refusal(origin, host)
        if refused is not None:
            return Refusal(403, refused)
        wait = self.rate.admit(ip, now)
        if wait > 0:
            return Refusal(503, "too many connections right now; retry", math.ceil(wait))
        return None
