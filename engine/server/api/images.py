"""Product images: the host uploads one (`POST /api/rooms/{room}/images`, the raw bytes as
the body) and names its URL in a product's `images`; anyone loads it from `GET
/images/{name}`, cached forever (docs/api.md § Product images). The checks are
engine/commerce/images.py's; the bytes go to the node's `ImageStore`."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.commerce.images import (
    EXTENSIONS,
    MAX_IMAGE_BYTES,
    check_name,
    content_type_of,
    media_type,
    sniff,
)
from engine.core.errors import (
    NotFoundError,
    RejectedError,
    TooLargeError,
    UnavailableError,
    UnsupportedTypeError,
)
from engine.server.api.base import HOSTS, Call, error_response, node_of, route

# A URL's bytes never change (the name is their sha256): cache it for a year, unrevalidated.
CACHE_FOREVER = "public, max-age=31536000, immutable"
# A file is never read as another type than the one it is served as.
IMAGE_HEADERS = {"cache-control": CACHE_FOREVER, "x-content-type-options": "nosniff"}


def _too_large() -> TooLargeError:
    return TooLargeError(f"an image may be at most {MAX_IMAGE_BYTES} bytes",
                         details={"max_bytes": MAX_IMAGE_BYTES})  # fmt: skip


def declared_type(call: Call) -> str:
    """The body's declared type, if the engine takes it (`image_type_unsupported`, 415)."""
    declared = media_type(call.request.headers.get("content-type"))
    if declared not in EXTENSIONS:
        why = " (SVG can carry script)" if declared == "image/svg+xml" else ""
        raise UnsupportedTypeError(
            f"Content-Type {declared[:60] or 'missing'!r} is not taken{why}; send one of "
            f"{', '.join(EXTENSIONS)}",
            details={"types": list(EXTENSIONS)},
        )
    return declared


async def read_image(call: Call) -> bytes:
    """The body, up to MAX_IMAGE_BYTES: a declared length above it is refused unread, and a
    body that passes it is refused at the first chunk past it (never read to its end)."""
    return await call.body(MAX_IMAGE_BYTES, _too_large)


@route("/api/rooms/{room}/images", ["POST"], roles=HOSTS, status=201)
async def upload_image(call: Call) -> Any:
    """Checked in this order: the host's token (the route), the room, the declared type,
    the size, an empty body, the bytes being the declared type."""
    await call.load_room()
    declared = declared_type(call)
    data = await read_image(call)
    if not data:
        raise RejectedError("the body is empty: send the image's bytes", code="image_empty")
    actual = sniff(data)
    if actual != declared:
        raise RejectedError(
            f"the bytes are {'not an image the engine takes' if actual is None else actual}, "
            f"not {declared}",
            code="image_type_mismatch",
            details={"declared": declared, "detected": actual},
        )
    return (await call.node.images.put(data, declared)).to_wire()


def _matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match against a strong ETag (weak comparison, as RFC 9110 asks for GET)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or f'"{etag}"' in tags


async def serve_image(request: Request) -> Response:
    """GET /images/{name}: public (viewers load them), no auth, any origin's page may show it."""
    name = request.path_params["name"]
    match = check_name(name)
    images = node_of(request).images
    missing = NotFoundError(f"no image {name[:80]!r}", code="image_not_found")
    try:
        if match is None or not await images.exists(name):
            return error_response(missing)
        headers = {**IMAGE_HEADERS, "etag": f'"{match.group(1)}"'}
        if _matches(request.headers.get("if-none-match", ""), match.group(1)):
            return Response(status_code=304, headers=headers)
        data = await images.get(name)
    except (RedisError, OSError):  # another store may be remote
        return error_response(UnavailableError("image storage unavailable; retry"))
    if data is None:
        return error_response(missing)
    return Response(data, media_type=content_type_of(name), headers=headers)


ROUTES: list[Route] = [upload_image]
SERVE = Route("/images/{name}", serve_image, methods=["GET"])
