"""engine.server.api over real HTTP: every route, its auth, its validation and its error bodies."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from clients import HostClient, LivecartClientError, ViewerClient
from engine.core.identity import Role
from engine.rooms import auth
from engine.server.app import Engine
from engine.store import keys
from engine.store.redis_server import EmbeddedRedis
from tests.conftest import SECRET, EngineFactory, RoomFactory, ViewerFactory, poll, token

ROOM_FIELDS = {
    "id", "title", "host", "host_name", "state", "cover_url", "stream_url", "scheduled_at",
    "created_at", "live_at", "ended_at", "settings", "pinned", "pinned_product",
}  # fmt: skip
DEFAULT_SETTINGS = {
    "allow_anonymous": True,
    "max_comment_chars": 200,
    "comment_rate_max": 5,
    "comment_rate_window_ms": 10_000,
    "slow_mode_ms": 0,
    "display_rate": 20,
}
EMPTY_STATS = {"online": 0, "peak": 0, "likes": 0, "unique": 0}

# Routes only a host token may call: (method, path after /api/rooms/{room}, body).
HOST_ROUTES: list[tuple[str, str, Any]] = [
    ("PATCH", "", {"title": "Renamed"}),
    ("POST", "/go-live", None),
    ("POST", "/end", None),
    ("POST", "/tokens", {"user": "staff-1", "role": "moderator"}),
]
# Routes a host or a moderator token may call.
MODERATOR_ROUTES: list[tuple[str, str, Any]] = [
    ("DELETE", "/comments/1-0", None),
    ("POST", "/pin", {"comment_id": "1-0"}),
    ("DELETE", "/pin", None),
    ("POST", "/mutes", {"user": "bob", "minutes": 5}),
    ("DELETE", "/mutes/bob", None),
    ("GET", "/bans", None),
    ("POST", "/bans", {"user": "bob"}),
    ("DELETE", "/bans/bob", None),
    ("GET", "/banned-words", None),
    ("PUT", "/banned-words", {"words": ["spam"]}),
    ("PUT", "/slow-mode", {"seconds": 1}),
]
PROTECTED_ROUTES = HOST_ROUTES + MODERATOR_ROUTES


def route_id(route: tuple[str, str, Any]) -> str:
    return f"{route[0]} {route[1] or '/'}"


# ---- helpers ------------------------------------------------------------------------------


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


def host_token(room: str) -> str:
    return token(room, "host", "host-1")


def new_room_id() -> str:
    return f"r-{secrets.token_hex(5)}"


async def send(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    tok: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> httpx.Response:
    """One request; `body` goes out as JSON, `raw` as it is."""
    headers = {"authorization": f"Bearer {tok}"} if tok else {}
    if raw is not None:
        return await http.request(method, path, headers=headers, content=raw)
    if body is None:
        return await http.request(method, path, headers=headers)
    return await http.request(method, path, headers=headers, json=body)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def failed(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error response of the documented shape; return its `error` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["retryable"] is (status in {429, 503})
    assert set(error) <= {"code", "message", "retryable", "details"}
    if "details" in error:
        assert error["details"]  # present only when non-empty
    return error


def refusal_of(body: Any) -> str:
    """The code of a refused body: a field's fault, or not an object at all."""
    return "invalid_field" if isinstance(body, dict) else "bad_request"


async def get_room(http: httpx.AsyncClient, room: str, tok: str | None = None) -> dict[str, Any]:
    """The room as `GET /api/rooms/{room}` answers it (a private room's needs `tok`)."""
    body: dict[str, Any] = ok(await send(http, "GET", f"/api/rooms/{room}", tok))
    return body


# ---- rooms: list, create, read ---------------------------------------------------------------


