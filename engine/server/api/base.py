"""What every JSON route shares: the `Call` a handler receives (request, node, room,
verified claims, body helpers), the `route` decorator, and error responses.

Host and moderator routes authenticate with `Authorization: Bearer <token>` for the
room in the path; errors are `{"error": {"code", "message", "retryable", "details"?}}`
with the error's HTTP status (docs/api.md). A room's routes without a role (its reads) are
public only while the room takes anonymous viewers: a private room (`allow_anonymous`
false) asks them for a token of that room, as its WebSocket does (`Call.admit_reader`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.core.errors import (
    AuthError,
    ForbiddenError,
    LivecartError,
    ProtocolError,
    RateLimitedError,
    UnavailableError,
)
from engine.core.fields import invalid_field, refused_field
from engine.core.identity import Author, Role
from engine.core.metrics import METRICS
from engine.core.stream_ids import is_stream_id
from engine.rooms import auth
from engine.rooms.rooms import Room
from engine.server.api.throttle import CallerRate, retry_after_header
from engine.server.node import Node
from engine.store.keys import check_room_id

MAX_BODY_BYTES = 64 * 1024
MODERATORS = frozenset({Role.HOST, Role.MODERATOR})
HOSTS = frozenset({Role.HOST})
SIGNED_IN = frozenset({Role.HOST, Role.MODERATOR, Role.VIEWER})
BodyT = TypeVar("BodyT")


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: LivecartError) -> Response:
    METRICS.errors.inc(1, error.code)
    return OrjsonResponse({"error": error.to_wire()}, status_code=error.http_status)


def node_of(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


@dataclass(slots=True)
class Call:
    """One API call: what a handler needs, checked before it runs."""

    request: Request
    node: Node
    room: str
    claims: auth.Claims | None = None
    _body: bytes | None = None
    _room: Room | None = None

    async def load_room(self) -> Room:
        """The path's room (`404 room_not_found` if there is none), read once per call."""
        if self._room is None:
            self._room = await self.node.rooms.get(self.room)
        return self._room

    async def admit_reader(self) -> auth.Claims | None:
        """Let a caller read the path's room: anyone while the room takes anonymous viewers
        (`allow_anonymous`); in a private room only a valid token for it, of any role, not
        revoked and whose user is not banned (`authorize`), as at the WebSocket's `hello`
        (engine/realtime/gateway.py). Claims are returned when a token was checked, else None."""
        room = await self.load_room()
        if room.settings.allow_anonymous:
            return None
        return await self.authorize(SIGNED_IN)

    def author(self) -> Author:
        """Who made this call, from its verified token (a route with roles has one)."""
        assert self.claims is not None
        return Author(self.claims.user, self.claims.name, self.claims.role)

    async def authorize(self, roles: frozenset[Role], room: str | None = None) -> auth.Claims:
        """The bearer token's claims for `room` (default: the path's), if its role is in
        `roles` and the token is neither revoked nor its user banned (engine/rooms/access.py)."""
        token = auth.bearer_token(self.request.headers.get("authorization"))
        if token is None:
            raise AuthError("send Authorization: Bearer <token>", code="auth_required")
        claims = await self.node.verify_token(token, room or self.room)
        if claims.role not in roles:
            raise ForbiddenError(
                f"a {claims.role.value} token cannot do this",
                code="forbidden",
                details={"needs": sorted(r.value for r in roles)},
            )
        await self.node.access.check(claims)
        return claims

    async def body(
        self, limit: int = MAX_BODY_BYTES, too_large: Callable[[], Exception] | None = None
    ) -> bytes:
        """The request body, refused (`too_large()`, by default `too_large`) as soon as it
        passes `limit` bytes: a declared length above it is refused unread, and a body sent
        without one is read only up to the limit. Read once; later calls get the same bytes."""
        if self._body is not None:
            return self._body
        refuse = too_large or _too_large
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise refuse()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                raise refuse()
            chunks.append(chunk)
        self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        body = await self.body()
        try:
            return orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            raise ProtocolError("body is not valid JSON", code="bad_request") from None

    async def decode(self, schema: type[BodyT]) -> BodyT:
        """The body decoded into its typed definition (a msgspec Struct; an empty body is
        `{}`), validated in the same pass: `bad_request` for a body that is not a JSON
        object, `invalid_field` naming the first field the schema refuses. A rule across
        fields raises its own error from the struct's `__post_init__`."""
        try:
            return msgspec.json.decode(await self.body() or b"{}", type=schema)
        except msgspec.ValidationError as refusal:
            field, why = refused_field(refusal)
            if field is None:
                raise _not_an_object() from None
            raise invalid_field(field, why) from None
        except msgspec.DecodeError:
            raise ProtocolError("body is not valid JSON", code="bad_request") from None


def entry_id(value: Any, name: str = "comment_id") -> str:
    if not is_stream_id(value):
        raise invalid_field(name, "an entry id such as '1732212345678-0'")
    return value


Handler = Callable[[Call], Awaitable[Any]]


def _not_an_object() -> ProtocolError:
    return ProtocolError("the body must be a JSON object", code="bad_request")


def _too_large() -> ProtocolError:
    return ProtocolError(f"body larger than {MAX_BODY_BYTES} bytes", code="too_large")


class ApiRoute(Route):
    """A JSON route, knowing the roles it needs: None for a public route, and for a room's
    read (`{room}` in the path) public only in a room open to anonymous viewers."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        *,
        methods: list[str],
        name: str,
        roles: frozenset[Role] | None,
    ) -> None:
        super().__init__(path, endpoint, methods=methods, name=name)
        self.roles = roles

    @property
    def reads_room(self) -> bool:
        return reads_room(self.path, self.roles)


def reads_room(path: str, roles: frozenset[Role] | None) -> bool:
    """A room's route without a role (a read): `Call.admit_reader` decides who may call it."""
    return roles is None and "{room}" in path


def route(
    path: str, methods: list[str], *, roles: frozenset[Role] | None = None, status: int = 200
) -> Callable[[Handler], Route]:
    """A JSON route. With `roles`, the bearer token must be for the path's room and carry
    one of them. Without, a route on a room (`{room}` in its path) is public in a room that
    takes anonymous viewers and needs any token for the room in a private one
    (`Call.admit_reader`): no room read can be added that skips the check. The handler
    returns the body (None means 204, a Response is sent as it is); errors become bodies."""
    room_read = reads_room(path, roles)
    # A viewer's write (bid, claim, entry, checkout...): held to the socket's frame rate.
    throttled = roles is not None and Role.VIEWER in roles and methods != ["GET"]

    def wrap(handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                room = request.path_params.get("room", "")
                if room:
                    check_room_id(room)
                call = Call(request, node_of(request), room)
                if roles is not None:
                    call.claims = await call.authorize(roles)
                    if throttled and call.claims.role not in MODERATORS:
                        caller_rate: CallerRate = request.app.state.caller_rate
                        caller_rate.admit(room, call.claims.user)
                elif room_read:
                    call.claims = await call.admit_reader()
                result = await handler(call)
            except RateLimitedError as error:
                limited = error_response(error)
                limited.headers["Retry-After"] = retry_after_header(error)
                return limited
            except LivecartError as error:
                return error_response(error)
            except (RedisError, OSError):
                return error_response(UnavailableError("storage unavailable; retry"))
            if result is None:
                return Response(status_code=204)
            if isinstance(result, Response):  # a file (reports), not JSON
                return result
            return OrjsonResponse(result, status_code=status)

        return ApiRoute(path, endpoint, methods=methods, name=handler.__name__, roles=roles)

    return wrap
