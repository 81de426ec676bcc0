"""engine.core.fields: how a msgspec refusal is named (`refused_field`), and a part of a body
converted with its refusals named below it (`convert_field`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
from msgspec import Meta, Struct

from engine.core.errors import ProtocolError
from engine.core.fields import convert_field, refused_field


class Inner(Struct, frozen=True, forbid_unknown_fields=True):
    size: Annotated[int, Meta(ge=1)]
    tags: dict[Annotated[str, Meta(min_length=1)], str] = {}


class Outer(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    inner: Inner | None = None
    items: list[int] = []


def refusal_of(raw: bytes) -> tuple[str | None, str]:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(raw, type=Outer)
    return refused_field(info.value)


@pytest.mark.parametrize(
    ("raw", "field", "why"),
    [
        (b'{"name": 1}', "name", "Expected `str`, got `int`"),
        (b"{}", "name", "required"),
        (b'{"name": "n", "zeta": 1, "alpha": 2}', "zeta", "unknown field"),
        (b'{"name": "n", "items": [1, "2"]}', "items[1]", "Expected `int`, got `str`"),
        (b'{"name": "n", "inner": {"size": 0}}', "inner", "Expected `int` >= 1"),
        (b'{"name": "n", "inner": {"size": 1, "colour": 1}}', "inner",
         "Object contains unknown field `colour`"),
        (b'{"name": "n", "inner": {"size": 1, "tags": {"": "x"}}}', "inner",
         "Expected `str` of length >= 1"),
        (b"[]", None, "Expected `object`, got `array`"),
    ],
)  # fmt: skip
def test_refused_field(raw: bytes, field: str | None, why: str) -> None:
    assert refusal_of(raw) == (field, why)


def test_convert_field_names_refusals_below_the_part() -> None:
    assert convert_field({"size": 2}, Inner, "inner") == Inner(2)
    cases: list[tuple[Any, str]] = [
        ({"size": "2"}, "inner.size"),
        ({"size": True}, "inner.size"),
        ({}, "inner.size"),
        ({"size": 1, "colour": 1}, "inner.colour"),
        ({"size": 1, "tags": {"": "x"}}, "inner.tags"),
        ([("size", 1)], "inner"),
        (None, "inner"),
    ]
    for value, field in cases:
        with pytest.raises(ProtocolError) as info:
            convert_field(value, Inner, "inner")
        assert (info.value.code, info.value.details) == ("invalid_field", {"field": field})
        assert info.value.message.startswith(f"{field}: ")