async def test_list_rooms_is_public_and_sorted(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    made = {await room_factory(), await room_factory(live=False)}
    body = ok(await http.get("/api/rooms"))
    assert list(body) == ["rooms"]
    assert made <= set(body["rooms"])  # live and scheduled rooms are listed
    assert body["rooms"] == sorted(body["rooms"])


async def test_ended_and_private_rooms_leave_the_list(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    ended, private = await room_factory(), await room_factory()
    host = {"Authorization": f"Bearer {token(ended, 'host')}"}
    ok(await http.post(f"/api/rooms/{ended}/end", headers=host))
    host = {"Authorization": f"Bearer {token(private, 'host')}"}
    ok(await http.patch(f"/api/rooms/{private}", headers=host,
                        json={"settings": {"allow_anonymous": False}}))  # fmt: skip
    listed = ok(await http.get("/api/rooms"))["rooms"]
    assert ended not in listed
    assert private not in listed
    host = {"Authorization": f"Bearer {token(private, 'host')}"}
    ok(await http.patch(f"/api/rooms/{private}", headers=host,
                        json={"settings": {"allow_anonymous": True}}))  # fmt: skip
    assert private in ok(await http.get("/api/rooms"))["rooms"]  # public again


async def test_create_room_returns_the_room(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    before_ms = int(time.time() * 1000)
    body = ok(
        await send(
            http,
            "POST",
            "/api/rooms",
            token(room, "host", "alice"),
            {
                "id": room,
                "title": "  Friday drop  ",
                "cover_url": "https://cdn.example/cover.jpg",
                "stream_url": None,
                "scheduled_at": "2024-11-21T18:00:00+00:00",
                "settings": {"display_rate": 30, "allow_anonymous": False},
            },
        ),
        201,
    )
    assert set(body) == ROOM_FIELDS
    assert body["id"] == room
    assert body["title"] == "Friday drop"
    assert body["host"] == "alice"
    assert body["state"] == "scheduled"
    assert body["cover_url"] == "https://cdn.example/cover.jpg"
    assert body["stream_url"] is None
    assert body["scheduled_at"] == 1732212000000
    assert before_ms - 5000 <= body["created_at"] <= int(time.time() * 1000) + 5000
    assert body["live_at"] is None
    assert body["ended_at"] is None
    assert body["settings"] == {**DEFAULT_SETTINGS, "display_rate": 30, "allow_anonymous": False}
    assert body["pinned"] is None
    assert room not in ok(await http.get("/api/rooms"))["rooms"]  # private: not listed


async def test_create_room_with_only_the_required_fields(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    body = ok(
        await send(http, "POST", "/api/rooms", host_token(room), {"id": room, "title": "T"}), 201
    )
    assert body["settings"] == DEFAULT_SETTINGS
    assert body["scheduled_at"] is None
    assert body["cover_url"] is None
    assert body["host"] == "host-1"


async def test_create_room_scheduled_at_epoch_ms(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    body = ok(
        await send(
            http,
            "POST",
            "/api/rooms",
            host_token(room),
            {"id": room, "title": "T", "scheduled_at": 1732212000000},
        ),
        201,
    )
    assert body["scheduled_at"] == 1732212000000


async def test_get_room_adds_stats(http: httpx.AsyncClient, room: str) -> None:
    body = await get_room(http, room)
    assert set(body) == ROOM_FIELDS | {"stats"}
    assert body["id"] == room
    assert body["state"] == "live"
    assert body["host"] == "host-1"
    assert isinstance(body["live_at"], int)
    assert body["live_at"] >= body["created_at"]
    assert body["stats"] == EMPTY_STATS


async def test_get_room_stats_count_viewers(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await viewer_factory(room, user="alice")
    await viewer_factory(room, user="bob")
    body = await poll(lambda: get_room(http, room), lambda b: b["stats"]["online"] == 2)
    stats = body["stats"]
    assert stats["peak"] >= 2
    assert stats["unique"] == 2


async def test_get_unknown_room_is_404(http: httpx.AsyncClient) -> None:
    error = failed(await http.get(f"/api/rooms/{new_room_id()}"), 404, "room_not_found")
    assert "details" not in error


async def test_create_duplicate_room_is_409(http: httpx.AsyncClient, room: str) -> None:
    before = await get_room(http, room)
    response = await send(
        http, "POST", "/api/rooms", host_token(room), {"id": room, "title": "Again"}
    )
    failed(response, 409, "room_exists")
    after = await get_room(http, room)
    assert after["title"] == before["title"]
    assert after["state"] == "live"


@pytest.mark.parametrize(
    "body",
    [{"title": "no id"}, {"id": 42, "title": "T"}, {"id": None, "title": "T"}, [], "a string"],
    ids=["missing", "number", "null", "list", "string"],
)
async def test_create_room_needs_an_id(http: httpx.AsyncClient, body: Any) -> None:
    response = await send(http, "POST", "/api/rooms", host_token("some-room"), body)
    failed(response, 400, "invalid_field")


@pytest.mark.parametrize("room_id", ["Upper", "has space", "-dash-first", "x" * 41, ""])
async def test_create_room_with_bad_id_is_400_before_auth(
    http: httpx.AsyncClient, room_id: str
) -> None:
    # No token at all: the id is checked first.
    response = await send(http, "POST", "/api/rooms", None, {"id": room_id, "title": "T"})
    error = failed(response, 400, "invalid_field")
    assert error["details"] == {"field": "room"}


async def test_create_room_with_token_for_another_room_is_401(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    response = await send(
        http, "POST", "/api/rooms", host_token(new_room_id()), {"id": room, "title": "T"}
    )
    failed(response, 401, "token_wrong_room")
    failed(await http.get(f"/api/rooms/{room}"), 404, "room_not_found")


async def test_create_room_without_token_is_401(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    response = await send(http, "POST", "/api/rooms", None, {"id": room, "title": "T"})
    failed(response, 401, "auth_required")
    failed(await http.get(f"/api/rooms/{room}"), 404, "room_not_found")


@pytest.mark.parametrize("role", ["viewer", "moderator"])
async def test_create_room_needs_a_host_token(http: httpx.AsyncClient, role: str) -> None:
    room = new_room_id()
    response = await send(http, "POST", "/api/rooms", token(room, role), {"id": room, "title": "T"})
    error = failed(response, 403, "forbidden")
    assert error["details"] == {"needs": ["host"]}
    failed(await http.get(f"/api/rooms/{room}"), 404, "room_not_found")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"color": "red"}, "color"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"title": 7}, "title"),
        ({"cover_url": "ftp://example.com/a.png"}, "cover_url"),
        ({"stream_url": "https://example.com/has space"}, "stream_url"),
        ({"stream_url": "https://e.x/" + "a" * 2048}, "stream_url"),
        ({"scheduled_at": -1}, "scheduled_at"),
        ({"scheduled_at": "2024-11-21T18:00:00"}, "scheduled_at"),  # no offset: refused
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"settings": {"display_rate": 0}}, "settings.display_rate"),
        ({"settings": {"colour": 1}}, "settings.colour"),
    ],
)
async def test_create_room_validates_fields(
    http: httpx.AsyncClient, fields: dict[str, Any], field: str
) -> None:
    room = new_room_id()
    body = {"id": room, "title": "T", **fields}
    error = failed(
        await send(http, "POST", "/api/rooms", host_token(room), body), 400, "invalid_field"
    )
    assert error["details"] == {"field": field}
    failed(await http.get(f"/api/rooms/{room}"), 404, "room_not_found")


async def test_create_room_title_of_120_characters_is_accepted(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    body = ok(
        await send(http, "POST", "/api/rooms", host_token(room), {"id": room, "title": "t" * 120}),
        201,
    )
    assert body["title"] == "t" * 120


# ---- authentication and roles ------------------------------------------------------------


@pytest.mark.parametrize("route", PROTECTED_ROUTES, ids=route_id)
async def test_protected_routes_need_a_token(
    http: httpx.AsyncClient, room: str, route: tuple[str, str, Any]
) -> None:
    method, suffix, body = route
    error = failed(
        await send(http, method, f"/api/rooms/{room}{suffix}", None, body), 401, "auth_required"
    )
    assert "details" not in error


@pytest.mark.parametrize("header", ["Basic aG9zdDpwdw==", "Bearer", "Token abc", "Digest"])
async def test_other_authorization_schemes_count_as_missing(
    http: httpx.AsyncClient, room: str, header: str
) -> None:
    response = await http.get(f"/api/rooms/{room}/bans", headers={"authorization": header})
    failed(response, 401, "auth_required")


def bad_token(kind: str, room: str) -> str:
    if kind == "forged":
        return auth.mint("another-secret-" + "y" * 20, room=room, role=Role.HOST, user="host-1")
    if kind == "tampered":
        version, claims, signature = host_token(room).split(".")
        other = host_token(new_room_id()).split(".")[1]
        assert other != claims
        return f"{version}.{other}.{signature}"
    if kind == "malformed":
        return "not-a-token"
    if kind == "future":
        return auth.mint(SECRET, room=room, role=Role.HOST, user="host-1", now=time.time() + 3600)
    if kind == "expired":
        return auth.mint(
            SECRET, room=room, role=Role.HOST, user="host-1", ttl_s=60, now=time.time() - 3600
        )
    assert kind == "wrong_room"
    return host_token(new_room_id())


TOKEN_CASES = [
    ("forged", "token_invalid"),
    ("tampered", "token_invalid"),
    ("malformed", "token_invalid"),
    ("future", "token_invalid"),
    ("expired", "token_expired"),
    ("wrong_room", "token_wrong_room"),
]


@pytest.mark.parametrize(("kind", "code"), TOKEN_CASES)
@pytest.mark.parametrize("route", [HOST_ROUTES[0], MODERATOR_ROUTES[5]], ids=route_id)
async def test_bad_tokens_are_401(
    http: httpx.AsyncClient, room: str, kind: str, code: str, route: tuple[str, str, Any]
) -> None:
    method, suffix, body = route
    response = await send(http, method, f"/api/rooms/{room}{suffix}", bad_token(kind, room), body)
    failed(response, 401, code)
    assert (await get_room(http, room))["title"] == "Test show"  # the PATCH did nothing


@pytest.mark.parametrize(("kind", "code"), TOKEN_CASES)
async def test_bad_tokens_cannot_create_rooms(
    http: httpx.AsyncClient, kind: str, code: str
) -> None:
    room = new_room_id()
    response = await send(
        http, "POST", "/api/rooms", bad_token(kind, room), {"id": room, "title": "T"}
    )
    failed(response, 401, code)
    failed(await http.get(f"/api/rooms/{room}"), 404, "room_not_found")


@pytest.mark.parametrize("route", PROTECTED_ROUTES, ids=route_id)
async def test_viewer_tokens_are_forbidden(
    http: httpx.AsyncClient, room: str, route: tuple[str, str, Any]
) -> None:
    method, suffix, body = route
    response = await send(http, method, f"/api/rooms/{room}{suffix}", token(room, "viewer"), body)
    error = failed(response, 403, "forbidden")
    needs = ["host"] if route in HOST_ROUTES else ["host", "moderator"]
    assert error["details"] == {"needs": needs}


@pytest.mark.parametrize("route", HOST_ROUTES, ids=route_id)
async def test_moderators_cannot_use_host_routes(
    http: httpx.AsyncClient, room: str, route: tuple[str, str, Any]
) -> None:
    method, suffix, body = route
    response = await send(
        http, method, f"/api/rooms/{room}{suffix}", token(room, "moderator"), body
    )
    error = failed(response, 403, "forbidden")
    assert error["details"] == {"needs": ["host"]}
    after = await get_room(http, room)
    assert after["title"] == "Test show"
    assert after["state"] == "live"


async def test_any_host_token_for_the_room_is_a_host(http: httpx.AsyncClient, room: str) -> None:
    # Not only the user who created the room.
    body = ok(
        await send(
            http, "PATCH", f"/api/rooms/{room}", token(room, "host", "cohost"), {"title": "Co"}
        )
    )
    assert body["title"] == "Co"
    assert body["host"] == "host-1"


async def test_bad_room_id_in_path_is_400_before_auth(http: httpx.AsyncClient) -> None:
    for method, suffix, body in [("GET", "", None), *PROTECTED_ROUTES]:
        response = await send(http, method, f"/api/rooms/Not_A_Room{suffix}", None, body)
        error = failed(response, 400, "invalid_field")
        assert error["details"] == {"field": "room"}


async def test_unknown_path_and_method_are_plain_text(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.text == "Not Found"
    response = await http.delete("/api/rooms")
    assert response.status_code == 405
    assert response.text == "Method Not Allowed"


# ---- update ---------------------------------------------------------------------------------


async def test_patch_updates_fields_and_settings(http: httpx.AsyncClient, room: str) -> None:
    path = f"/api/rooms/{room}"
    body = ok(
        await send(
            http,
            "PATCH",
            path,
            host_token(room),
            {
                "title": " Last call ",
                "cover_url": "https://cdn.example/c.png",
                "stream_url": "http://stream.example/live.m3u8",
                "scheduled_at": 1732212000000,
                "settings": {"max_comment_chars": 150, "allow_anonymous": False},
            },
        )
    )
    assert set(body) == ROOM_FIELDS
    expected_settings = {**DEFAULT_SETTINGS, "max_comment_chars": 150, "allow_anonymous": False}
    for view in (body, await get_room(http, room, host_token(room))):  # private now
        assert view["title"] == "Last call"
        assert view["cover_url"] == "https://cdn.example/c.png"
        assert view["stream_url"] == "http://stream.example/live.m3u8"
        assert view["scheduled_at"] == 1732212000000
        assert view["settings"] == expected_settings
        assert view["state"] == "live"

    # A partial settings object changes only what it names; null clears optional fields.
    body = ok(
        await send(
            http,
            "PATCH",
            path,
            host_token(room),
            {"cover_url": None, "scheduled_at": None, "settings": {"display_rate": 5}},
        )
    )
    view = await get_room(http, room, host_token(room))
    assert body["settings"] == view["settings"] == {**expected_settings, "display_rate": 5}
    assert view["cover_url"] is None
    assert view["scheduled_at"] is None
    assert view["title"] == "Last call"
    assert view["stream_url"] == "http://stream.example/live.m3u8"


async def test_patch_settings_bounds_are_inclusive(http: httpx.AsyncClient, room: str) -> None:
    settings = {
        "max_comment_chars": 2000,
        "comment_rate_max": 0,
        "comment_rate_window_ms": 100,
        "slow_mode_ms": 3_600_000,
        "display_rate": 1000,
    }
    body = ok(
        await send(http, "PATCH", f"/api/rooms/{room}", host_token(room), {"settings": settings})
    )
    assert body["settings"] == {**DEFAULT_SETTINGS, **settings}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"color": "red"}, "color"),
        ({"id": "other-room"}, "id"),
        ({"cover_url": "not a url"}, "cover_url"),
        ({"cover_url": "javascript:alert(1)"}, "cover_url"),
        ({"stream_url": 5}, "stream_url"),
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"scheduled_at": True}, "scheduled_at"),
        ({"settings": {"max_comment_chars": 0}}, "settings.max_comment_chars"),
        ({"settings": {"max_comment_chars": 2001}}, "settings.max_comment_chars"),
        ({"settings": {"comment_rate_max": -1}}, "settings.comment_rate_max"),
        ({"settings": {"comment_rate_max": 1001}}, "settings.comment_rate_max"),
        ({"settings": {"comment_rate_window_ms": 99}}, "settings.comment_rate_window_ms"),
        ({"settings": {"slow_mode_ms": 3_600_001}}, "settings.slow_mode_ms"),
        ({"settings": {"display_rate": 0}}, "settings.display_rate"),
        ({"settings": {"display_rate": 1001}}, "settings.display_rate"),
        ({"settings": {"display_rate": 1.5}}, "settings.display_rate"),
        ({"settings": {"display_rate": "20"}}, "settings.display_rate"),
        ({"settings": {"display_rate": True}}, "settings.display_rate"),
        ({"settings": {"allow_anonymous": 1}}, "settings.allow_anonymous"),
        ({"settings": {"colour": 1}}, "settings.colour"),
        # One bad part fails the whole update: the valid title is not stored either.
        ({"title": "Valid", "settings": {"display_rate": 0}}, "settings.display_rate"),
    ],
)
async def test_patch_validation(
    http: httpx.AsyncClient, room: str, patch: dict[str, Any], field: str
) -> None:
    before = await get_room(http, room)
    response = await send(http, "PATCH", f"/api/rooms/{room}", host_token(room), patch)
    error = failed(response, 400, "invalid_field")
    assert error["details"] == {"field": field}
    assert await get_room(http, room) == before


