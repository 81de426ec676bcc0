"""JWTs from an identity service (engine/rooms/jwt_auth.py), against a real engine and a real
local JWKS server: RS256 from a JWKS URL over HTTP and WebSocket, key rotation, HS256 by kid,
ES256 from a PEM file, the refusals (with the lc1 codes), revocation and bans, and
`livecart token --format jwt`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from clients import HostClient, LivecartClientError, ShopperClient, ViewerClient
from engine import cli
from engine.core.identity import Role
from engine.core.settings import Settings
from engine.realtime.protocol import CloseCode
from engine.rooms import jwt_auth
from engine.server.app import Engine
from engine.server.workers import worker_env
from tests.conftest import EngineFactory, token
from tests.test_access import closed_with, refusal

AUDIENCE = "livecart-test"
SECURITY_MD = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
HS_KID, HS_SECRET = "hs-1", "hs256-secret-" + "y" * 32


@dataclass
class JwksServer:
    """A JWKS endpoint on a free local port: the keys it serves may change, it answers 503
    while `down`; it counts GETs."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    down: bool = False
    url: str = ""


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(503 if state.down else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def payload(room: str, user: str = "jwt-user", role: str = "viewer", **kw: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": user, "room": room, "role": role, "name": "Jay", "iat": now,
              "exp": now + 600, "aud": AUDIENCE, "jti": f"{user}-{now}"}  # fmt: skip
    values.update(kw)
    return {k: v for k, v in values.items() if v is not None}


def rs256(key: rsa.RSAPrivateKey, kid: str, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: alg none, or HS256 keyed with a public key's PEM."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = (
        b""
        if hmac_key is None
        else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64(signature)}"


async def jwt_engine(engine_factory: EngineFactory, jwks: JwksServer, **kw: Any) -> Engine:
    return await engine_factory(
        jwks_url=jwks.url,
        jwt_hs256_keys=(f"{HS_KID}:{HS_SECRET}",),
        jwt_audience=AUDIENCE,
        **kw,
    )


async def rsa_show(
    engine_factory: EngineFactory, jwks: JwksServer
) -> tuple[rsa.RSAPrivateKey, Engine, str]:
    """An engine trusting the JWKS, which serves one RSA key (kid "rsa-1"), and a live room
    on it: (the private key, the engine, the room)."""
    key = rsa_key()
    jwks.keys = [public_jwk(key, "rsa-1")]
    engine = await jwt_engine(engine_factory, jwks)
    return key, engine, await live_room(engine)


async def live_room(engine: Engine) -> str:
    room = f"jwt-{int(time.time() * 1000) % 10**9}"
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("JWT show")
        await host.go_live()
    return room


async def test_an_rs256_jwt_from_a_jwks_url_works_over_http_and_websocket(
    engine_factory: EngineFactory, jwks: JwksServer, viewers: list[ViewerClient]
) -> None:
    key, engine, room = await rsa_show(engine_factory, jwks)
    signed = rs256(key, "rsa-1", payload(room))
    async with ShopperClient(engine.base_url, room, signed) as shopper:
        assert await shopper.orders() == []
    viewer = ViewerClient(engine.ws_url, room, signed)
    viewers.append(viewer)
    await viewer.connect()
    await viewer.comment("hello from a JWT")
    assert not viewer.is_closing()
    # lc1 tokens still work beside JWTs.
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "lc1-user")) as lc1:
        assert await lc1.orders() == []
    assert jwks.requests == 1  # the key set is cached


