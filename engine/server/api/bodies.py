"""Decoding the short bodies of the moderation and sale-control routes (pin, mute, ban,
banned words, slow mode, top-up, extend): a JSON body that is not an object is refused as
one without its required field (`400 invalid_field`, docs/api.md § Conventions), where
`Call.decode` answers `400 bad_request`."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from engine.core.fields import invalid_field
from engine.server.api.base import Call

FieldsT = TypeVar("FieldsT", bound=msgspec.Struct)


async def decode_fields(call: Call, schema: type[FieldsT]) -> FieldsT:
    """The body decoded into `schema` as `Call.decode` does, except that valid JSON which is
    not an object is `invalid_field` naming the schema's first required field."""
    if not isinstance(await call.json(), dict):
        required = next(f.name for f in msgspec.structs.fields(schema) if f.required)
        raise invalid_field(required, "required")
    return await call.decode(schema)