async def test_patch_with_its_own_id_is_refused(http: httpx.AsyncClient, room: str) -> None:
    # docs/api.md says an `id` field "is accepted and ignored"; the code refuses it.
    response = await send(http, "PATCH", f"/api/rooms/{room}", host_token(room), {"id": room})
    assert failed(response, 400, "invalid_field")["details"] == {"field": "id"}


async def test_patch_settings_must_be_an_object(http: httpx.AsyncClient, room: str) -> None:
    response = await send(http, "PATCH", f"/api/rooms/{room}", host_token(room), {"settings": [1]})
    failed(response, 400, "invalid_field")


@pytest.mark.parametrize("raw", [b"", b"{}", b"[]", b"[1]", b"null", b"7"])
async def test_patch_needs_a_non_empty_object(
    http: httpx.AsyncClient, room: str, raw: bytes
) -> None:
    response = await send(http, "PATCH", f"/api/rooms/{room}", host_token(room), raw=raw)
    failed(response, 400, "bad_request")


async def test_patch_unknown_room_is_404(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    response = await send(http, "PATCH", f"/api/rooms/{room}", host_token(room), {"title": "T"})
    failed(response, 404, "room_not_found")


# ---- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("PATCH", ""), ("POST", "/tokens"), ("POST", "/pin"), ("POST", "/mutes"), ("POST", "/bans"),
     ("PUT", "/banned-words"), ("PUT", "/slow-mode")],
)  # fmt: skip
async def test_non_json_body_is_bad_request(
    http: httpx.AsyncClient, room: str, method: str, suffix: str
) -> None:
    response = await send(
        http, method, f"/api/rooms/{room}{suffix}", host_token(room), raw=b"{oops"
    )
    failed(response, 400, "bad_request")


