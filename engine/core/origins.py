"""Browser origins as the engine compares them: `scheme://host[:port]`, lowercased, the
default port filled in; and the settings check that refuses origins no browser could send."""

from __future__ import annotations

from urllib.parse import urlsplit

OriginKey = tuple[str, str, int]  # (scheme, host, port), lowercased, default port filled


def check_origins(allowed: tuple[str, ...], public_url: str) -> None:
    """Settings: every allowed origin is `*` or `scheme://host[:port]`, and the public URL an
    http(s) URL; one that could never match a browser's `Origin` is refused at start."""
    for origin in allowed:
        parts = urlsplit(origin)
        if origin != "*" and (origin_key(origin) is None or parts.path not in {"", "/"}
                              or parts.query or parts.fragment or "@" in parts.netloc):  # fmt: skip
            raise ValueError(
                f"allowed_origins: {origin!r} is not an origin like https://shop.example "
                "(scheme, host and port only), or *"
            )
    if public_url and origin_key(public_url) is None:
        raise ValueError(f"public_url: {public_url!r} is not an http(s) URL")


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_key(text: str) -> OriginKey | None:
    """(scheme, host, port) of an http(s) origin or URL, else None."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    netloc = parts.netloc.rpartition("@")[2]
    if scheme not in DEFAULT_PORTS or not netloc:
        return None
    return (scheme, *authority(netloc, DEFAULT_PORTS[scheme]))


def authority(netloc: str, default_port: int) -> tuple[str, int]:
    host, _, port = netloc.lower().rpartition(":")
    if not host or "]" in port:  # no port (or the tail of an IPv6 literal)
        return netloc.lower(), default_port
    return host, int(port) if port.isdigit() else default_port
