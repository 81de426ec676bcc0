"""Wire codecs, chosen per connection by WebSocket subprotocol.

`livecart.v1.json` sends UTF-8 JSON in text frames (orjson); `livecart.v1.msgpack` sends
MessagePack in binary frames. A client that offers no subprotocol gets JSON.
"""

from __future__ import annotations

import enum
from typing import Any

import msgpack
import orjson

from engine.core.errors import ProtocolError


class Codec(enum.Enum):
    JSON = "livecart.v1.json"
    MSGPACK = "livecart.v1.msgpack"

    @property
    def subprotocol(self) -> str:
        return self.value

    @property
    def text(self) -> bool:
        """Whether frames of this codec go out as WebSocket text frames."""
        return self is Codec.JSON

    @classmethod
    def for_subprotocol(cls, name: str | None) -> Codec:
        if name is None:
            return cls.JSON
        return cls(name)

    def encode(self, message: dict[str, Any]) -> bytes:
        if self is Codec.JSON:
            return orjson.dumps(message)
        packed: bytes = msgpack.packb(message, use_bin_type=True)
        return packed

    def decode(self, frame: bytes | str, *, max_bytes: int) -> Any:
        """Decode one client frame; any malformation becomes ProtocolError(bad_frame)."""
        # A str counts characters; its UTF-8 size is up to four times that.
        size = (
            len(frame)
            if isinstance(frame, bytes) or len(frame) * 4 <= max_bytes
            else (len(frame.encode("utf-8", "surrogatepass")))
        )
        if size > max_bytes:
            raise ProtocolError(f"frame larger than {max_bytes} bytes", code="too_large")
        if self is Codec.JSON:
            try:
                return orjson.loads(frame)
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f"invalid JSON: {exc.msg}", code="bad_frame") from None
        if isinstance(frame, str):
            raise ProtocolError("msgpack connections send binary frames", code="bad_frame")
        try:
            return msgpack.unpackb(
                frame,
                raw=False,
                strict_map_key=True,
            )
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise ProtocolError(
                f"invalid msgpack: {type(exc).__name__}", code="bad_frame"
            ) from None


SUBPROTOCOLS: tuple[str, ...] = tuple(codec.subprotocol for codec in Codec)