async def test_create_with_non_json_body_is_bad_request(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    response = await send(http, "POST", "/api/rooms", host_token(room), raw=b"title=T")
    failed(response, 400, "bad_request")


async def test_body_over_64_kib_is_too_large(http: httpx.AsyncClient, room: str) -> None:
    path = f"/api/rooms/{room}"

    def body_of(size: int) -> bytes:
        prefix, suffix = b'{"title":"', b'"}'
        return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix

    at_limit = body_of(64 * 1024)
    assert len(at_limit) == 65536
    # Exactly 64 KiB is read (and then refused for its title); one byte more is too large.
    error = failed(
        await send(http, "PATCH", path, host_token(room), raw=at_limit), 400, "invalid_field"
    )
    assert error["details"] == {"field": "title"}
    failed(await send(http, "PATCH", path, host_token(room), raw=body_of(65537)), 400, "too_large")
    room_id = new_room_id()
    huge = orjson.dumps({"id": room_id, "title": "T", "pad": "x" * 70_000})
    failed(await send(http, "POST", "/api/rooms", host_token(room_id), raw=huge), 400, "too_large")


async def test_a_streamed_body_is_cut_off_at_the_limit(http: httpx.AsyncClient, room: str) -> None:
    """Without a Content-Length (chunked), the body is refused once it passes 64 KiB."""

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"title":"'
        for _ in range(100):  # 1.6 MiB
            yield b"x" * (16 * 1024)

    auth = {"Authorization": f"Bearer {host_token(room)}"}
    response = await http.patch(f"/api/rooms/{room}", content=endless(), headers=auth)
    failed(response, 400, "too_large")


# ---- state transitions ----------------------------------------------------------------------


async def test_go_live_then_end(http: httpx.AsyncClient, room_factory: RoomFactory) -> None:
    room = await room_factory(live=False)
    assert (await get_room(http, room))["state"] == "scheduled"
    body = ok(await send(http, "POST", f"/api/rooms/{room}/go-live", host_token(room)))
    assert set(body) == ROOM_FIELDS
    assert body["state"] == "live"
    assert isinstance(body["live_at"], int)
    assert body["ended_at"] is None
    body = ok(await send(http, "POST", f"/api/rooms/{room}/end", host_token(room)))
    assert body["state"] == "ended"
    assert body["ended_at"] >= body["live_at"]
    view = await get_room(http, room)
    assert view["state"] == "ended"
    assert view["ended_at"] == body["ended_at"]


async def test_go_live_twice_is_409(http: httpx.AsyncClient, room: str) -> None:
    live_at = (await get_room(http, room))["live_at"]
    error = failed(
        await send(http, "POST", f"/api/rooms/{room}/go-live", host_token(room)),
        409,
        "illegal_transition",
    )
    assert error["details"] == {"state": "live", "action": "go_live"}
    assert (await get_room(http, room))["live_at"] == live_at


async def test_end_is_final(http: httpx.AsyncClient, room: str) -> None:
    ok(await send(http, "POST", f"/api/rooms/{room}/end", host_token(room)))
    for action, name in [("go-live", "go_live"), ("end", "end")]:
        error = failed(
            await send(http, "POST", f"/api/rooms/{room}/{action}", host_token(room)),
            409,
            "illegal_transition",
        )
        assert error["details"] == {"state": "ended", "action": name}
    assert (await get_room(http, room))["state"] == "ended"


async def test_end_cancels_a_scheduled_room(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    room = await room_factory(live=False)
    body = ok(await send(http, "POST", f"/api/rooms/{room}/end", host_token(room)))
    assert body["state"] == "ended"
    assert body["live_at"] is None
    assert isinstance(body["ended_at"], int)


@pytest.mark.parametrize("action", ["go-live", "end"])
async def test_transition_of_unknown_room_is_404(http: httpx.AsyncClient, action: str) -> None:
    room = new_room_id()
    failed(
        await send(http, "POST", f"/api/rooms/{room}/{action}", host_token(room)),
        404,
        "room_not_found",
    )


async def test_transitions_are_logged(http: httpx.AsyncClient, room_factory: RoomFactory) -> None:
    room = await room_factory(live=False)
    ok(await send(http, "POST", f"/api/rooms/{room}/go-live", host_token(room)))
    ok(await send(http, "POST", f"/api/rooms/{room}/end", host_token(room)))
    body = ok(await http.get(f"/api/rooms/{room}/comments", params={"since": "0-0"}))
    states = [(e["kind"], e["state"], e["previous"]) for e in body["entries"]]
    assert states == [("room_state", "live", "scheduled"), ("room_state", "ended", "live")]
    assert body["offset"] == body["entries"][-1]["id"]


# ---- tokens ---------------------------------------------------------------------------------


async def test_mint_viewer_token_works_on_the_websocket(
    http: httpx.AsyncClient, engine: Engine, room: str
) -> None:
    body = ok(
        await send(
            http,
            "POST",
            f"/api/rooms/{room}/tokens",
            host_token(room),
            {"user": "shopper-1", "name": "Sam"},
        ),
        201,
    )
    assert set(body) == {"token", "role", "user"}
    assert body["role"] == "viewer"
    assert body["user"] == "shopper-1"
    claims = auth.verify(SECRET, body["token"], room=room)
    assert claims.role is Role.VIEWER
    assert claims.name == "Sam"
    assert claims.expires_at - claims.issued_at == auth.DEFAULT_TTL_S
    client = ViewerClient(engine.ws_url, room, body["token"], reconnect=False)
    try:
        welcome = await client.connect()
        assert welcome["role"] == "viewer"
        assert welcome["user"] == "shopper-1"
        assert welcome["name"] == "Sam"
        entry = await client.comment("minted and working")
        assert entry["user"] == "shopper-1"
        assert entry["role"] == "viewer"
    finally:
        await client.close()


async def test_mint_moderator_token(http: httpx.AsyncClient, engine: Engine, room: str) -> None:
    body = ok(
        await send(
            http,
            "POST",
            f"/api/rooms/{room}/tokens",
            host_token(room),
            {"user": "mia", "role": "moderator", "ttl": 3600},
        ),
        201,
    )
    assert body["role"] == "moderator"
    assert body["user"] == "mia"
    claims = auth.verify(SECRET, body["token"], room=room)
    assert claims.expires_at - claims.issued_at == 3600
    assert claims.name == "mia"
    client = ViewerClient(engine.ws_url, room, body["token"], reconnect=False)
    try:
        welcome = await client.connect()
        assert welcome["role"] == "moderator"
        assert welcome["user"] == "mia"
    finally:
        await client.close()
    # ...and it is accepted on the moderation routes.
    assert ok(await send(http, "GET", f"/api/rooms/{room}/bans", body["token"])) == {"users": []}


@pytest.mark.parametrize("ttl", [60, 604800])
async def test_mint_token_ttl_bounds_are_inclusive(
    http: httpx.AsyncClient, room: str, ttl: int
) -> None:
    body = ok(
        await send(
            http, "POST", f"/api/rooms/{room}/tokens", host_token(room), {"user": "u", "ttl": ttl}
        ),
        201,
    )
    claims = auth.verify(SECRET, body["token"], room=room)
    assert claims.expires_at - claims.issued_at == ttl


@pytest.mark.parametrize(
    ("name", "expected"), [(5, "u-7"), (None, "u-7"), ("N" * 50, "N" * 40), ("Ann", "Ann")]
)
async def test_mint_token_name(
    http: httpx.AsyncClient, room: str, name: Any, expected: str
) -> None:
    response = await send(
        http, "POST", f"/api/rooms/{room}/tokens", host_token(room), {"user": "u-7", "name": name}
    )
    assert auth.verify(SECRET, ok(response, 201)["token"], room=room).name == expected


async def test_mint_token_for_a_room_that_does_not_exist(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    body = ok(
        await send(http, "POST", f"/api/rooms/{room}/tokens", host_token(room), {"user": "u"}), 201
    )
    assert auth.verify(SECRET, body["token"], room=room).room == room


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"user": "u", "role": "host"}, {"field": "role"}),
        ({"user": "u", "role": "anonymous"}, {"field": "role"}),
        ({"user": "u", "role": "admin"}, {"field": "role"}),
        ({"user": "u", "role": 1}, {"field": "role"}),
        ({"user": "u", "ttl": 59}, {"field": "ttl"}),
        ({"user": "u", "ttl": 604801}, {"field": "ttl"}),
        ({"user": "u", "ttl": 0}, {"field": "ttl"}),
        ({"user": "u", "ttl": True}, {"field": "ttl"}),
        ({"user": "u", "ttl": "3600"}, {"field": "ttl"}),
        ({"user": "u", "ttl": 3600.5}, {"field": "ttl"}),
        ({}, {"field": "user"}),
        ({"user": 5}, {"field": "user"}),
        ({"user": "has space"}, {"field": "user"}),
        ({"user": "x" * 65}, {"field": "user"}),
    ],
)
async def test_mint_token_validation(
    http: httpx.AsyncClient, room: str, fields: dict[str, Any], details: dict[str, Any] | None
) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/tokens", host_token(room), fields)
    error = failed(response, 400, "invalid_field")
    assert error.get("details") == details


