"""Wire codecs, chosen per connection by WebSocket subprotocol.

`livecart.v1.json` sends UTF-8 JSON in text frames (orjson); `livecart.v1.msgpack` sends
MessagePack in binary frames. A client that offers no subprotocol gets JSON. Client frames
are decoded by msgspec: into the typed messages of engine/realtime/protocol.py (`decoder`), or into
plain objects (`decode`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import msgpack
import msgspec
import orjson

from engine.core.errors import ProtocolError

# What decoding a frame raises when the frame is malformed (a str with lone surrogates
# cannot be read as UTF-8; nesting beyond the recursion limit is refused).
MALFORMED = (msgspec.DecodeError, RecursionError, UnicodeEncodeError)


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

    def decoder(self, message_type: Any) -> Callable[[Any], Any]:
        """A frame decoder into `message_type` (msgspec: decoding and validation in one
        pass). It raises msgspec.ValidationError for a frame that decodes but does not fit
        the type, else one of MALFORMED for a malformed frame (see `malformed`). A msgpack
        decoder takes bytes only: `check` refuses text frames first."""
        if self is Codec.JSON:
            return msgspec.json.Decoder(message_type).decode
        return msgspec.msgpack.Decoder(message_type).decode

    def check(self, frame: bytes | str, *, max_bytes: int) -> None:
        """What is refused before decoding: a frame above `max_bytes` (too_large) and a
        text frame on a msgpack connection (bad_frame)."""
        # A str counts characters; its UTF-8 size is up to four times that.
        size = (
            len(frame)
            if isinstance(frame, bytes) or len(frame) * 4 <= max_bytes
            else (len(frame.encode("utf-8", "surrogatepass")))
        )
        if size > max_bytes:
            raise ProtocolError(f"frame larger than {max_bytes} bytes", code="too_large")
        if self is Codec.MSGPACK and isinstance(frame, str):
            raise ProtocolError("msgpack connections send binary frames", code="bad_frame")

    def malformed(self, error: Exception) -> ProtocolError:
        """The `bad_frame` error of a frame that does not decode."""
        what = "JSON" if self is Codec.JSON else "msgpack"
        return ProtocolError(f"invalid {what}: {error}", code="bad_frame")

    def decode(self, frame: bytes | str, *, max_bytes: int) -> dict[str, Any]:
        """Decode one client frame into plain objects: an object with string keys, or
        ProtocolError (`too_large`, or `bad_frame` for anything else)."""
        self.check(frame, max_bytes=max_bytes)
        try:
            return _PLAIN[self](frame)
        except MALFORMED as error:
            raise self.malformed(error) from None


_PLAIN: dict[Codec, Callable[[bytes | str], dict[str, Any]]] = {
    codec: codec.decoder(dict[str, Any]) for codec in Codec
}
SUBPROTOCOLS: tuple[str, ...] = tuple(codec.subprotocol for codec in Codec)
