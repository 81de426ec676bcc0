"""The room's catalog and run-of-show: products with SKUs (variants), prices in integer
minor units, the show order, and the product being presented ("pinned"); the bodies a host
sends to change them."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Annotated, Any

import orjson
from msgspec import UNSET, Meta, Struct, UnsetType
from redis.asyncio import Redis

from engine.core.errors import ConflictError, NotFoundError, ProtocolError
from engine.core.fields import convert_field, invalid_field
from engine.core.identity import PRODUCT_ID_RE
from engine.core.media_urls import MAX_MEDIA_URL, is_media_url
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

# Patterns end in `\Z`: msgspec searches them, and `$` would let a final newline through.
SkuCode = Annotated[str, Meta(pattern=rf"^{SKU_RE.pattern}\Z")]
Currency = Annotated[str, Meta(pattern=rf"^{CURRENCY_RE.pattern}\Z")]
ProductId = Annotated[str, Meta(pattern=rf"^{PRODUCT_ID_RE.pattern}\Z")]
Title = Annotated[str, Meta(min_length=1, max_length=MAX_TITLE)]  # and something visible
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION)]
# Each item is checked by `_check_images`: a bad one is named `images` (docs/api.md), where
# a schema of the items would name it `images[<i>]`.
Images = Annotated[list[Any], Meta(max_length=MAX_IMAGES)]
# Each item is checked as a `Sku` by `_skus_of`: a refusal is named `skus[<i>].<field>`
# (docs/api.md), where a nested schema would name it `skus[<i>]`.
Skus = Annotated[list[dict[str, Any]], Meta(min_length=1, max_length=MAX_SKUS)]


class Sku(Struct, frozen=True):
    """One variant of a product; as a schema, one item of a body's `skus` (other fields
    of the item are ignored)."""

    sku: SkuCode
    list_price: Annotated[int, Meta(ge=0, le=MAX_PRICE)]
    attrs: Annotated[
        dict[Annotated[str, Meta(min_length=1, max_length=20)],
             Annotated[str, Meta(min_length=1, max_length=40)]],
        Meta(max_length=MAX_ATTRS),
    ] = {}  # fmt: skip

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


# ---- what a host sends ------------------------------------------------------------------


class ProductTerms(Struct, frozen=True, forbid_unknown_fields=True):
    """The body that creates a product: the product object without `id` (docs/api.md)."""

    title: Title
    currency: Currency
    skus: Skus
    description: Description = ""
    images: Images = []

    def __post_init__(self) -> None:
        _check_title(self.title)
        _check_images(self.images)
        _skus_of(self.skus)

    def product(self, product_id: str) -> Product:
        return Product(id=product_id, title=self.title.strip(), currency=self.currency,
                       skus=_skus_of(self.skus), description=self.description,
                       images=tuple(self.images))  # fmt: skip


class ProductChanges(Struct, frozen=True, forbid_unknown_fields=True):
    """The body of PATCH .../products/{product}: the fields given replace the product's
    (`skus` the whole list); a `null` title keeps the title."""

    title: Title | UnsetType | None = UNSET
    currency: Currency | UnsetType = UNSET
    skus: Skus | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    images: Images | UnsetType = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.title, str):
            _check_title(self.title)
        if self.images is not UNSET:
            _check_images(self.images)
        if self.skus is not UNSET:
            _skus_of(self.skus)

    def applied_to(self, base: Product) -> Product:
        changed: dict[str, Any] = {}
        if isinstance(self.title, str):
            changed["title"] = self.title.strip()
        if self.currency is not UNSET:
            changed["currency"] = self.currency
        if self.skus is not UNSET:
            changed["skus"] = _skus_of(self.skus)
        if self.description is not UNSET:
            changed["description"] = self.description
        if self.images is not UNSET:
            changed["images"] = tuple(self.images)
        return replace(base, **changed)


def _check_title(title: str) -> None:
    if not title.strip():
        raise invalid_field("title", f"1-{MAX_TITLE} characters")


def _check_images(images: list[Any]) -> None:
    if not all(is_media_url(url) for url in images):
        raise invalid_field(
            "images", f"up to {MAX_IMAGES} http(s) URLs or /paths, each <= {MAX_MEDIA_URL} chars"
        )


def _skus_of(items: list[dict[str, Any]]) -> tuple[Sku, ...]:
    skus = tuple(convert_field(item, Sku, f"skus[{index}]") for index, item in enumerate(items))
    if len({s.sku for s in skus}) != len(skus):
        raise invalid_field("skus", "each SKU once")
    return skus


class Lineup(Struct, frozen=True):
    """The body of PUT .../lineup: every product of the room, once, in show order."""

    # Not list[str]: an item that is not a string is named `products` (docs/api.md).
    products: list[Any]

    def __post_init__(self) -> None:
        if not all(isinstance(product_id, str) for product_id in self.products):
            raise invalid_field("products", "a list of product ids")


class ProductPin(Struct, frozen=True):
    """The body of PUT .../pinned-product."""

    product_id: ProductId


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

    async def create(self, room: str, terms: ProductTerms) -> Product:
        product_id = f"p{await self.redis.incr(keys.product_counter(room))}"
        return await self._save(room, terms.product(product_id), create=True)

    async def update(self, room: str, base: Product, changes: ProductChanges) -> Product:
        """Apply `changes` to `base`, the product as the caller read it."""
        return await self._save(room, changes.applied_to(base), create=False)

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

    async def reorder(self, room: str, product_ids: list[str]) -> str:
        return await self._show(room, "order", [check_product_id(p) for p in product_ids])

    async def add_impressions(self, room: str, counts: dict[str, int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for product_id, count in counts.items():
                pipe.hincrby(keys.impressions(room), product_id, count)
            await pipe.execute()

    async def impressions(self, room: str) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.impressions(room))
        return {text(k): int(v) for k, v in raw.items()}