async def test_mint_token_body_must_be_an_object(http: httpx.AsyncClient, room: str) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/tokens", host_token(room), ["u"])
    failed(response, 400, "bad_request")


async def test_host_client_raises_wire_errors(engine: Engine, room: str) -> None:
    async with HostClient(engine.base_url, room, token(room, "moderator")) as client:
        with pytest.raises(LivecartClientError) as caught:
            await client.mint_token("someone")
    assert caught.value.code == "forbidden"
    assert caught.value.status == 403
    assert caught.value.details == {"needs": ["host"]}


# ---- comments -------------------------------------------------------------------------------


async def post_comments(viewer: ViewerClient, *texts: str) -> list[dict[str, Any]]:
    return [await viewer.comment(text) for text in texts]


async def test_list_comments(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    seat = await viewer_factory(room, "host", user="host-1")
    posted = await post_comments(seat, "one", "two", "three")
    body = ok(await http.get(f"/api/rooms/{room}/comments"))
    assert set(body) == {"offset", "entries"}
    assert body["offset"] == posted[-1]["id"]
    assert [e["text"] for e in body["entries"]] == ["one", "two", "three"]
    first = body["entries"][0]
    assert first == posted[0]
    assert first["kind"] == "comment"
    assert first["user"] == "host-1"
    assert first["role"] == "host"
    assert first["ts"] == int(first["id"].split("-")[0])


async def test_list_comments_limit_counts_log_entries(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    seat = await viewer_factory(room, "host", user="host-1")
    await post_comments(seat, "one", "two", "three")
    body = ok(await http.get(f"/api/rooms/{room}/comments", params={"limit": "2"}))
    assert [e["text"] for e in body["entries"]] == ["two", "three"]
    # The log also holds the go-live entry: the last 4 entries hold 3 comments.
    body = ok(await http.get(f"/api/rooms/{room}/comments", params={"limit": "4"}))
    assert [e["text"] for e in body["entries"]] == ["one", "two", "three"]


async def test_list_comments_of_an_empty_log(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    room = await room_factory(live=False)
    assert ok(await http.get(f"/api/rooms/{room}/comments")) == {"offset": "0-0", "entries": []}
    body = ok(await http.get(f"/api/rooms/{room}/comments", params={"since": "0-0"}))
    assert body == {"offset": "0-0", "entries": []}


@pytest.mark.parametrize("limit", ["1", "500"])
async def test_list_comments_limit_bounds_are_inclusive(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory, limit: str
) -> None:
    seat = await viewer_factory(room, "host", user="host-1")
    await post_comments(seat, "a", "b")
    body = ok(await http.get(f"/api/rooms/{room}/comments", params={"limit": limit}))
    assert [e["text"] for e in body["entries"]] == (["b"] if limit == "1" else ["a", "b"])


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "", "1.5", " 5", "²"])
async def test_list_comments_bad_limit(http: httpx.AsyncClient, room: str, limit: str) -> None:
    response = await http.get(f"/api/rooms/{room}/comments", params={"limit": limit})
    failed(response, 400, "invalid_field")


async def test_list_comments_since(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    seat = await viewer_factory(room, "host", user="host-1")
    one, two, three = await post_comments(seat, "one", "two", "three")
    path = f"/api/rooms/{room}/comments"
    body = ok(await http.get(path, params={"since": one["id"]}))
    assert body == {"offset": three["id"], "entries": [two, three]}
    assert ok(await http.get(path, params={"since": three["id"]})) == {
        "offset": three["id"],
        "entries": [],
    }
    # `since` returns every kind of entry, not only comments.
    everything = ok(await http.get(path, params={"since": "0-0"}))["entries"]
    assert [e["kind"] for e in everything] == ["room_state", "comment", "comment", "comment"]
    # More entries than `limit` after `since` is refused, not paginated.
    error = failed(
        await http.get(path, params={"since": "0-0", "limit": "3"}), 400, "invalid_field"
    )
    assert "since" in error["message"]
    ok(await http.get(path, params={"since": one["id"], "limit": "2"}))


@pytest.mark.parametrize(
    "since",
    ["abc", "123", "1-", "-1", "1-2-3", "1_0", "1" * 21 + "-0", "\u0661-\u0660", "0-" + "9" * 20],
)
async def test_list_comments_bad_since(http: httpx.AsyncClient, room: str, since: str) -> None:
    response = await http.get(f"/api/rooms/{room}/comments", params={"since": since})
    failed(response, 400, "invalid_field")


async def test_list_comments_since_too_old(
    http: httpx.AsyncClient,
    redis: aioredis.Redis,
    room: str,
    viewer_factory: ViewerFactory,
) -> None:
    seat = await viewer_factory(room, "host", user="host-1")
    one, _, three = await post_comments(seat, "one", "two", "three")
    await redis.xtrim(keys.room_stream(room), maxlen=1, approximate=False)
    path = f"/api/rooms/{room}/comments"
    error = failed(await http.get(path, params={"since": one["id"]}), 400, "invalid_field")
    assert "too old" in error["message"]
    # Without since the reader gets what is left.
    assert ok(await http.get(path)) == {"offset": three["id"], "entries": [three]}


async def test_private_room_comments_need_a_token(
    http: httpx.AsyncClient, room_factory: RoomFactory
) -> None:
    room = await room_factory(settings={"allow_anonymous": False})
    path = f"/api/rooms/{room}/comments"
    failed(await http.get(path), 401, "auth_required")
    failed(await send(http, "GET", path, token(new_room_id(), "viewer")), 401, "token_wrong_room")
    failed(await send(http, "GET", path, bad_token("expired", room)), 401, "token_expired")
    for role in ("viewer", "moderator", "host"):
        assert ok(await send(http, "GET", path, token(room, role)))["entries"] == []


async def test_list_comments_of_unknown_room_is_404(http: httpx.AsyncClient) -> None:
    failed(await http.get(f"/api/rooms/{new_room_id()}/comments"), 404, "room_not_found")


# ---- moderation -----------------------------------------------------------------------------


@pytest.fixture(params=["host", "moderator"])
def mod_token(request: pytest.FixtureRequest, room: str) -> str:
    """A token allowed on the moderation routes: both roles run every test."""
    return token(room, request.param, f"{request.param}-mod")


async def test_delete_comment(
    http: httpx.AsyncClient, room: str, mod_token: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room, user="bob")
    doomed, kept = await post_comments(viewer, "doomed", "kept")
    path = f"/api/rooms/{room}/comments"
    body = ok(await send(http, "DELETE", f"{path}/{doomed['id']}", mod_token))
    assert set(body) == {"deleted", "offset"}
    assert body["deleted"] == doomed["id"]
    listing = ok(await http.get(path))
    assert listing["entries"] == [kept]
    assert listing["offset"] == body["offset"]
    tail = ok(await http.get(path, params={"since": kept["id"]}))["entries"]
    assert len(tail) == 1
    assert tail[0]["id"] == body["offset"]
    assert tail[0]["kind"] == "comment_deleted"
    assert tail[0]["ref"] == doomed["id"]
    assert tail[0]["by"] == auth.verify(SECRET, mod_token, room=room).user
    # A second delete finds nothing.
    failed(
        await send(http, "DELETE", f"{path}/{doomed['id']}", mod_token), 404, "comment_not_found"
    )


async def delete_and_pin(
    http: httpx.AsyncClient, room: str, tok: str, entry_id: str
) -> list[httpx.Response]:
    return [
        await send(http, "DELETE", f"/api/rooms/{room}/comments/{entry_id}", tok),
        await send(http, "POST", f"/api/rooms/{room}/pin", tok, {"comment_id": entry_id}),
    ]


async def test_delete_or_pin_what_is_not_a_comment(
    http: httpx.AsyncClient, room: str, mod_token: str
) -> None:
    log = ok(await http.get(f"/api/rooms/{room}/comments", params={"since": "0-0"}))
    go_live_entry = log["entries"][0]
    assert go_live_entry["kind"] == "room_state"
    for entry_id in ["1-0", go_live_entry["id"]]:
        for response in await delete_and_pin(http, room, mod_token, entry_id):
            failed(response, 404, "comment_not_found")


# The last two match `^\d{1,20}-\d{1,20}$` in docs/api.md but are not ids Redis accepts.
BAD_ENTRY_IDS = ["abc", "1", "1-x", "12-0-0", "\u0661-0", "99999999999999999999-0"]


@pytest.mark.parametrize("entry_id", BAD_ENTRY_IDS)
async def test_delete_comment_with_bad_id(
    http: httpx.AsyncClient, room: str, mod_token: str, entry_id: str
) -> None:
    response = await send(http, "DELETE", f"/api/rooms/{room}/comments/{entry_id}", mod_token)
    failed(response, 400, "invalid_field")


@pytest.mark.parametrize(
    "body",
    [{}, {"comment_id": 5}, ["1-0"], *({"comment_id": entry_id} for entry_id in BAD_ENTRY_IDS)],
)
async def test_pin_needs_a_comment_id(
    http: httpx.AsyncClient, room: str, mod_token: str, body: Any
) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/pin", mod_token, body)
    failed(response, 400, refusal_of(body))


async def test_pin_and_unpin(
    http: httpx.AsyncClient, room: str, mod_token: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room, user="carol")
    first, second = await post_comments(viewer, "pin me", "then me")
    pin = f"/api/rooms/{room}/pin"
    body = ok(await send(http, "POST", pin, mod_token, {"comment_id": first["id"]}))
    assert set(body) == {"pinned", "offset"}
    assert body["pinned"] == first["id"]
    pinned = (await get_room(http, room))["pinned"]
    assert pinned == {
        "id": first["id"],
        "user": "carol",
        "name": "carol",
        "role": "viewer",
        "text": "pin me",
    }
    # A new pin replaces the old one.
    ok(await send(http, "POST", pin, mod_token, {"comment_id": second["id"]}))
    assert (await get_room(http, room))["pinned"]["id"] == second["id"]
    body = ok(await send(http, "DELETE", pin, mod_token))
    assert set(body) == {"pinned", "offset"}
    assert body["pinned"] is None
    assert (await get_room(http, room))["pinned"] is None
    log = ok(await http.get(f"/api/rooms/{room}/comments", params={"since": second["id"]}))
    assert [e["kind"] for e in log["entries"]] == [
        "comment_pinned",
        "comment_pinned",
        "comment_unpinned",
    ]
    assert log["offset"] == body["offset"]
    error = failed(await send(http, "DELETE", pin, mod_token), 404, "comment_not_found")
    assert "details" not in error


async def test_deleting_the_pinned_comment_unpins_it(
    http: httpx.AsyncClient, room: str, mod_token: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room, user="dave")
    (comment,) = await post_comments(viewer, "pinned then deleted")
    ok(await send(http, "POST", f"/api/rooms/{room}/pin", mod_token, {"comment_id": comment["id"]}))
    ok(await send(http, "DELETE", f"/api/rooms/{room}/comments/{comment['id']}", mod_token))
    assert (await get_room(http, room))["pinned"] is None


async def test_mute_and_unmute(
    http: httpx.AsyncClient, room: str, mod_token: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room, user="bob")
    before_ms = int(time.time() * 1000)
    body = ok(
        await send(
            http, "POST", f"/api/rooms/{room}/mutes", mod_token, {"user": "bob", "minutes": 10}
        )
    )
    assert set(body) == {"user", "muted_until"}
    assert body["user"] == "bob"
    expected = before_ms + 10 * 60_000
    assert expected - 5000 <= body["muted_until"] <= expected + 5000
    with pytest.raises(LivecartClientError) as caught:
        await viewer.comment("can anyone hear me?")
    assert caught.value.code == "muted"
    response = await send(http, "DELETE", f"/api/rooms/{room}/mutes/bob", mod_token)
    assert response.status_code == 204
    assert response.content == b""
    assert (await viewer.comment("back again"))["text"] == "back again"
    # Unmuting someone who is not muted is fine too.
    assert (
        await send(http, "DELETE", f"/api/rooms/{room}/mutes/nobody", mod_token)
    ).status_code == 204


@pytest.mark.parametrize("minutes", [1, 10080])
async def test_mute_minutes_bounds_are_inclusive(
    http: httpx.AsyncClient, room: str, minutes: int
) -> None:
    response = await send(
        http,
        "POST",
        f"/api/rooms/{room}/mutes",
        host_token(room),
        {"user": "bob", "minutes": minutes},
    )
    assert ok(response)["user"] == "bob"


@pytest.mark.parametrize(
    "body",
    [
        {"user": "bob", "minutes": 0},
        {"user": "bob", "minutes": 10081},
        {"user": "bob", "minutes": True},
        {"user": "bob", "minutes": 1.5},
        {"user": "bob"},
        {"minutes": 5},
        {"user": "bad user", "minutes": 5},
        {"user": 7, "minutes": 5},
        ["bob", 5],
    ],
)
async def test_mute_validation(http: httpx.AsyncClient, room: str, body: Any) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/mutes", host_token(room), body)
    failed(response, 400, refusal_of(body))


async def test_ban_list_and_unban(
    http: httpx.AsyncClient, room: str, mod_token: str, viewer_factory: ViewerFactory
) -> None:
    bans = f"/api/rooms/{room}/bans"
    assert ok(await send(http, "GET", bans, mod_token)) == {"users": []}
    viewer = await viewer_factory(room, user="zed", reconnect=False)
    for user in ("zed", "amy"):
        assert ok(await send(http, "POST", bans, mod_token, {"user": user})) == {
            "user": user,
            "banned": True,
        }
    assert ok(await send(http, "GET", bans, mod_token)) == {"users": ["amy", "zed"]}
    closed = await viewer.wait_for(lambda event: event["type"] == "closed")
    assert closed["code"] == 3501
    response = await send(http, "DELETE", f"{bans}/zed", mod_token)
    assert response.status_code == 204
    assert response.content == b""
    assert ok(await send(http, "GET", bans, mod_token)) == {"users": ["amy"]}


@pytest.mark.parametrize("body", [{}, {"user": ""}, {"user": "a/b"}, {"user": None}, "bob"])
async def test_ban_validation(http: httpx.AsyncClient, room: str, body: Any) -> None:
    response = await send(http, "POST", f"/api/rooms/{room}/bans", host_token(room), body)
    failed(response, 400, refusal_of(body))


@pytest.mark.parametrize("what", ["bans", "mutes"])
async def test_unban_and_unmute_validate_the_user(
    http: httpx.AsyncClient, room: str, what: str
) -> None:
    response = await send(http, "DELETE", f"/api/rooms/{room}/{what}/bad%20user", host_token(room))
    assert failed(response, 400, "invalid_field")["details"] == {"field": "user"}


async def test_banned_words(http: httpx.AsyncClient, room: str, mod_token: str) -> None:
    path = f"/api/rooms/{room}/banned-words"
    assert ok(await send(http, "GET", path, mod_token)) == {"words": []}
    body = ok(await send(http, "PUT", path, mod_token, {"words": ["Spam ", "bad", "", "bad"]}))
    assert body == {"words": ["Spam", "bad"]}
    assert ok(await send(http, "GET", path, mod_token)) == {"words": ["Spam", "bad"]}
    # PUT replaces the whole list.
    assert ok(await send(http, "PUT", path, mod_token, {"words": []})) == {"words": []}
    assert ok(await send(http, "GET", path, mod_token)) == {"words": []}


async def test_banned_words_limits_are_inclusive(http: httpx.AsyncClient, room: str) -> None:
    path = f"/api/rooms/{room}/banned-words"
    words = [f"w{n:03}" for n in range(500)]
    assert ok(await send(http, "PUT", path, host_token(room), {"words": words})) == {"words": words}
    longest = ["x" * 40]
    assert ok(await send(http, "PUT", path, host_token(room), {"words": longest})) == {
        "words": longest
    }
    # Trimming happens before the length check.
    padded = ["  " + "y" * 40 + "  "]
    assert ok(await send(http, "PUT", path, host_token(room), {"words": padded}))["words"] == [
        "y" * 40
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"words": [f"w{n}" for n in range(501)]},
        {"words": ["x" * 41]},
        {"words": "spam"},
        {"words": ["ok", 5]},
        {"words": None},
        {},
        ["spam"],
    ],
    ids=["too-many", "too-long", "not-a-list", "not-strings", "null", "missing", "not-an-object"],
)
async def test_banned_words_validation(http: httpx.AsyncClient, room: str, body: Any) -> None:
    path = f"/api/rooms/{room}/banned-words"
    ok(await send(http, "PUT", path, host_token(room), {"words": ["keep"]}))
    failed(await send(http, "PUT", path, host_token(room), body), 400, refusal_of(body))
    assert ok(await send(http, "GET", path, host_token(room))) == {"words": ["keep"]}