async def test_a_new_kid_in_the_jwks_is_picked_up_on_first_use(
    engine_factory: EngineFactory, jwks: JwksServer
) -> None:
    old, new = rsa_key(), rsa_key()
    jwks.keys = [public_jwk(old, "rsa-old")]
    engine = await jwt_engine(engine_factory, jwks, jwks_refresh_s=0.2)
    room = await live_room(engine)
    async with ShopperClient(engine.base_url, room, rs256(old, "rsa-old", payload(room))) as c:
        assert await c.orders() == []
    assert jwks.requests == 1
    # The identity service rotates: the new key is published, then used.
    jwks.keys = [public_jwk(old, "rsa-old"), public_jwk(new, "rsa-new")]
    await asyncio.sleep(0.3)
    async with ShopperClient(engine.base_url, room, rs256(new, "rsa-new", payload(room))) as c:
        assert await c.orders() == []
    assert jwks.requests == 2
    # The old key, retired from the set, stops verifying once the set is fetched again.
    jwks.keys = [public_jwk(new, "rsa-new")]
    await asyncio.sleep(0.3)
    bogus = rs256(rsa_key(), "rsa-unknown", payload(room))
    async with ShopperClient(engine.base_url, room, bogus) as c:
        assert await refusal(c) == (401, "token_invalid")
    async with ShopperClient(engine.base_url, room, rs256(old, "rsa-old", payload(room))) as c:
        assert await refusal(c) == (401, "token_invalid")


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once_per_interval(
    engine_factory: EngineFactory, jwks: JwksServer
) -> None:
    key, engine, room = await rsa_show(engine_factory, jwks)  # the default interval: 30 s

    async def attempt(n: int) -> tuple[int, str]:
        forged = rs256(key, f"made-up-{n}", payload(room))
        async with ShopperClient(engine.base_url, room, forged) as client:
            return await refusal(client)

    assert await asyncio.gather(*(attempt(n) for n in range(30))) == [(401, "token_invalid")] * 30
    assert jwks.requests == 1
    async with ShopperClient(engine.base_url, room, rs256(key, "rsa-1", payload(room))) as c:
        assert await c.orders() == []
    assert jwks.requests == 1


async def test_an_identity_service_that_does_not_answer_is_retryable_not_a_bad_token(
    engine_factory: EngineFactory, jwks: JwksServer
) -> None:
    key = rsa_key()
    jwks.keys, jwks.down = [public_jwk(key, "rsa-1")], True
    engine = await jwt_engine(engine_factory, jwks, jwks_refresh_s=0.2)
    room = await live_room(engine)
    signed = rs256(key, "rsa-1", payload(room))
    async with ShopperClient(engine.base_url, room, signed) as client:
        assert await refusal(client) == (503, "unavailable")
        response = await client.http.get(f"/api/rooms/{room}/orders")
        assert response.json()["error"]["retryable"] is True
    async with connect(f"{engine.ws_url}/{room}", subprotocols=[Subprotocol("livecart.v1.json")],
                       compression=None) as ws:  # fmt: skip
        await ws.send(json.dumps({"type": "hello", "token": signed}))
        error = json.loads(await ws.recv())
        assert (error["type"], error["code"], error["retryable"]) == ("error", "unavailable", True)
        assert error["details"]["retry_after_ms"] == 1000  # the refresh interval, at least 1 s
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.OVERLOADED  # 3002: reconnect after a backoff
    # The identity service is back: the same token is accepted once the set is fetched.
    jwks.down = False
    await asyncio.sleep(0.3)
    async with ShopperClient(engine.base_url, room, signed) as client:
        assert await client.orders() == []


