"""HMAC-SHA256 signed tokens carrying role, room, user id and expiry.

Form: `lc1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "lc1." + claims part))>`.
Claims: `room`, `role` (host | moderator | viewer), `sub` (user id), `name` (display
name), `iat` and `exp` (Unix seconds). Verification checks, in order, the shape and the
signature (`token_invalid`), expiry (`token_expired`), then the room (`token_wrong_room`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from msgspec import Meta, Struct

from engine.core.errors import AuthError
from engine.core.identity import Role
from engine.store.keys import USER_ID_RE, check_room_id, check_user_id

VERSION = "lc1"
DEFAULT_TTL_S = 12 * 3600
# The longest a token may live, however it is minted (`livecart token --ttl`, the hosts'
# POST /api/rooms/{room}/tokens): a leaked token stays good until it expires, or until its
# user is revoked in that room.
MAX_TTL_S = 7 * 86400
MAX_NAME = 40
# Tokens minted by other clocks may be a little in the future.
CLOCK_SKEW_S = 30
# A user id in a body: keys.USER_ID_RE, ending in `\Z` (msgspec searches a pattern, and `$`
# would let a final newline through).
UserId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:@-]{1,64}\Z")]


@dataclass(frozen=True, slots=True)
class Claims:
    room: str
    role: Role
    user: str
    name: str
    issued_at: int
    expires_at: int


class TokenRequest(Struct, frozen=True):
    """The body of POST /api/rooms/{room}/tokens: a host mints a viewer or moderator token."""

    user: UserId
    role: Literal["viewer", "moderator"] = "viewer"
    ttl: Annotated[int, Meta(ge=60, le=MAX_TTL_S)] = DEFAULT_TTL_S
    # Any JSON: a name that is not a string is ignored (docs/api.md), the user id stands in.
    name: Any = None

    def display_name(self) -> str | None:
        return self.name if isinstance(self.name, str) else None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signing_input: str) -> bytes:
    return hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()


def mint(
    secret: str,
    *,
    room: str,
    role: Role,
    user: str,
    name: str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    if role is Role.ANONYMOUS:
        raise ValueError("anonymous viewers have no token")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl must be from 1 to {MAX_TTL_S} seconds (7 days), not {ttl_s}")
    check_room_id(room)
    check_user_id(user)
    issued = int(time.time() if now is None else now)
    claims = {
        "room": room,
        "role": role.value,
        "sub": user,
        "name": (name or user)[:MAX_NAME],
        "iat": issued,
        "exp": issued + ttl_s,
    }
    body = _b64encode(orjson.dumps(claims))
    signing_input = f"{VERSION}.{body}"
    return f"{signing_input}.{_b64encode(_sign(secret, signing_input))}"


def _invalid(why: str) -> AuthError:
    return AuthError(f"token rejected: {why}", code="token_invalid")


def verify(secret: str, token: str, *, room: str, now: float | None = None,
           previous: Sequence[str] = ()) -> Claims:  # fmt: skip
    """Return the token's claims for `room`, or raise AuthError with a distinct code. A
    token signed with one of the `previous` secrets is accepted too: while a secret is
    rotated, tokens minted before the rotation keep working until they expire."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise _invalid("malformed")
    signing_input = f"{parts[0]}.{parts[1]}"
    try:
        signature = _b64decode(parts[2])
        raw = _b64decode(parts[1])
    except (binascii.Error, ValueError):
        raise _invalid("malformed") from None
    # One token, one spelling: no padding or non-canonical trailing bits.
    if _b64encode(signature) != parts[2] or _b64encode(raw) != parts[1]:
        raise _invalid("malformed")
    if not any(hmac.compare_digest(signature, _sign(key, signing_input))
               for key in (secret, *previous)):  # fmt: skip
        raise _invalid("bad signature")
    try:
        data = orjson.loads(raw)
        claims = Claims(
            room=str(data["room"]),
            role=Role(data["role"]),
            user=str(data["sub"]),
            name=str(data.get("name") or data["sub"])[:MAX_NAME],
            issued_at=int(data["iat"]),
            expires_at=int(data["exp"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise _invalid("bad claims") from None
    return check_claims(claims, room, now)


def check_claims(claims: Claims, room: str, now: float | None) -> Claims:
    """The checks every token's claims pass, whatever its format (an `lc1.` token or a JWT,
    engine/rooms/jwt_auth.py): a signed-in user with a safe id, not expired, not issued in
    the future, for this room."""
    if claims.role is Role.ANONYMOUS or not USER_ID_RE.fullmatch(claims.user):
        # User ids end up inside Redis keys and script-built records: only the safe alphabet.
        raise _invalid("bad claims")
    current = time.time() if now is None else now
    if claims.expires_at <= current:
        raise AuthError("token expired", code="token_expired")
    if claims.issued_at > current + CLOCK_SKEW_S:
        raise _invalid("issued in the future")
    if claims.room != room:
        raise AuthError(f"token is for room {claims.room!r}, not {room!r}", code="token_wrong_room")
    return claims


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