@pytest.mark.parametrize("seconds", [0, 5, 3600])
async def test_slow_mode(http: httpx.AsyncClient, room: str, mod_token: str, seconds: int) -> None:
    body = ok(
        await send(http, "PUT", f"/api/rooms/{room}/slow-mode", mod_token, {"seconds": seconds})
    )
    assert body == {"slow_mode_ms": seconds * 1000}
    settings = (await get_room(http, room))["settings"]
    assert settings == {**DEFAULT_SETTINGS, "slow_mode_ms": seconds * 1000}


@pytest.mark.parametrize(
    "body",
    [
        {"seconds": -1},
        {"seconds": 3601},
        {"seconds": True},
        {"seconds": "5"},
        {"seconds": 1.5},
        {},
        [5],
    ],
)
async def test_slow_mode_validation(http: httpx.AsyncClient, room: str, body: Any) -> None:
    response = await send(http, "PUT", f"/api/rooms/{room}/slow-mode", host_token(room), body)
    failed(response, 400, refusal_of(body))
    assert (await get_room(http, room))["settings"]["slow_mode_ms"] == 0


async def test_slow_mode_of_unknown_room_is_404(http: httpx.AsyncClient) -> None:
    room = new_room_id()
    response = await send(
        http, "PUT", f"/api/rooms/{room}/slow-mode", host_token(room), {"seconds": 5}
    )
    failed(response, 404, "room_not_found")


