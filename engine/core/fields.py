"""Validating the fields of a JSON request body: each failure is an `invalid_field` error
naming the field, the way every HTTP route and WebSocket frame reports bad input."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from engine.core.errors import ProtocolError

# How msgspec names the field it refused: "<why> - at `$.field`" (the end of its message,
# which may quote the refused value; "- at `key` in `$.field`" for a key of an object),
# "Object missing required field `field`", or, for a schema that forbids unknown fields,
# "Object contains unknown field `field`".
_AT = re.compile(r" - at (?:`key` in )?`\$\.(?P<path>[^`]*)`\Z")
_MISSING = "Object missing required field `"
_UNKNOWN = "Object contains unknown field `"
# The top-level field of a path, with the index of an item of a list: "options[1]".
_TOP_FIELD = re.compile(r"[^.\[`]+(?:\[[0-9]+\])?")
T = TypeVar("T")


def invalid_field(name: str, why: str) -> ProtocolError:
    return ProtocolError(f"{name}: {why}", code="invalid_field", details={"field": name})


def refused_field(refusal: msgspec.ValidationError) -> tuple[str | None, str]:
    """The top-level field a msgspec schema refused (None if it names none), and why."""
    reason = str(refusal)
    at = _AT.search(reason)
    if at:
        top = _TOP_FIELD.match(at["path"])
        return (top.group() if top else at["path"]), reason[: at.start()]
    if reason.startswith(_MISSING):
        return reason.removeprefix(_MISSING).removesuffix("`"), "required"
    if reason.startswith(_UNKNOWN):
        return reason.removeprefix(_UNKNOWN).removesuffix("`"), "unknown field"
    return None, reason


def convert_field(value: Any, schema: type[T], name: str) -> T:
    """`value`, a part of a decoded body, converted to `schema`; a refusal is `invalid_field`
    named `name.<field>` for one of its fields (`settings.display_rate`, `skus[0].sku`: the
    names documented where a schema of the whole body would give only `settings`, `skus[0]`),
    or `name` for the value itself."""
    try:
        return msgspec.convert(value, schema)
    except msgspec.ValidationError as refusal:
        field, why = refused_field(refusal)
        raise invalid_field(name if field is None else f"{name}.{field}", why) from None


def int_field(body: dict[str, Any], name: str, low: int, high: int,
              default: int | None = None) -> int:  # fmt: skip
    """An integer in [low, high] (`true` is not one), or `default` when absent."""
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid_field(name, f"an integer between {low} and {high}")
    return value


def text_field(body: dict[str, Any], name: str, max_len: int) -> str:
    """A required string with something visible, at most `max_len` characters, trimmed."""
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise invalid_field(name, f"a string of 1-{max_len} characters")
    return value.strip()


def bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise invalid_field(name, "true or false")
    return value
