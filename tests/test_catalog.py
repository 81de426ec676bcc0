"""engine.commerce.catalog: product validation, and the catalog's Redis storage (products, the SKU
index, the run-of-show, the pinned product, impressions)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.commerce.catalog import (
    MAX_PRICE,
    Catalog,
    Lineup,
    Product,
    ProductChanges,
    ProductTerms,
    Sku,
    check_product_id,
)
from engine.core.errors import ConflictError, LivecartError, NotFoundError, ProtocolError
from engine.store import keys
from engine.store.roomlog import Entry, RoomLog
from engine.store.scripts import Scripts
from tests.conftest import decoded

JACKET: dict[str, Any] = {
    "title": "Denim jacket",
    "currency": "USD",
    "skus": [
        {"sku": "DJ-S", "list_price": 4900, "attrs": {"size": "S"}},
        {"sku": "DJ-M", "list_price": 5200, "attrs": {"size": "M"}},
    ],
}


def product_body(*sku_ids: str, **fields: Any) -> dict[str, Any]:
    """A valid product body with the given SKUs (list price 1000 each)."""
    skus = [{"sku": s, "list_price": 1000} for s in sku_ids or ("X-1",)]
    return {"title": "Thing", "currency": "EUR", "skus": skus, **fields}


def one_sku(**sku: Any) -> dict[str, Any]:
    """A product body whose only SKU is `sku` (over a valid default)."""
    return {"title": "T", "currency": "USD", "skus": [{"sku": "A-1", "list_price": 100, **sku}]}


async def product_of(product_id: str, body: Any, base: Product | None = None) -> Product:
    """The product a JSON body makes: a new one (ProductTerms, as POST .../products), or
    with `base`, `base` changed (ProductChanges, as PATCH .../products/{product})."""
    if base is None:
        return (await decoded(body, ProductTerms)).product(product_id)
    return (await decoded(body, ProductChanges)).applied_to(base)


async def invalid(body: Any, base: Product | None = None) -> str:
    """Decode `body`, expecting invalid_field; return the field it names."""
    with pytest.raises(ProtocolError) as info:
        await product_of("p1", body, base)
    assert info.value.code == "invalid_field"
    field: str = info.value.details["field"]
    return field


# ---- ProductTerms and ProductChanges: what a host sends -------------------------------------


async def test_validate_full_product() -> None:
    product = await product_of(
        "p7",
        {
            "title": "  Denim jacket  ",
            "description": "Raw selvedge.",
            "images": ["https://cdn.example/a.jpg", "http://cdn.example/b.png"],
            "currency": "USD",
            "skus": [
                {"sku": "DJ-S", "list_price": 4900, "attrs": {"size": "S", "colour": "Blue"}},
                {"sku": "DJ-M", "list_price": 0},
            ],
        },
    )
    assert product == Product(
        id="p7",
        title="Denim jacket",
        currency="USD",
        skus=(Sku("DJ-S", 4900, {"size": "S", "colour": "Blue"}), Sku("DJ-M", 0, {})),
        description="Raw selvedge.",
        images=("https://cdn.example/a.jpg", "http://cdn.example/b.png"),
    )
    assert product.to_wire() == {
        "id": "p7",
        "title": "Denim jacket",
        "description": "Raw selvedge.",
        "images": ["https://cdn.example/a.jpg", "http://cdn.example/b.png"],
        "currency": "USD",
        "skus": [
            {"sku": "DJ-S", "list_price": 4900, "attrs": {"size": "S", "colour": "Blue"}},
            {"sku": "DJ-M", "list_price": 0, "attrs": {}},
        ],
    }
    assert Product.from_wire(product.to_wire()) == product
    assert product.sku("DJ-M") == Sku("DJ-M", 0, {})
    assert product.sku("DJ-L") is None


async def test_validate_minimal_product_defaults() -> None:
    product = await product_of("p1", JACKET)
    assert product.description == ""
    assert product.images == ()
    assert product.title == "Denim jacket"
    assert [s.sku for s in product.skus] == ["DJ-S", "DJ-M"]


@pytest.mark.parametrize("body", [None, [], "title", 12, [JACKET]])
async def test_validate_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        await product_of("p1", body)
    assert info.value.code == "bad_request"


@pytest.mark.parametrize(
    ("extra", "field"),
    # Several unknown fields: the first one sent is named.
    [({"price": 1}, "price"), ({"zeta": 1, "colour": "red"}, "zeta"), ({"id": "p9"}, "id")],
)
async def test_validate_unknown_fields(extra: dict[str, Any], field: str) -> None:
    assert await invalid({**JACKET, **extra}) == field


@pytest.mark.parametrize("title", [None, "", "   ", "x" * 121, 5, ["t"]])
async def test_validate_title_rejected(title: Any) -> None:
    body = {**JACKET, "title": title}
    if title is None:
        del body["title"]
    assert await invalid(body) == "title"


async def test_validate_title_limits() -> None:
    assert (await product_of("p1", {**JACKET, "title": "x" * 120})).title == "x" * 120
    assert (await product_of("p1", {**JACKET, "title": " y "})).title == "y"


@pytest.mark.parametrize("description", ["x" * 4001, 5, None, ["d"]])
async def test_validate_description_rejected(description: Any) -> None:
    assert await invalid({**JACKET, "description": description}) == "description"


async def test_validate_description_limits() -> None:
    assert (await product_of("p1", {**JACKET, "description": "x" * 4000})).description == "x" * 4000
    assert (await product_of("p1", {**JACKET, "description": ""})).description == ""


@pytest.mark.parametrize(
    "images",
    [
        "https://cdn.example/a.jpg",
        ["ftp://cdn.example/a.jpg"],
        ["cdn.example/a.jpg"],
        ["https://cdn.example/a b.jpg"],
        ["https://"],
        [""],
        [7],
        [None],
        ["https://cdn.example/" + "x" * 2040],
        [f"https://cdn.example/{i}.jpg" for i in range(11)],
        {"url": "https://cdn.example/a.jpg"},
    ],
)
async def test_validate_images_rejected(images: Any) -> None:
    assert await invalid({**JACKET, "images": images}) == "images"


async def test_validate_images_limits() -> None:
    ten = [f"https://cdn.example/{i}.jpg" for i in range(10)]
    assert (await product_of("p1", {**JACKET, "images": ten})).images == tuple(ten)
    assert (await product_of("p1", {**JACKET, "images": []})).images == ()
    longest = "https://" + "x" * 2040
    assert (await product_of("p1", {**JACKET, "images": [longest]})).images == (longest,)


@pytest.mark.parametrize("currency", [None, "usd", "US", "USDT", "U$D", 840, "", " USD"])
async def test_validate_currency_rejected(currency: Any) -> None:
    body = {**JACKET, "currency": currency}
    if currency is None:
        del body["currency"]
    assert await invalid(body) == "currency"


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY"])
async def test_validate_currency_accepted(currency: str) -> None:
    assert (await product_of("p1", {**JACKET, "currency": currency})).currency == currency


@pytest.mark.parametrize(
    "skus",
    [
        None,
        [],
        {"sku": "A", "list_price": 1},
        "A-1",
        [{"sku": f"S{i}", "list_price": 1} for i in range(51)],
    ],
)
async def test_validate_sku_count_rejected(skus: Any) -> None:
    body = {**JACKET, "skus": skus}
    if skus is None:
        del body["skus"]
    assert await invalid(body) == "skus"


async def test_validate_fifty_skus_accepted() -> None:
    skus = [{"sku": f"S{i}", "list_price": i} for i in range(50)]
    product = await product_of("p1", {**JACKET, "skus": skus})
    assert [s.sku for s in product.skus] == [f"S{i}" for i in range(50)]


@pytest.mark.parametrize("raw", ["A-1", 5, None, ["A-1", 100]])
async def test_validate_sku_entry_must_be_an_object(raw: Any) -> None:
    body = {**JACKET, "skus": [{"sku": "OK", "list_price": 1}, raw]}
    assert await invalid(body) == "skus[1]"


@pytest.mark.parametrize(
    "sku", ["", "x" * 41, "-lead", "_lead", ".lead", "a b", "a/b", "ñandu", "a\n", 12, None]
)
async def test_validate_sku_id_rejected(sku: Any) -> None:
    assert await invalid(one_sku(sku=sku)) == "skus[0].sku"


@pytest.mark.parametrize("sku", ["A", "9", "x" * 40, "a_b.c-D9", "SKU-0001.XL_blue"])
async def test_validate_sku_id_accepted(sku: str) -> None:
    assert (await product_of("p1", one_sku(sku=sku))).skus[0].sku == sku


@pytest.mark.parametrize(
    "price", [-1, MAX_PRICE + 1, 4.99, 100.0, True, False, "100", None, [100], 10**30]
)
async def test_validate_list_price_rejected(price: Any) -> None:
    assert await invalid(one_sku(list_price=price)) == "skus[0].list_price"


async def test_validate_list_price_missing() -> None:
    body = {**JACKET, "skus": [{"sku": "OK", "list_price": 1}, {"sku": "NOPRICE"}]}
    assert await invalid(body) == "skus[1].list_price"


@pytest.mark.parametrize("price", [0, 1, 4999, MAX_PRICE])
async def test_validate_list_price_accepted(price: int) -> None:
    [sku] = (await product_of("p1", one_sku(list_price=price))).skus
    assert sku.list_price == price
    assert type(sku.list_price) is int


@pytest.mark.parametrize(
    "attrs",
    [
        ["size", "M"],
        "size=M",
        None,
        {f"k{i}": "v" for i in range(6)},
        {"": "M"},
        {"k" * 21: "M"},
        {"size": ""},
        {"size": "v" * 41},
        {"size": 42},
        {"size": None},
        {"size": ["M"]},
    ],
)
async def test_validate_attrs_rejected(attrs: Any) -> None:
    assert await invalid(one_sku(attrs=attrs)) == "skus[0].attrs"


async def test_validate_attrs_limits() -> None:
    most = {f"k{i}": "v" for i in range(5)}
    assert (await product_of("p1", one_sku(attrs=most))).skus[0].attrs == most
    longest = {"k" * 20: "v" * 40}
    assert (await product_of("p1", one_sku(attrs=longest))).skus[0].attrs == longest
    assert (await product_of("p1", one_sku(attrs={}))).skus[0].attrs == {}


async def test_validate_duplicate_skus() -> None:
    body = {
        **JACKET,
        "skus": [{"sku": "A", "list_price": 1}, {"sku": "B", "list_price": 2},
                 {"sku": "A", "list_price": 3}],
    }  # fmt: skip
    assert await invalid(body) == "skus"


async def test_validate_skus_are_case_sensitive() -> None:
    body = {**JACKET, "skus": [{"sku": "a", "list_price": 1}, {"sku": "A", "list_price": 2}]}
    assert [s.sku for s in (await product_of("p1", body)).skus] == ["a", "A"]


# ---- partial updates -----------------------------------------------------------------------


@pytest.fixture
async def base() -> Product:
    return await product_of(
        "p3",
        {**JACKET, "description": "Raw selvedge.", "images": ["https://cdn.example/a.jpg"]},
    )


async def test_partial_update_of_nothing_keeps_everything(base: Product) -> None:
    assert await product_of("p3", {}, base) == base


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"title": " New title "}, "title", "New title"),
        ({"description": ""}, "description", ""),
        ({"images": []}, "images", ()),
        ({"currency": "EUR"}, "currency", "EUR"),
        ({"skus": [{"sku": "Z", "list_price": 7}]}, "skus", (Sku("Z", 7, {}),)),
    ],
)
async def test_partial_update_changes_one_field(
    base: Product, change: dict[str, Any], field: str, value: Any
) -> None:
    updated = await product_of("p3", change, base)
    assert getattr(updated, field) == value
    for name in ("id", "title", "description", "images", "currency", "skus"):
        if name != field:
            assert getattr(updated, name) == getattr(base, name), name


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"currency": "usd"}, "currency"),
        ({"skus": []}, "skus"),
        ({"images": ["nope"]}, "images"),
        ({"description": None}, "description"),
        ({"skus": [{"sku": "A", "list_price": 1.5}]}, "skus[0].list_price"),
        ({"id": "p9"}, "id"),
    ],
)
async def test_partial_update_still_validates(
    base: Product, change: dict[str, Any], field: str
) -> None:
    assert await invalid(change, base) == field


async def test_partial_update_body_must_be_an_object(base: Product) -> None:
    with pytest.raises(ProtocolError) as info:
        await product_of("p3", ["title"], base)
    assert info.value.code == "bad_request"


@pytest.mark.parametrize("value", ["p1", "p0", "p123456789"])
def test_check_product_id_accepted(value: str) -> None:
    assert check_product_id(value) == value


@pytest.mark.parametrize("value", ["P1", "p", "p1234567890", "x1", "p-1", "1", "", 1, None])
def test_check_product_id_rejected(value: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        check_product_id(value)
    assert info.value.code == "invalid_field"
    assert info.value.details == {"field": "product_id"}


# ---- Catalog on real Redis -----------------------------------------------------------------


@pytest.fixture
async def scripts(redis: aioredis.Redis) -> Scripts:
    loaded = Scripts()
    await loaded.load(redis)
    return loaded


@pytest.fixture
def catalog(redis: aioredis.Redis, scripts: Scripts) -> Catalog:
    return Catalog(redis, scripts, 1000)


@pytest.fixture
async def room(redis: aioredis.Redis) -> AsyncIterator[str]:
    """A fresh room id (the catalog needs no room record); its keys go afterwards."""
    room = f"c-{secrets.token_hex(5)}"
    yield room
    found = [k async for k in redis.scan_iter(match=keys.room_keys_pattern(room))]
    if found:
        await redis.delete(*found)


async def log_entries(redis: aioredis.Redis, room: str) -> list[Entry]:
    entries, complete = await RoomLog(redis).after(room, "0-0", 1000)
    assert complete
    return entries


async def sku_index(redis: aioredis.Redis, room: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.skus(room))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def refused(call: Any) -> LivecartError:
    with pytest.raises(LivecartError) as info:
        await call
    return info.value


async def create(catalog: Catalog, room: str, body: Any) -> Product:
    """Create a product from a JSON body, as POST .../products does."""
    return await catalog.create(room, await decoded(body, ProductTerms))


async def change(catalog: Catalog, room: str, product_id: str, body: Any) -> Product:
    """Change a product with a JSON body, as PATCH .../products/{product} does."""
    base = await catalog.get(room, product_id)
    return await catalog.update(room, base, await decoded(body, ProductChanges))


async def reorder(catalog: Catalog, room: str, product_ids: Any) -> str:
    """Reorder the lineup from a body's `products`, as PUT .../lineup does."""
    lineup = await decoded({"products": product_ids}, Lineup)
    return await catalog.reorder(room, lineup.products)


