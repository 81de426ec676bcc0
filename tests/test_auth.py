"""engine.rooms.auth: minting and verifying signed tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec
import orjson
import pytest

from engine.core.errors import AuthError, ProtocolError
from engine.core.identity import Role
from engine.rooms import auth

SECRET = "s" * 32
NOW = 1_750_000_000.0


def mint(**kw: Any) -> str:
    values: dict[str, Any] = {"room": "r1", "role": Role.VIEWER, "user": "u1", "now": NOW}
    values.update(kw)
    return auth.mint(SECRET, **values)


def rejection(token: str, *, room: str = "r1", now: float = NOW, secret: str = SECRET) -> str:
    with pytest.raises(AuthError) as info:
        auth.verify(secret, token, room=room, now=now)
    assert info.value.http_status == 401
    return info.value.code


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(body: bytes) -> str:
    """A token in the documented form, signed with SECRET (what a key holder could mint):
    `lc1.<b64url(claims)>.<b64url(HMAC-SHA256(secret, "lc1." + claims part))>`."""
    signing_input = f"lc1.{b64(body)}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def signed(claims: Any) -> str:
    return sign(orjson.dumps(claims))


def claims_of(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    data: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


# ---- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.HOST, Role.MODERATOR, Role.VIEWER])
def test_round_trip(role: Role) -> None:
    token = mint(role=role, user="alice@x.io", name="Alice", ttl_s=60)
    assert token.startswith("lc1.")
    assert token.count(".") == 2
    claims = auth.verify(SECRET, token, room="r1", now=NOW + 59)
    assert claims == auth.Claims(
        room="r1",
        role=role,
        user="alice@x.io",
        name="Alice",
        issued_at=int(NOW),
        expires_at=int(NOW) + 60,
    )


def test_defaults_name_to_user_and_truncates() -> None:
    assert auth.verify(SECRET, mint(), room="r1", now=NOW).name == "u1"
    long_name = mint(name="n" * 100)
    assert auth.verify(SECRET, long_name, room="r1", now=NOW).name == "n" * auth.MAX_NAME
    assert claims_of(mint())["exp"] == int(NOW) + auth.DEFAULT_TTL_S


def test_token_is_url_safe() -> None:
    token = mint(name="é?&/+=" * 5)
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def test_every_token_lives_seven_days_at_most() -> None:
    """One bound for `livecart token --ttl` and the hosts' HTTP route (issue 20)."""
    assert auth.MAX_TTL_S == 7 * 86400
    assert msgspec.convert({"user": "u", "ttl": auth.MAX_TTL_S}, auth.TokenRequest).ttl == 604800
    with pytest.raises(msgspec.ValidationError, match="<= 604800"):
        msgspec.convert({"user": "u", "ttl": auth.MAX_TTL_S + 1}, auth.TokenRequest)
    claims = auth.verify(SECRET, mint(ttl_s=auth.MAX_TTL_S), room="r1", now=NOW)
    assert claims.expires_at == NOW + 7 * 86400
    for ttl in (auth.MAX_TTL_S + 1, 10 * 365 * 86400, 0, -1):
        with pytest.raises(ValueError, match=f"ttl must be from 1 to 604800 seconds .*, not {ttl}"):
            mint(ttl_s=ttl)


def test_mint_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="anonymous"):
        mint(role=Role.ANONYMOUS)
    with pytest.raises(ValueError, match="ttl"):
        mint(ttl_s=0)
    with pytest.raises(ProtocolError) as room:
        mint(room="Bad Room")
    assert room.value.details == {"field": "room"}
    with pytest.raises(ProtocolError) as user:
        mint(user="has space")
    assert user.value.details == {"field": "user"}


# ---- rejections -------------------------------------------------------------------------


def test_wrong_secret_is_invalid() -> None:
    assert rejection(mint(), secret="t" * 32) == "token_invalid"


def test_a_secret_being_rotated_out_still_verifies() -> None:
    new = "n" * 32
    old_token = mint()  # signed with SECRET, the secret being rotated out
    claims = auth.verify(new, old_token, room="r1", now=NOW, previous=[SECRET])
    assert claims.user == "u1"
    new_token = auth.mint(new, room="r1", role=Role.VIEWER, user="bob", now=NOW)
    assert auth.verify(new, new_token, room="r1", now=NOW, previous=[SECRET]).user == "bob"
    # Once the old secret is dropped from the list, its tokens are invalid.
    assert rejection(old_token, secret=new) == "token_invalid"


def test_forged_signature_is_invalid() -> None:
    head, body, _ = mint().split(".")
    forged = f"{head}.{body}.{b64(b'x' * 32)}"
    assert rejection(forged) == "token_invalid"
    assert rejection(f"{head}.{body}.") == "token_invalid"


