"""The post-live report over HTTP, for hosts and moderators (the console's "Post-live
report"): the same files `livecart report ROOM --out DIR` writes, built on each request."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from engine.core.errors import NotFoundError
from engine.insights.report import build, load_show
from engine.server.api.base import MODERATORS, Call, route

MEDIA_TYPES = {
    "report.html": "text/html; charset=utf-8",
    "summary.json": "application/json",
    "metrics.csv": "text/csv; charset=utf-8",
    "orders.csv": "text/csv; charset=utf-8",
}


def origin_of(call: Call) -> str:
    """The origin the caller reached the engine at: the console opens report.html as a
    `blob:` page, where a product image's bare `/images/...` path would not resolve."""
    url = call.request.url
    return f"{url.scheme}://{url.netloc}"


async def _file(call: Call, name: str) -> Response:
    # The books, when kept, give the report its new and returning buyers.
    ledger = call.node.ledger.pool if call.node.ledger is not None else None
    show = await load_show(call.node.redis, call.room, ledger=ledger)
    files = build(show, origin=origin_of(call))
    headers = {"Cache-Control": "no-store"}
    if name != "report.html":
        headers["Content-Disposition"] = f'attachment; filename="{call.room}-{name}"'
    return Response(files[name], media_type=MEDIA_TYPES[name], headers=headers)


@route("/api/rooms/{room}/report", ["GET"], roles=MODERATORS)
async def report_page(call: Call) -> Any:
    """report.html: inline CSS and SVG charts, no scripts; its only requests are the
    products' thumbnails (its Content-Security-Policy allows images and nothing else)."""
    return await _file(call, "report.html")


@route("/api/rooms/{room}/report/{name}", ["GET"], roles=MODERATORS)
async def report_file(call: Call) -> Any:
    """summary.json, metrics.csv or orders.csv."""
    name = call.request.path_params["name"]
    if name not in MEDIA_TYPES:
        raise NotFoundError(f"no report file {name[:40]!r}; one of {', '.join(MEDIA_TYPES)}",
                            code="report_file_not_found")  # fmt: skip
    return await _file(call, name)


ROUTES: list[Route] = [report_page, report_file]
