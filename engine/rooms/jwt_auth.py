"""JWTs from the operator's identity service, accepted alongside `lc1.` tokens.

Keys: HS256 secrets by `kid` (LIVECART_JWT_HS256_KEYS), an RS256/ES256 public key in a PEM
file (LIVECART_JWT_PUBLIC_KEY_FILE), and a JWKS URL (LIVECART_JWKS_URL) fetched with httpx,
cached, and fetched again when a token names a `kid` it does not hold, at most once every
`refresh_s` (a flood of made-up kids costs the JWKS endpoint one request per interval).

Each key verifies exactly one algorithm, chosen by the key, never by the token: an HS256
token is checked only against the HS256 secrets (so a public key's PEM used as an HMAC
secret matches nothing), RSA keys only RS256, P-256 keys only ES256; `none` never.
Claims map onto auth.Claims (`sub` is the user), then the checks of auth.verify follow:
expiry (`token_expired`, no leeway), `iat` at most CLOCK_SKEW_S ahead, the room
(`token_wrong_room`). Everything else is `token_invalid` (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from engine.core.errors import AuthError, UnavailableError
from engine.core.identity import Role
from engine.rooms.auth import CLOCK_SKEW_S, MAX_NAME, MAX_TTL_S, VERSION, Claims, check_claims

log = logging.getLogger(__name__)

ASYMMETRIC = frozenset({"RS256", "ES256"})
# Seconds one JWKS request may take; while it runs, the tokens waiting on it wait.
JWKS_TIMEOUT_S = 5.0
# A fetched key set is used this long at most; then the next token fetches it again.
JWKS_MAX_AGE_S = 3600.0


def is_jwt(token: str) -> bool:
    """A JWT's shape (three dot-separated parts), as opposed to an `lc1.` token."""
    return not token.startswith(f"{VERSION}.") and token.count(".") == 2


def parse_hs256_keys(items: tuple[str, ...]) -> dict[str, str]:
    """`kid:secret` items (LIVECART_JWT_HS256_KEYS) -> {kid: secret}."""
    keys: dict[str, str] = {}
    for n, item in enumerate(items, 1):
        kid, sep, secret = item.partition(":")
        if not sep or not kid.strip() or not secret:
            raise ValueError(f"LIVECART_JWT_HS256_KEYS item {n} must be kid:secret")
        keys[kid.strip()] = secret
    return keys