def test_tampered_claims_are_invalid() -> None:
    token = mint()
    head, _, signature = token.split(".")
    promoted = {**claims_of(token), "role": "host"}
    assert rejection(f"{head}.{b64(orjson.dumps(promoted))}.{signature}") == "token_invalid"
    other_room = {**claims_of(token), "room": "r2"}
    assert (
        rejection(f"{head}.{b64(orjson.dumps(other_room))}.{signature}", room="r2")
        == "token_invalid"
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "lc1",
        "lc1.abc",
        "lc1.a.b.c",
        "lc2.eyJ9.c2ln",
        "LC1.eyJ9.c2ln",
        "lc1.!!!.c2ln",
        "lc1.eyJ9.é",
        "lc1.a.b",  # undecodable base64 (a single character)
    ],
)
def test_malformed_is_invalid(token: str) -> None:
    assert rejection(token) == "token_invalid"


def test_version_prefix_of_a_real_token_is_checked() -> None:
    token = mint()
    assert rejection("lc2" + token[3:]) == "token_invalid"


@pytest.mark.parametrize(
    "claims",
    [
        [],
        "text",
        42,
        {"role": "viewer", "sub": "u1", "iat": 1, "exp": 2},  # no room
        {"room": "r1", "sub": "u1", "iat": 1, "exp": 2},  # no role
        {"room": "r1", "role": "admin", "sub": "u1", "iat": 1, "exp": 2},
        {"room": "r1", "role": "viewer", "iat": 1, "exp": 2},  # no sub
        {"room": "r1", "role": "viewer", "sub": "u1", "iat": "soon", "exp": 2},
        {"room": "r1", "role": "viewer", "sub": "u1", "iat": 1},  # no exp
    ],
)
def test_signed_but_bad_claims_are_invalid(claims: Any) -> None:
    assert rejection(signed(claims)) == "token_invalid"


def test_documented_format_verifies() -> None:
    claims = {"room": "r1", "role": "moderator", "sub": "m1", "iat": NOW, "exp": NOW + 60}
    verified = auth.verify(SECRET, signed(claims), room="r1", now=NOW)
    assert (verified.role, verified.user, verified.name) == (Role.MODERATOR, "m1", "m1")


def test_signed_non_json_claims_are_invalid() -> None:
    assert rejection(sign(b"not json")) == "token_invalid"


def test_anonymous_role_is_rejected() -> None:
    claims = {"room": "r1", "role": "anonymous", "sub": "u1", "iat": NOW, "exp": NOW + 60}
    assert rejection(signed(claims)) == "token_invalid"


def test_expired() -> None:
    token = mint(ttl_s=60)
    assert auth.verify(SECRET, token, room="r1", now=NOW + 59.9).user == "u1"
    assert rejection(token, now=NOW + 60) == "token_expired"
    assert rejection(token, now=NOW + 10_000) == "token_expired"


def test_expiry_is_checked_before_room() -> None:
    assert rejection(mint(ttl_s=60), room="r2", now=NOW + 61) == "token_expired"


def test_wrong_room() -> None:
    with pytest.raises(AuthError) as info:
        auth.verify(SECRET, mint(room="r1"), room="r2", now=NOW)
    assert info.value.code == "token_wrong_room"
    assert "r1" in info.value.message


def test_issued_in_the_future() -> None:
    within_skew = mint(now=NOW + auth.CLOCK_SKEW_S)
    assert auth.verify(SECRET, within_skew, room="r1", now=NOW).user == "u1"
    beyond_skew = mint(now=NOW + auth.CLOCK_SKEW_S + 1)
    assert rejection(beyond_skew) == "token_invalid"


def test_verify_uses_the_real_clock_by_default() -> None:
    fresh = auth.mint(SECRET, room="r1", role=Role.HOST, user="h")
    assert auth.verify(SECRET, fresh, room="r1").role is Role.HOST


# ---- bearer_token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("abc", None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert auth.bearer_token(header) == expected


@pytest.mark.parametrize("user", ['ana"x', "ana smith", "", "a" * 65])
def test_a_signed_token_with_an_unsafe_user_id_is_invalid(user: str) -> None:
    # Only the key holder could mint these; they are refused anyway, since user ids end
    # up inside Redis keys and records.
    claims = claims_of(auth.mint(SECRET, room="r", role=Role.VIEWER, user="ana"))
    token = signed({**claims, "sub": user})
    with pytest.raises(AuthError) as info:
        auth.verify(SECRET, token, room="r")
    assert info.value.code == "token_invalid"
