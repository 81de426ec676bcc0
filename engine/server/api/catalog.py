"""Catalog and run-of-show routes: products with SKUs, the show order, the pinned product.
Reading is public (in a private room, any token for it: engine/server/api/base.py); changing is
the host's."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.commerce.catalog import (
    Lineup,
    ProductChanges,
    ProductPin,
    ProductTerms,
    check_product_id,
)
from engine.server.api.base import HOSTS, Call, route
from engine.store.meter import MarkerKind


@route("/api/rooms/{room}/products", ["GET"])
async def list_products(call: Call) -> Any:
    """The room's products in show order, with card impressions so far."""
    await call.load_room()
    impressions = await call.node.catalog.impressions(call.room)
    return {
        "products": [
            {**p.to_wire(), "impressions": impressions.get(p.id, 0)}
            for p in await call.node.catalog.lineup(call.room)
        ]
    }


@route("/api/rooms/{room}/products", ["POST"], roles=HOSTS, status=201)
async def create_product(call: Call) -> Any:
    await call.node.rooms.get(call.room)
    return (await call.node.catalog.create(call.room, await call.decode(ProductTerms))).to_wire()


@route("/api/rooms/{room}/products/{product}", ["GET"])
async def get_product(call: Call) -> Any:
    product_id = check_product_id(call.request.path_params["product"])
    return (await call.node.catalog.get(call.room, product_id)).to_wire()


@route("/api/rooms/{room}/products/{product}", ["PATCH"], roles=HOSTS)
async def update_product(call: Call) -> Any:
    """A body that is not JSON is refused first, then a product that does not exist, then the
    body's fields (docs/api.md)."""
    product_id = check_product_id(call.request.path_params["product"])
    await call.json()
    base = await call.node.catalog.get(call.room, product_id)
    changes = await call.decode(ProductChanges)
    return (await call.node.catalog.update(call.room, base, changes)).to_wire()


@route("/api/rooms/{room}/lineup", ["PUT"], roles=HOSTS)
async def reorder_lineup(call: Call) -> Any:
    lineup = await call.decode(Lineup)
    offset = await call.node.catalog.reorder(call.room, lineup.products)
    return {"products": lineup.products, "offset": offset}


@route("/api/rooms/{room}/pinned-product", ["PUT"], roles=HOSTS)
async def pin_product(call: Call) -> Any:
    """Present a product now: every viewer's product card changes on the next tick."""
    product_id = (await call.decode(ProductPin)).product_id
    offset = await call.node.catalog.pin(call.room, product_id)
    product = await call.node.catalog.get(call.room, product_id)
    call.node.meter.mark(call.room, MarkerKind.PIN, f"{product.title} pinned")
    return {"pinned_product": product_id, "offset": offset}


@route("/api/rooms/{room}/pinned-product", ["DELETE"], roles=HOSTS)
async def unpin_product(call: Call) -> Any:
    offset = await call.node.catalog.pin(call.room, None)
    return {"pinned_product": None, "offset": offset}


ROUTES: list[Route] = [
    list_products, create_product, get_product, update_product, reorder_lineup,
    pin_product, unpin_product,
]  # fmt: skip