async def test_create_assigns_sequential_ids(catalog: Catalog, room: str) -> None:
    made = [await create(catalog, room, product_body(f"S-{i}")) for i in range(1, 4)]
    assert [p.id for p in made] == ["p1", "p2", "p3"]
    assert made[0] == await product_of("p1", product_body("S-1"))
    assert await catalog.get(room, "p2") == made[1]


async def test_create_ids_are_per_room(catalog: Catalog, room: str, redis: aioredis.Redis) -> None:
    other = f"c-{secrets.token_hex(5)}"
    try:
        assert (await create(catalog, room, product_body("A"))).id == "p1"
        assert (await create(catalog, other, product_body("A"))).id == "p1"
    finally:
        found = [k async for k in redis.scan_iter(match=keys.room_keys_pattern(other))]
        await redis.delete(*found)


async def test_create_rejects_bad_input_before_taking_an_id(catalog: Catalog, room: str) -> None:
    error = await refused(create(catalog, room, {"title": "No SKUs", "currency": "USD"}))
    assert error.code == "invalid_field"
    assert await catalog.lineup(room) == []
    assert (await create(catalog, room, product_body("A"))).id == "p1"


async def test_create_stores_product_skus_and_log_entry(
    catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    product = await create(catalog, room, JACKET)
    assert await sku_index(redis, room) == {"DJ-S": "p1", "DJ-M": "p1"}
    [entry] = await log_entries(redis, room)
    assert (entry.kind, entry.ref) == ("product_updated", "p1")
    assert entry.data == product.to_wire()


async def test_sku_taken_across_products(
    catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    await create(catalog, room, product_body("A", "B"))
    error = await refused(create(catalog, room, product_body("C", "B")))
    assert isinstance(error, ConflictError)
    assert error.code == "sku_taken"
    assert error.details == {"sku": "B"}
    assert error.http_status == 409
    # Nothing of the refused product was stored, not even its free SKU.
    assert [p.id for p in await catalog.lineup(room)] == ["p1"]
    assert await sku_index(redis, room) == {"A": "p1", "B": "p1"}
    assert (await refused(catalog.find_sku(room, "C"))).code == "sku_not_found"
    assert [e.kind for e in await log_entries(redis, room)] == ["product_updated"]


async def test_update_may_keep_its_own_skus(catalog: Catalog, room: str) -> None:
    await create(catalog, room, product_body("A", "B"))
    updated = await change(catalog, room, "p1", product_body("B", "A", title="Renamed"))
    assert updated.title == "Renamed"
    assert [s.sku for s in updated.skus] == ["B", "A"]
    assert await catalog.get(room, "p1") == updated


async def test_update_replaces_sku_index_entries(
    catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    await create(catalog, room, product_body("OLD", "KEEP"))
    await change(catalog, room, "p1", {"skus": [{"sku": "KEEP", "list_price": 1},
                                               {"sku": "NEW", "list_price": 2}]})  # fmt: skip
    assert await sku_index(redis, room) == {"KEEP": "p1", "NEW": "p1"}
    assert (await refused(catalog.find_sku(room, "OLD"))).code == "sku_not_found"
    product, sku = await catalog.find_sku(room, "NEW")
    assert (product.id, sku) == ("p1", Sku("NEW", 2, {}))
    # The freed SKU can go to another product.
    other = await create(catalog, room, product_body("OLD"))
    assert (await catalog.find_sku(room, "OLD"))[0].id == other.id == "p2"


async def test_update_cannot_take_another_products_sku(
    catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    await create(catalog, room, product_body("A"))
    before = await create(catalog, room, product_body("B"))
    error = await refused(change(catalog, room, "p2", {"skus": [{"sku": "A", "list_price": 1}]}))
    assert (error.code, error.details) == ("sku_taken", {"sku": "A"})
    assert await catalog.get(room, "p2") == before
    assert await sku_index(redis, room) == {"A": "p1", "B": "p2"}


async def test_update_partial_keeps_fields_and_logs(
    catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    created = await create(catalog, room, {**JACKET, "description": "Raw."})
    updated = await change(catalog, room, "p1", {"description": "Washed."})
    assert updated.description == "Washed."
    assert (updated.title, updated.currency, updated.skus) == (
        created.title, created.currency, created.skus,
    )  # fmt: skip
    entries = await log_entries(redis, room)
    assert [(e.kind, e.ref) for e in entries] == [("product_updated", "p1")] * 2
    assert entries[1].data == updated.to_wire()


async def test_update_unknown_and_bad_ids(catalog: Catalog, room: str) -> None:
    error = await refused(change(catalog, room, "p9", {"title": "X"}))
    assert (type(error), error.code) == (NotFoundError, "product_not_found")
    error = await refused(change(catalog, room, "nine", {"title": "X"}))
    assert (error.code, error.details) == ("invalid_field", {"field": "product_id"})


async def test_update_validates(catalog: Catalog, room: str) -> None:
    created = await create(catalog, room, JACKET)
    error = await refused(change(catalog, room, "p1", {"currency": "dollars"}))
    assert (error.code, error.details) == ("invalid_field", {"field": "currency"})
    assert await catalog.get(room, "p1") == created


async def test_get_unknown_and_bad_ids(catalog: Catalog, room: str) -> None:
    assert (await refused(catalog.get(room, "p1"))).code == "product_not_found"
    error = await refused(catalog.get(room, "P1"))
    assert (error.code, error.details) == ("invalid_field", {"field": "product_id"})


async def test_find_sku(catalog: Catalog, room: str) -> None:
    jacket = await create(catalog, room, JACKET)
    product, sku = await catalog.find_sku(room, "DJ-M")
    assert product == jacket
    assert sku == Sku("DJ-M", 5200, {"size": "M"})
    error = await refused(catalog.find_sku(room, "dj-m"))
    assert (type(error), error.code) == (NotFoundError, "sku_not_found")


async def test_lineup_is_creation_order(catalog: Catalog, room: str) -> None:
    assert await catalog.lineup(room) == []
    made = [await create(catalog, room, product_body(f"S{i}", title=f"T{i}")) for i in range(12)]
    await change(catalog, room, "p1", {"title": "Updated"})  # an update does not move it
    lineup = await catalog.lineup(room)
    assert [p.id for p in lineup] == [p.id for p in made] == [f"p{i}" for i in range(1, 13)]
    assert lineup[0].title == "Updated"
    assert lineup[1:] == made[1:]


async def test_reorder_permutation(catalog: Catalog, room: str, redis: aioredis.Redis) -> None:
    for sku in ("A", "B", "C"):
        await create(catalog, room, product_body(sku))
    offset = await reorder(catalog, room, ["p3", "p1", "p2"])
    assert [p.id for p in await catalog.lineup(room)] == ["p3", "p1", "p2"]
    last = (await log_entries(redis, room))[-1]
    assert last == Entry(offset, "lineup_changed", "", {"products": ["p3", "p1", "p2"]})
    # A product created afterwards joins the end.
    await create(catalog, room, product_body("D"))
    assert [p.id for p in await catalog.lineup(room)] == ["p3", "p1", "p2", "p4"]


async def test_reorder_empty_room(catalog: Catalog, room: str, redis: aioredis.Redis) -> None:
    offset = await reorder(catalog, room, [])
    assert await log_entries(redis, room) == [Entry(offset, "lineup_changed", "", {"products": []})]


@pytest.mark.parametrize(
    "ids",
    [
        ["p1", "p2"],  # missing
        ["p1", "p2", "p3", "p4"],  # extra
        ["p1", "p2", "p4"],  # unknown instead of p3
        ["p1", "p1", "p2"],  # duplicate instead of p3
        ["p1", "p2", "p3", "p3"],  # duplicate on top
        [],
    ],
)
async def test_reorder_must_be_a_permutation(
    catalog: Catalog, room: str, redis: aioredis.Redis, ids: list[str]
) -> None:
    for sku in ("A", "B", "C"):
        await create(catalog, room, product_body(sku))
    before = await log_entries(redis, room)
    error = await refused(reorder(catalog, room, ids))
    assert (type(error), error.code) == (ProtocolError, "invalid_field")
    assert error.details == {"field": "products"}
    assert [p.id for p in await catalog.lineup(room)] == ["p1", "p2", "p3"]
    assert await log_entries(redis, room) == before


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        (None, "products"),
        ("p1,p2", "products"),
        ({"p1": 0}, "products"),
        (["p1", 2], "products"),
        (["p1", "second"], "product_id"),
    ],
)
async def test_reorder_input_types(catalog: Catalog, room: str, ids: Any, field: str) -> None:
    await create(catalog, room, product_body("A"))
    await create(catalog, room, product_body("B"))
    error = await refused(reorder(catalog, room, ids))
    assert (error.code, error.details) == ("invalid_field", {"field": field})


async def test_pin_and_unpin(catalog: Catalog, room: str, redis: aioredis.Redis) -> None:
    await create(catalog, room, product_body("A"))
    jacket = await create(catalog, room, JACKET)
    pinned_at = await catalog.pin(room, "p2")
    assert await redis.hget(keys.room_meta(room), "pinned_product") == b"p2"
    unpinned_at = await catalog.pin(room, None)
    assert await redis.hget(keys.room_meta(room), "pinned_product") is None
    entries = await log_entries(redis, room)
    assert entries[-2:] == [
        Entry(pinned_at, "product_pinned", "p2", jacket.to_wire()),
        Entry(unpinned_at, "product_unpinned", "", {}),
    ]


async def test_pin_replaces_the_pinned_product(
    catalog: Catalog, room: str, redis: aioredis.Redis
) -> None:
    await create(catalog, room, product_body("A"))
    await create(catalog, room, product_body("B"))
    await catalog.pin(room, "p1")
    await catalog.pin(room, "p2")
    assert await redis.hget(keys.room_meta(room), "pinned_product") == b"p2"
    pins = [(e.kind, e.ref) for e in await log_entries(redis, room) if e.kind.endswith("pinned")]
    assert pins == [("product_pinned", "p1"), ("product_pinned", "p2")]


async def test_pin_unknown_product(catalog: Catalog, room: str, redis: aioredis.Redis) -> None:
    await create(catalog, room, product_body("A"))
    await catalog.pin(room, "p1")
    error = await refused(catalog.pin(room, "p2"))
    assert (type(error), error.code) == (NotFoundError, "product_not_found")
    assert await redis.hget(keys.room_meta(room), "pinned_product") == b"p1"
    assert [e.kind for e in await log_entries(redis, room)] == [
        "product_updated", "product_pinned",
    ]  # fmt: skip
    error = await refused(catalog.pin(room, "pin-me"))
    assert (error.code, error.details) == ("invalid_field", {"field": "product_id"})


async def test_impressions_add_up(catalog: Catalog, room: str) -> None:
    assert await catalog.impressions(room) == {}
    await catalog.add_impressions(room, {"p1": 2, "p2": 1})
    await catalog.add_impressions(room, {"p1": 3})
    await catalog.add_impressions(room, {})
    assert await catalog.impressions(room) == {"p1": 5, "p2": 1}
