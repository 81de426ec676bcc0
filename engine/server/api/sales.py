"""Flash-sale routes: the host launches, stops, tops up and extends sales; anyone can read
them with their live stock. Viewers grab, release and join waitlists over the WebSocket."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.commerce.sales import Extension, SaleTerms, TopUp, check_sale_id
from engine.core.clock import now_ms
from engine.server.api.base import HOSTS, SIGNED_IN, Call, route
from engine.store.meter import MarkerKind


def _sale_id(call: Call) -> str:
    return check_sale_id(call.request.path_params["sale"])


@route("/api/rooms/{room}/sales", ["GET"])
async def list_sales(call: Call) -> Any:
    await call.load_room()
    return {"sales": [sale.to_wire() for sale in await call.node.sales.list(call.room)]}


@route("/api/rooms/{room}/sales", ["POST"], roles=HOSTS, status=201)
async def launch_sale(call: Call) -> Any:
    """Launch a sale on a SKU: allotment, price, per-user limit, countdown, duration, hold."""
    await call.node.rooms.get(call.room)
    sale = await call.node.sales.create(call.room, await call.decode(SaleTerms))
    call.node.meter.mark(call.room, MarkerKind.FLASH_SALE,
                         f"Flash sale: {sale.allotment} {sale.title}")  # fmt: skip
    return sale.to_wire()


@route("/api/rooms/{room}/sales/{sale}", ["GET"])
async def get_sale(call: Call) -> Any:
    return (await call.node.sales.get(call.room, _sale_id(call))).to_wire()


@route("/api/rooms/{room}/sales/{sale}/stop", ["POST"], roles=HOSTS)
async def stop_sale(call: Call) -> Any:
    return (await call.node.sales.stop(call.room, _sale_id(call))).to_wire()


@route("/api/rooms/{room}/sales/{sale}/topup", ["POST"], roles=HOSTS)
async def top_up_sale(call: Call) -> Any:
    sale_id = _sale_id(call)
    units = (await call.decode(TopUp)).units
    return (await call.node.sales.top_up(call.room, sale_id, units)).to_wire()


@route("/api/rooms/{room}/sales/{sale}/extend", ["POST"], roles=HOSTS)
async def extend_sale(call: Call) -> Any:
    sale_id = _sale_id(call)
    seconds = (await call.decode(Extension)).seconds
    return (await call.node.sales.extend(call.room, sale_id, seconds)).to_wire()


@route("/api/rooms/{room}/reservations/mine", ["GET"], roles=SIGNED_IN)
async def my_reservations(call: Call) -> Any:
    """The token user's units still held (not yet ordered, not expired), in any sale of the
    room, auction lots and prizes included: a reloaded page or a second phone shows them."""
    assert call.claims is not None
    await call.load_room()
    sale_ids = await call.node.sales.ids(call.room)
    held = await call.node.stock.held_by(call.room, call.claims.user, sale_ids, now_ms())
    return {"reservations": held}


ROUTES: list[Route] = [list_sales, launch_sale, get_sale, stop_sale, top_up_sale, extend_sale,
                       my_reservations]  # fmt: skip
