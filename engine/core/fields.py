"""Bad input named by its field: `invalid_field`, and the field a msgspec schema refused
(frames and HTTP bodies are typed definitions; docs/architecture.md § One wire schema), so
every HTTP route and WebSocket frame reports bad input the same way."""

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