# ---- typed bodies: each refusal names its field ----------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("POST /tokens", {"user": "u", "ttl": None}, "ttl"),
        ("POST /tokens", {"user": "u", "role": ["viewer"]}, "role"),
        ("POST /revocations", {}, "user"),
        ("POST /revocations", {"user": 5}, "user"),
        ("POST /revocations", {"user": "bob\n"}, "user"),
        ("POST /pin", {"comment_id": ["1-0"]}, "comment_id"),
        ("POST /mutes", {"user": "bob", "minutes": "10"}, "minutes"),
        ("POST /mutes", {"user": "bob", "minutes": 10081}, "minutes"),
        ("POST /bans", {"user": ["bob"]}, "user"),
        ("PUT /banned-words", {"words": ["ok", 5]}, "words[1]"),
        ("PUT /banned-words", {"words": ["x" * 41]}, "words"),
        ("PUT /slow-mode", {"seconds": "5"}, "seconds"),
        ("PATCH", {"scheduled_at": {"ms": 1}}, "scheduled_at"),
        ("PATCH", {"settings": [1]}, "settings"),
        ("PATCH", {"title": "T", "zeta": 1, "alpha": 2}, "zeta"),  # the first one sent
    ],
)
async def test_typed_body_refusals_name_the_field(
    http: httpx.AsyncClient, room: str, route: str, body: Any, field: str
) -> None:
    """`route` is the method and the path after the room's (`POST /pin`)."""
    method, _, suffix = route.partition(" ")
    before = await get_room(http, room)
    response = await send(http, method, f"/api/rooms/{room}{suffix}", host_token(room), body)
    error = failed(response, 400, "invalid_field")
    assert error["details"] == {"field": field}
    assert error["message"].startswith(f"{field}: ")
    assert await get_room(http, room) == before


