"""The room's catalog and run-of-show: products with SKUs (variants), prices in integer
minor units, the show order, and the product being presented ("pinned")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.core.errors import ConflictError, NotFoundError, ProtocolError
from engine.core.fields import invalid_field
from engine.core.identity import PRODUCT_ID_RE
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
CURRENCY_RE = re.compile(r"[A-Z]{3}")
MAX_PRICE = 10**12  # minor units
MAX_SKUS = 50
MAX_IMAGES = 10
MAX_TITLE = 120
MAX_DESCRIPTION = 4000
MAX_ATTRS = 5
_URL_RE = re.compile(r"https?://\S{1,2040}")


@dataclass(frozen=True, slots=True)
class Sku:
    sku: str
    list_price: int
    attrs: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"sku": self.sku, "list_price": self.list_price, "attrs": self.attrs}


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    title: str
    currency: str
    skus: tuple[Sku, ...]
    description: str = ""
    images: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "images": list(self.images),
            "currency": self.currency,
            "skus": [sku.to_wire() for sku in self.skus],
        }

    def sku(self, sku: str) -> Sku | None:
        return next((s for s in self.skus if s.sku == sku), None)

    def title_of(self, variant: Sku) -> str:
        """How a sale, a lot or a prize names one SKU: "Canvas sneaker (42, blue)"."""
        if not variant.attrs:
            return self.title
        return self.title + " (" + ", ".join(variant.attrs.values()) + ")"

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Product:
        return cls(
            id=data["id"],
            title=data["title"],
            description=data.get("description", ""),
            images=tuple(data.get("images", ())),
            currency=data["currency"],
            skus=tuple(Sku(s["sku"], s["list_price"], s.get("attrs", {})) for s in data["skus"]),
        )


def _string(body: dict[str, Any], name: str, max_len: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise invalid_field(name, f"1-{max_len} characters")
    return value.strip()


def _sku(raw: Any, index: int) -> Sku:
    where = f"skus[{index}]"
    if not isinstance(raw, dict):
        raise invalid_field(where, "an object with sku and list_price")
    sku = raw.get("sku")
    if not isinstance(sku, str) or not SKU_RE.fullmatch(sku):
        raise invalid_field(f"{where}.sku", "1-40 characters of A-Z, a-z, 0-9, '_', '.', '-'")
    price = raw.get("list_price")
    if not isinstance(price, int) or isinstance(price, bool) or not 0 <= price <= MAX_PRICE:
        raise invalid_field(f"{where}.list_price", "an integer amount of minor units (cents)")
    attrs = raw.get("attrs", {})
    if (
        not isinstance(attrs, dict)
        or len(attrs) > MAX_ATTRS
        or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 20 and 0 < len(v) <= 40
            for k, v in attrs.items()
        )
    ):
        raise invalid_field(
            f"{where}.attrs", f"up to {MAX_ATTRS} short text values, e.g. size, colour"
        )
    return Sku(sku, price, dict(attrs))


def validate_product(product_id: str, body: Any, base: Product | None = None) -> Product:
    """A product from host input; with `base`, fields not given keep their value."""
    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object", code="bad_request")
    allowed = {"title", "description", "images", "currency", "skus"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid_field(unknown[0], "unknown field")
    partial = base is not None
    title = _string(body, "title", MAX_TITLE, required=not partial)
    description = body.get("description", base.description if base else "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise invalid_field("description", f"at most {MAX_DESCRIPTION} characters")
    images = body.get("images", list(base.images) if base else [])
    if (
        not isinstance(images, list)
        or len(images) > MAX_IMAGES
        or not all(isinstance(i, str) and _URL_RE.fullmatch(i) for i in images)
    ):
        raise invalid_field("images", f"up to {MAX_IMAGES} http(s) URLs")
    currency = body.get("currency", base.currency if base else None)
    if not isinstance(currency, str) or not CURRENCY_RE.fullmatch(currency):
        raise invalid_field("currency", "an ISO 4217 code such as USD")
    raw_skus = body.get("skus", [s.to_wire() for s in base.skus] if base else None)
    if not isinstance(raw_skus, list) or not 1 <= len(raw_skus) <= MAX_SKUS:
        raise invalid_field("skus", f"1-{MAX_SKUS} SKUs")
    skus = tuple(_sku(raw, i) for i, raw in enumerate(raw_skus))
    if len({s.sku for s in skus}) != len(skus):
        raise invalid_field("skus", "each SKU once")
    return Product(
        id=product_id,
        title=title or (base.title if base else ""),
        description=description,
        images=tuple(images),
        currency=currency,
        skus=skus,
    )


def check_product_id(value: Any) -> str:
    if not isinstance(value, str) or not PRODUCT_ID_RE.fullmatch(value):
        raise invalid_field("product_id", "a product id such as 'p12'")
    return value


class Catalog:
    def __init__(self, redis: Redis, scripts: Scripts, log_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.log_maxlen = log_maxlen

    async def _save(self, room: str, product: Product, *, create: bool) -> Product:
        result = await self.scripts.product_save(
            self.redis,
            [keys.products(room), keys.skus(room), keys.lineup(room), keys.room_stream(room)],
            [
                product.id,
                orjson.dumps(product.to_wire()),
                "1" if create else "0",
                self.log_maxlen,
                keys.room_bus(room),
                *(s.sku for s in product.skus),
            ],
        )
        if result[0] != b"ok":
            code, detail = text(result[1]), text(result[2])
            if code == "sku_taken":
                raise ConflictError(f"SKU {detail!r} belongs to another product", code=code,
                                    details={"sku": detail})  # fmt: skip
            if code == "product_not_found":
                raise NotFoundError(f"no product {product.id!r}", code=code)
            raise ConflictError(f"product {product.id!r} exists", code=code)
        return product

    async def create(self, room: str, body: Any) -> Product:
        validate_product("p0", body)  # reject bad input before taking an id
        product_id = f"p{await self.redis.incr(keys.product_counter(room))}"
        return await self._save(room, validate_product(product_id, body), create=True)

    async def update(self, room: str, product_id: str, body: Any) -> Product:
        base = await self.get(room, product_id)
        return await self._save(room, validate_product(product_id, body, base), create=False)

    async def get(self, room: str, product_id: str) -> Product:
        raw = await self.redis.hget(keys.products(room), check_product_id(product_id))
        if raw is None:
            raise NotFoundError(f"no product {product_id!r} in this room", code="product_not_found")
        return Product.from_wire(orjson.loads(raw))

    async def exists(self, room: str, product_id: str) -> bool:
        return bool(await self.redis.hexists(keys.products(room), product_id))

    async def lineup(self, room: str) -> list[Product]:
        """The room's products in show order."""
        ids = await self.redis.lrange(keys.lineup(room), 0, -1)
        if not ids:
            return []
        raws = await self.redis.hmget(keys.products(room), ids)
        return [Product.from_wire(orjson.loads(raw)) for raw in raws if raw is not None]

    async def find_sku(self, room: str, sku: str) -> tuple[Product, Sku]:
        product_id = await self.redis.hget(keys.skus(room), sku)
        if product_id is None:
            raise NotFoundError(f"no SKU {sku!r} in this room", code="sku_not_found")
        product = await self.get(room, text(product_id))
        found = product.sku(sku)
        assert found is not None
        return product, found

    async def _show(self, room: str, action: str, ids: list[str]) -> str:
        result = await self.scripts.product_show(
            self.redis,
            [keys.room_meta(room), keys.products(room), keys.lineup(room), keys.room_stream(room)],
            [action, self.log_maxlen, keys.room_bus(room), *ids],
        )
        if result[0] != b"ok":
            code = text(result[1])
            if code == "product_not_found":
                raise NotFoundError(f"no product {ids[0]!r} in this room", code=code)
            raise ProtocolError(
                "products: the lineup must list every product of the room exactly once",
                code="invalid_field",
                details={"field": "products"},
            )
        return text(result[1])

    async def pin(self, room: str, product_id: str | None) -> str:
        """Present a product (None: present nothing); returns the log offset."""
        return await self._show(room, "pin", [check_product_id(product_id) if product_id else ""])

    async def reorder(self, room: str, product_ids: Any) -> str:
        if not isinstance(product_ids, list) or not all(isinstance(p, str) for p in product_ids):
            raise invalid_field("products", "a list of product ids")
        return await self._show(room, "order", [check_product_id(p) for p in product_ids])

    async def add_impressions(self, room: str, counts: dict[str, int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for product_id, count in counts.items():
                pipe.hincrby(keys.impressions(room), product_id, count)
            await pipe.execute()

    async def impressions(self, room: str) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.impressions(room))
        return {text(k): int(v) for k, v in raw.items()}
