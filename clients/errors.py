"""The SDK's error: the engine's wire error (code, message, retryable, details)."""

from __future__ import annotations

from typing import Any

from clients.core import retryable


class LivecartClientError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details = details or {}
        self.status = status

    @classmethod
    def from_wire(cls, body: dict[str, Any], status: int | None = None) -> LivecartClientError:
        return cls(
            str(body.get("code", "error")),
            str(body.get("message", "")),
            retryable=retryable(body),
            details=body.get("details") or {},
            status=status,
        )
