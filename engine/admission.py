"""Who may open a viewer WebSocket, decided at the handshake before any work is done:
the browser's Origin, and how fast connections arrive (sans-I/O; engine/listener.py
answers the refusals).

Origin. A browser sends `Origin` with every WebSocket handshake and lets any page open
one, so a hostile page could open a socket to the engine with the visitor's cookies. The
engine uses no cookies (tokens travel in the `hello`), but it still refuses pages it does
not serve: a handshake without `Origin` (native apps, the SDK, servers) passes; with one,
it must be the engine's own origin (its host and port equal the request's `Host`), or be
listed in `allowed_origins` (`LIVECART_ALLOWED_ORIGINS`, comma-separated; `*` allows any).
Refused: 403.

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
from urllib.parse import urlsplit

# Per-IP buckets idle this long are forgotten (memory stays bounded under churn).
IDLE_FORGET_S = 60.0
PRUNE_AT = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 403 (origin) or 503 (rate)
    reason: str
    retry_after_s: int | None = None


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a handshake's `Origin` may open a socket (see the module docstring)."""
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    if host is None:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return False
    default = {"http": 80, "https": 443}[parts.scheme]
    return _authority(parts.netloc, default) == _authority(host, default)


def _authority(netloc: str, default_port: int) -> tuple[str, int]:
    host, _, port = netloc.lower().rpartition(":")
    if not host or "]" in port:  # no port (or the tail of an IPv6 literal)
        return netloc.lower(), default_port
    return host, int(port) if port.isdigit() else default_port


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
        self, allowed_origins: tuple[str, ...], rate: HandshakeRate, proxies: TrustedProxies
    ) -> None:
        self.allowed_origins = allowed_origins
        self.rate = rate
        self.proxies = proxies

    def check(self, *, peer: str, headers: HeaderLines, now: float) -> Refusal | None:
        """A handshake from `peer` (the socket's remote address) with these headers."""
        ip, host = self.proxies.client(peer, headers)
        origins = headers.get_all("Origin")
        # Several Origin headers are no browser's: compared as "", which nothing matches.
        origin = None if not origins else origins[0] if len(origins) == 1 else ""
        if not origin_allowed(origin, host, self.allowed_origins):
            return Refusal(403, "this origin may not open viewer connections")
        wait = self.rate.admit(ip, now)
        if wait > 0:
            return Refusal(503, "too many connections right now; retry", math.ceil(wait))
        return None