async def test_refusals_use_the_lc1_codes(engine_factory: EngineFactory, jwks: JwksServer) -> None:
    key, engine, room = await rsa_show(engine_factory, jwks)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    refused = {
        "unknown kid": rs256(rsa_key(), "rsa-2", payload(room)),
        "a known kid, another key": rs256(rsa_key(), "rsa-1", payload(room)),
        "alg none": handmade({"alg": "none", "kid": "rsa-1"}, payload(room), None),
        "alg none, no kid": handmade({"alg": "none"}, payload(room), None),
        "HS256 keyed with the RSA public PEM": handmade(
            {"alg": "HS256", "kid": "rsa-1"}, payload(room), pem
        ),
        "HS256 keyed with the PEM, no kid": handmade({"alg": "HS256"}, payload(room), pem),
        "RS256 named with the HS256 kid": rs256(key, HS_KID, payload(room)),
        "HS256 with an unknown kid": jwt.encode(
            payload(room), HS_SECRET, algorithm="HS256", headers={"kid": "hs-9"}
        ),
        "wrong audience": rs256(key, "rsa-1", payload(room, aud="someone-else")),
        "no audience": rs256(key, "rsa-1", payload(room, aud=None)),
        "no exp": rs256(key, "rsa-1", payload(room, exp=None)),
        "no iat": rs256(key, "rsa-1", payload(room, iat=None)),
        "iat in the future": rs256(key, "rsa-1", payload(room, iat=now + 120, exp=now + 600)),
        "anonymous role": rs256(key, "rsa-1", payload(room, role="anonymous")),
        "unsafe user id": rs256(key, "rsa-1", payload(room, user="a b")),
        "longer than 7 days": rs256(key, "rsa-1", payload(room, exp=now + 8 * 86400)),
        "not a token": "a.b.c",
    }
    expected = {name: (401, "token_invalid") for name in refused}
    refused["expired"] = rs256(key, "rsa-1", payload(room, iat=now - 700, exp=now - 100))
    expected["expired"] = (401, "token_expired")
    refused["wrong room"] = rs256(key, "rsa-1", payload("other-room"))
    expected["wrong room"] = (401, "token_wrong_room")
    got = {}
    for name, signed in refused.items():
        async with ShopperClient(engine.base_url, room, signed) as client:
            got[name] = await refusal(client)
    assert got == expected
    # The WebSocket says the same at hello.
    for name in ("alg none", "expired", "wrong room"):
        viewer = ViewerClient(engine.ws_url, room, refused[name], reconnect=False)
        with pytest.raises(LivecartClientError) as error:
            await viewer.connect()
        await viewer.close()
        assert error.value.code == expected[name][1], (name, str(error.value))


async def test_hs256_with_a_kid_and_es256_from_a_pem_file(
    engine_factory: EngineFactory, jwks: JwksServer, tmp_path: Path
) -> None:
    es_key = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path / "identity.pem"
    pem_file.write_bytes(
        es_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    engine = await jwt_engine(engine_factory, jwks, jwt_public_key_file=str(pem_file))
    room = await live_room(engine)
    hs = jwt.encode(payload(room, role="moderator"), HS_SECRET, algorithm="HS256",
                    headers={"kid": HS_KID})  # fmt: skip
    es = jwt.encode(payload(room), es_key, algorithm="ES256")
    for signed in (hs, es):
        async with ShopperClient(engine.base_url, room, signed) as client:
            assert await client.orders() == []
    # An ES256 token signed by another key, or an RS256 one, meets the PEM key and fails.
    other = jwt.encode(payload(room), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    rs = rs256(rsa_key(), "not-in-jwks", payload(room))
    for signed in (other, rs):
        async with ShopperClient(engine.base_url, room, signed) as client:
            assert await refusal(client) == (401, "token_invalid")


async def test_revocation_and_bans_apply_to_jwt_users(
    engine_factory: EngineFactory, jwks: JwksServer, viewers: list[ViewerClient]
) -> None:
    key, engine, room = await rsa_show(engine_factory, jwks)
    now = int(time.time())
    leaked = rs256(key, "rsa-1", payload(room, user="leaky", iat=now - 10))
    leaky = ViewerClient(engine.ws_url, room, leaked)
    viewers.append(leaky)
    await leaky.connect()
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.call("POST", f"/api/rooms/{room}/revocations", {"user": "leaky"})
        async with ShopperClient(engine.base_url, room, leaked) as shopper:
            assert await refusal(shopper) == (401, "token_revoked")
        assert await closed_with(leaky) == (["token_revoked"], CloseCode.AUTH_FAILED)
        # A JWT issued after the cut-off works; a ban then refuses it.
        fresh = rs256(key, "rsa-1", payload(room, user="leaky", iat=now + 2))
        async with ShopperClient(engine.base_url, room, fresh) as shopper:
            assert await shopper.orders() == []
            await host.ban("leaky")
            assert await refusal(shopper) == (403, "banned")


def test_livecart_token_mints_an_hs256_jwt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIVECART_JWT_HS256_KEYS", f"old:{'o' * 32},{HS_KID}:{HS_SECRET}")
    monkeypatch.setenv("LIVECART_JWT_AUDIENCE", AUDIENCE)
    assert cli.main(["token", "--room", "shop", "--role", "viewer", "--user", "u-1",
                     "--format", "jwt", "--kid", HS_KID]) == 0  # fmt: skip
    minted = capsys.readouterr().out.strip()
    assert jwt.get_unverified_header(minted) == {"alg": "HS256", "kid": HS_KID, "typ": "JWT"}
    verifier = jwt_auth.JwtVerifier(hs256={HS_KID: HS_SECRET}, audience=AUDIENCE)
    claims = asyncio.run(verifier.verify(minted, room="shop"))
    assert (claims.user, claims.role, claims.room) == ("u-1", Role.VIEWER, "shop")
    assert claims.expires_at - claims.issued_at == 12 * 3600
    # An unknown kid is refused before anything is printed.
    assert cli.main(["token", "--room", "shop", "--role", "viewer", "--format", "jwt",
                     "--kid", "nope"]) == 2  # fmt: skip
    assert capsys.readouterr() == (
        "",
        "livecart: no LIVECART_JWT_HS256_KEYS key has kid 'nope': old, hs-1\n",
    )
    # Without HS256 keys there is nothing to sign a JWT with; lc1 stays the default.
    monkeypatch.delenv("LIVECART_JWT_HS256_KEYS")
    assert cli.main(["token", "--room", "shop", "--role", "viewer", "--format", "jwt"]) == 2
    assert "LIVECART_JWT_HS256_KEYS (kid:secret,...), which is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVECART_JWT_HS256_KEYS": "no-colon"}, "item 1 must be kid:secret"),
        ({"LIVECART_JWT_HS256_KEYS": ":" + "s" * 32}, "item 1 must be kid:secret"),
        ({"LIVECART_JWT_HS256_KEYS": "k:short"}, "must be at least 32 characters long, not 5"),
        ({"LIVECART_JWKS_URL": "ftp://id.example/jwks"}, "must be an http(s) URL"),
        ({"LIVECART_JWKS_REFRESH_S": "-1"}, "jwks_refresh_s must be between 0 and 3600"),
    ],
)
def test_bad_jwt_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env(env)


