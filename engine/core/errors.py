"""One exception tree for the whole engine; every error is also wire data.

    LivecartError                code          retryable  http
    ├── ProtocolError            bad_frame, bad_request, unknown_type, invalid_field,
    │                            too_large, hello_required, already_joined  400
    ├── AuthError                token_invalid, token_expired, token_wrong_room,
    │   │                        token_revoked, auth_required, signature_invalid,
    │   │                        callback_stale                           401
    │   └── ForbiddenError       forbidden, banned, blocked, *_not_yours   403
    ├── NotFoundError            room_not_found, comment_not_found, *_not_found
    │                                                                     404
    ├── ConflictError            room_exists, illegal_transition, room_not_open,
    │                            sale/reservation/coupon state conflicts,
    │                            callback_replayed, psp_refused,
    │                            giveaway_closed                           409
    ├── TooLargeError            image_too_large                           413
    ├── UnsupportedTypeError     image_type_unsupported                    415
    ├── RejectedError            comment_too_long, comment_empty, comment_blocked,
    │                            muted, pricing and coupon rules, order_limit,
    │                            refund_too_large, payment_mismatch,
    │                            giveaway entry rules and limits,
    │                            image_empty, image_type_mismatch          422
    ├── RateLimitedError         rate_limited, slow_mode,     retryable   429
    │                            too_many_connections
    └── UnavailableError         unavailable                  retryable   503

Every error carries a stable `code` (the public contract, documented in
docs/protocol.md), a human `message`, whether retrying the same request later can
help, and optional `details` (e.g. `retry_after_ms`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class LivecartError(Exception):
    """Base of every error the engine reports to a client."""

    http_status: ClassVar[int] = 400
    retryable: ClassVar[bool] = False
    default_code: ClassVar[str] = "error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ProtocolError(LivecartError):
    default_code = "bad_frame"


class AuthError(LivecartError):
    http_status = 401
    default_code = "token_invalid"


class ForbiddenError(AuthError):
    http_status = 403
    default_code = "forbidden"


class NotFoundError(LivecartError):
    http_status = 404
    default_code = "room_not_found"


class ConflictError(LivecartError):
    http_status = 409
    default_code = "conflict"


class TooLargeError(LivecartError):
    """A body over a route's own limit (an uploaded image); JSON bodies over 64 KiB are
    `too_large` (400), as they always were."""

    http_status = 413
    default_code = "image_too_large"


class UnsupportedTypeError(LivecartError):
    """A body whose declared Content-Type the route does not take."""

    http_status = 415
    default_code = "image_type_unsupported"


class RejectedError(LivecartError):
    http_status = 422
    default_code = "rejected"


class RateLimitedError(LivecartError):
    http_status = 429
    retryable = True
    default_code = "rate_limited"


class UnavailableError(LivecartError):
    http_status = 503
    retryable = True
    default_code = "unavailable"


_BY_CODE: dict[str, type[LivecartError]] = {
    "bad_frame": ProtocolError,
    "bad_request": ProtocolError,
    "unknown_type": ProtocolError,
    "invalid_field": ProtocolError,
    "too_large": ProtocolError,
    "hello_required": ProtocolError,
    "already_joined": ProtocolError,
    "token_invalid": AuthError,
    "token_expired": AuthError,
    "token_wrong_room": AuthError,
    "token_revoked": AuthError,
    "auth_required": AuthError,
    "forbidden": ForbiddenError,
    "banned": ForbiddenError,
    "room_not_found": NotFoundError,
    "comment_not_found": NotFoundError,
    "room_exists": ConflictError,
    "illegal_transition": ConflictError,
    "room_not_open": ConflictError,
    "payments_disabled": ConflictError,
    "comment_too_long": RejectedError,
    "comment_empty": RejectedError,
    "comment_blocked": RejectedError,
    "muted": RejectedError,
    "rate_limited": RateLimitedError,
    "slow_mode": RateLimitedError,
    "too_many_connections": RateLimitedError,
    "unavailable": UnavailableError,
    # catalog, flash sales, coupons, orders, payments
    "signature_invalid": AuthError,
    "callback_stale": AuthError,
    "blocked": ForbiddenError,
    "reservation_not_yours": ForbiddenError,
    "coupon_not_yours": ForbiddenError,
    "product_not_found": NotFoundError,
    "sku_not_found": NotFoundError,
    "sale_not_found": NotFoundError,
    "reservation_not_found": NotFoundError,
    "template_not_found": NotFoundError,
    "drop_not_found": NotFoundError,
    "coupon_not_found": NotFoundError,
    "order_not_found": NotFoundError,
    "payment_not_found": NotFoundError,
    "product_exists": ConflictError,
    "sku_taken": ConflictError,
    "sale_exists": ConflictError,
    "sale_ended": ConflictError,
    "sale_not_started": ConflictError,
    "sale_available": ConflictError,
    "limit_reached": ConflictError,
    "reservation_not_held": ConflictError,
    "reservation_expired": ConflictError,
    "reservation_in_order": ConflictError,
    "reservation_changed": ConflictError,
    "coupons_exhausted": ConflictError,
    "template_expired": ConflictError,
    "coupon_not_available": ConflictError,
    "not_flagged": ConflictError,
    "review_pending": ConflictError,
    "not_due": ConflictError,
    "not_restockable": ConflictError,
    "callback_replayed": ConflictError,
    "psp_refused": ConflictError,
    "order_empty": RejectedError,
    "currency_mismatch": RejectedError,
    "coupon_not_valid": RejectedError,
    "coupon_not_applicable": RejectedError,
    "coupon_threshold_not_met": RejectedError,
    "coupon_not_stackable": RejectedError,
    "order_limit": RejectedError,
    "refund_too_large": RejectedError,
    "payment_mismatch": RejectedError,
    # giveaways
    "giveaway_not_found": NotFoundError,
    "giveaway_exists": ConflictError,
    "giveaway_closed": ConflictError,
    "keyword_mismatch": RejectedError,
    "not_watched_enough": RejectedError,
    "already_won": RejectedError,
    "recent_winner": RejectedError,
    # auctions
    "auction_not_found": NotFoundError,
    "auction_exists": ConflictError,
    "auction_closed": ConflictError,
    "auction_open": ConflictError,
    "winner_holds": ConflictError,
    "no_runner_up": ConflictError,
    "bid_too_low": RejectedError,
    # group buys
    "groupbuy_not_found": NotFoundError,
    "team_not_found": NotFoundError,
    "report_file_not_found": NotFoundError,
    "team_exists": ConflictError,
    "team_full": ConflictError,
    "team_closed": ConflictError,
    "already_in_team": ConflictError,
    "groupbuy_limit": ConflictError,
    "groupbuy_sold_out": ConflictError,
    # product images (engine/commerce/images.py)
    "image_not_found": NotFoundError,
    "image_too_large": TooLargeError,
    "image_type_unsupported": UnsupportedTypeError,
    "image_empty": RejectedError,
    "image_type_mismatch": RejectedError,
}

ERROR_CODES: frozenset[str] = frozenset(_BY_CODE)  # the engine's own; features add theirs


def register_codes(codes: Mapping[str, type[LivecartError]]) -> None:
    """A feature's error codes (engine/core/feature.py): known to `error_for_code` and in
    `error_codes()`. A code may not change its class."""
    for code, cls in codes.items():
        known = _BY_CODE.get(code)
        if known is not None and known is not cls:
            raise ValueError(f"error code {code!r} is already a {known.__name__}")
        _BY_CODE[code] = cls


def error_codes() -> frozenset[str]:
    """Every wire code: the engine's and the loaded features'."""
    return frozenset(_BY_CODE)


def error_for_code(code: str, message: str, details: dict[str, Any] | None = None) -> LivecartError:
    """Rebuild the typed error for a wire code (used by Lua results and the SDK)."""
    cls = _BY_CODE.get(code, LivecartError)
    return cls(message, code=code, details=details)