def public_key_algorithm(key: Any) -> str:
    """The one algorithm a public key verifies."""
    if isinstance(key, RSAPublicKey):
        return "RS256"
    if isinstance(key, EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "ES256"
    raise ValueError("only RSA and P-256 EC public keys are supported (RS256, ES256)")


def load_public_key(pem: bytes) -> tuple[Any, str]:
    key = load_pem_public_key(pem)
    return key, public_key_algorithm(key)


def _invalid(why: str) -> AuthError:
    return AuthError(f"token rejected: {why}", code="token_invalid")


def jwks_keys(data: Any) -> dict[str, tuple[Any, str]]:
    """A JWKS document -> {kid: (public key, algorithm)}; keys without a kid, private
    or symmetric keys, and algorithms other than RS256/ES256 are left out."""
    keys: dict[str, tuple[Any, str]] = {}
    for jwk in data.get("keys", []) if isinstance(data, dict) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") not in {"RSA", "EC"} or jwk.get("use", "sig") != "sig" or "d" in jwk:
            continue
        try:
            key = jwt.PyJWK(jwk).key
            algorithm = public_key_algorithm(key)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if jwk.get("alg", algorithm) == algorithm:
            keys[jwk["kid"]] = (key, algorithm)
    return keys


@dataclass
class JwtVerifier:
    hs256: dict[str, str] = field(default_factory=dict, repr=False)
    public_key: tuple[Any, str] | None = None
    jwks_url: str = ""
    audience: str = ""
    refresh_s: float = 30.0
    _jwks: dict[str, tuple[Any, str]] = field(default_factory=dict)
    _fetched_at: float | None = None  # monotonic time of the last fetch attempt
    _loaded_at: float = 0.0  # monotonic time the cached set was fetched
    _last_fetch_failed: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _refresh(self) -> None:
        """Fetch the JWKS again, unless it was fetched (or tried) within `refresh_s`.
        Tokens arriving meanwhile wait for the one request."""
        async with self._lock:
            current = time.monotonic()
            if self._fetched_at is not None and current - self._fetched_at < self.refresh_s:
                return
            self._fetched_at = current
            try:
                async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_S) as client:
                    response = await client.get(self.jwks_url)
                    response.raise_for_status()
                    self._jwks = jwks_keys(response.json())
                    self._loaded_at = current
                    self._last_fetch_failed = False
            except (httpx.HTTPError, ValueError) as exc:
                # The cached keys stay; tokens they verify keep working.
                self._last_fetch_failed = True
                log.warning("fetching the JWKS %s failed: %s", self.jwks_url, exc)

    async def _key_for(self, algorithm: str, kid: str | None) -> tuple[Any, str]:
        if algorithm == "HS256":
            if kid is None or kid not in self.hs256:
                raise _invalid("unknown kid")
            return self.hs256[kid], "HS256"
        if algorithm not in ASYMMETRIC:
            raise _invalid(f"algorithm {algorithm!r} not accepted")
        if self.jwks_url and kid is not None:
            stale = time.monotonic() - self._loaded_at > JWKS_MAX_AGE_S
            if kid not in self._jwks or stale:
                await self._refresh()
            if kid in self._jwks:
                return self._jwks[kid]
        if self.public_key is not None:
            return self.public_key
        if self.jwks_url and self._last_fetch_failed:
            # The identity service did not answer: the kid may well be real. Not the
            # viewer's fault, so retryable (3002 at hello, 503 over HTTP), not token_invalid.
            raise UnavailableError(
                "the identity service's keys (JWKS) could not be fetched; retry",
                details={"retry_after_ms": int(max(self.refresh_s, 1.0) * 1000)},
            )
        raise _invalid("unknown kid")

    async def verify(self, token: str, *, room: str, now: float | None = None) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or (kid is not None and not isinstance(kid, str)):
            raise _invalid("malformed")
        key, key_algorithm = await self._key_for(algorithm, kid)
        if key_algorithm != algorithm:
            raise _invalid(f"the key for this kid verifies {key_algorithm}, not {algorithm}")
        required = ["exp", "iat", "sub", "room", "role"] + (["aud"] if self.audience else [])
        # exp and iat are checked below, as for lc1 tokens; nbf with the skew.
        options: Any = {"require": required, "verify_exp": False, "verify_iat": False,
                        "verify_aud": bool(self.audience)}  # fmt: skip
        try:
            data = jwt.decode(
                token,
                key,
                algorithms=[key_algorithm],
                audience=self.audience or None,
                options=options,
                leeway=CLOCK_SKEW_S,
            )
        except jwt.InvalidAudienceError:
            raise _invalid("wrong audience") from None
        except jwt.PyJWTError as exc:
            raise _invalid(str(exc) or "bad signature") from None
        return claims_of(data, room=room, now=now)


def claims_of(data: dict[str, Any], *, room: str, now: float | None) -> Claims:
    """A verified JWT's payload as auth.Claims for `room`, with lc1's checks."""
    try:
        name = data.get("name")
        claims = Claims(
            room=str(data["room"]),
            role=Role(data["role"]),
            user=str(data["sub"]),
            name=(name if isinstance(name, str) and name else str(data["sub"]))[:MAX_NAME],
            issued_at=int(data["iat"]),
            expires_at=int(data["exp"]),
        )
    except (KeyError, TypeError, ValueError):
        raise _invalid("bad claims") from None
    if claims.expires_at - claims.issued_at > MAX_TTL_S:
        raise _invalid(f"lives longer than {MAX_TTL_S} seconds (7 days)")
    return check_claims(claims, room, now)


def mint_hs256(secret: str, kid: str, *, room: str, role: Role, user: str,
               name: str | None = None, ttl_s: int, audience: str = "") -> str:  # fmt: skip
    """An HS256 JWT as `livecart token --format jwt` mints it."""
    issued = int(time.time())
    payload: dict[str, Any] = {"sub": user, "room": room, "role": role.value,
                               "name": (name or user)[:MAX_NAME], "iat": issued,
                               "exp": issued + ttl_s}  # fmt: skip
    if audience:
        payload["aud"] = audience
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})