def test_jwt_settings_reach_every_worker() -> None:
    env = {"LIVECART_JWT_HS256_KEYS": f"a:{'a' * 32}, {HS_KID}:{HS_SECRET}",
           "LIVECART_JWKS_URL": "https://id.example/jwks", "LIVECART_JWKS_REFRESH_S": "5",
           "LIVECART_JWT_AUDIENCE": AUDIENCE}  # fmt: skip
    settings = Settings.from_env(env)
    assert jwt_auth.parse_hs256_keys(settings.jwt_hs256_keys) == {"a": "a" * 32, HS_KID: HS_SECRET}
    assert Settings.from_env(worker_env(settings, 0)) == settings
    assert HS_SECRET not in repr(settings)


async def test_the_python_backend_example_of_security_md_mints_a_token_the_engine_takes(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/security.md § Minting a viewer token in your backend, the Python block, run as
    written (its Node twin runs in clients/js/test/docs.test.js)."""
    after = SECURITY_MD[SECURITY_MD.index("Python, with PyJWT and an HS256 secret") :]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match
    secret = "shop-1-secret-" + "z" * 32
    monkeypatch.setenv("LIVECART_SHOP_1_SECRET", secret)
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/security.md", "exec"), namespace)
    engine = await engine_factory(jwt_hs256_keys=(f"shop-1:{secret}",), jwt_audience="livecart")
    room = await live_room(engine)
    signed = namespace["viewer_token"]("shop-user-7", "Lee", room)
    viewer = ViewerClient(engine.ws_url, room, signed, reconnect=False)
    try:
        welcome = await viewer.connect()
        assert (welcome["user"], welcome["role"]) == ("shop-user-7", "viewer")
    finally:
        await viewer.close()