@pytest.mark.parametrize(
    "route", ["POST /pin", "POST /mutes", "POST /bans", "PUT /banned-words", "PUT /slow-mode",
              "POST /revocations", "POST /tokens", "PATCH"],
)  # fmt: skip
async def test_a_body_that_is_not_an_object_is_bad_request(
    http: httpx.AsyncClient, room: str, route: str
) -> None:
    """Every route that reads a body answers valid JSON that is not an object alike."""
    method, _, suffix = route.partition(" ")
    before = await get_room(http, room)
    response = await send(http, method, f"/api/rooms/{room}{suffix}", host_token(room), [5])
    failed(response, 400, "bad_request")
    assert await get_room(http, room) == before


# ---- storage failures -----------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


async def test_redis_outage_is_503_then_recovers(
    own_redis: EmbeddedRedis, engine_factory: EngineFactory
) -> None:
    engine = await engine_factory(redis_url=own_redis.url)
    room = new_room_id()
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=30) as http:
        ok(
            await send(http, "POST", "/api/rooms", host_token(room), {"id": room, "title": "T"}),
            201,
        )
        own_redis.kill()
        calls: list[tuple[str, str, Any]] = [
            ("GET", "/api/rooms", None),
            ("GET", f"/api/rooms/{room}", None),
            ("PATCH", f"/api/rooms/{room}", {"title": "Down"}),
            ("POST", f"/api/rooms/{room}/go-live", None),
            ("GET", f"/api/rooms/{room}/comments", None),
            ("GET", f"/api/rooms/{room}/bans", None),
        ]
        for method, path, body in calls:
            error = failed(
                await send(http, method, path, host_token(room), body), 503, "unavailable"
            )
            assert error["retryable"] is True
        other = new_room_id()
        response = await send(
            http, "POST", "/api/rooms", host_token(other), {"id": other, "title": "T"}
        )
        failed(response, 503, "unavailable")

        own_redis.restart()
        assert (await get_room(http, room))["title"] == "T"
        body = ok(await send(http, "POST", f"/api/rooms/{room}/go-live", host_token(room)))
        assert body["state"] == "live"
        ok(
            await send(http, "POST", "/api/rooms", host_token(other), {"id": other, "title": "T"}),
            201,
        )
