"""Order routes: a viewer checks out held reservations, pays, cancels and lists their
orders; the host lists the room's orders, refunds, fulfils, approves flagged orders and
keeps the blocklist."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from engine.commerce.checkout_request import CheckoutRequest
from engine.commerce.orders import Order, OrderState, check_order_id
from engine.commerce.payments import RefundTerms
from engine.commerce.risk import BlockEntry
from engine.core.errors import ForbiddenError
from engine.core.fields import invalid_field
from engine.core.metrics import METRICS
from engine.server.api.base import HOSTS, MODERATORS, SIGNED_IN, Call, route


def _order_id(call: Call) -> str:
    return check_order_id(call.request.path_params["order"])


async def _visible_order(call: Call) -> Order:
    """The order, if the caller is its buyer or runs the room."""
    assert call.claims is not None
    order = await call.node.orders.get(call.room, _order_id(call))
    if call.claims.role not in MODERATORS and order.user != call.claims.user:
        raise ForbiddenError("that order is someone else's", code="forbidden")
    return order


@route("/api/rooms/{room}/orders", ["POST"], roles=SIGNED_IN, status=201)
async def checkout(call: Call) -> Any:
    """Order held reservations with optional coupons; idempotent by `idempotency_key`."""
    assert call.claims is not None
    request = await call.decode(CheckoutRequest)
    order, replayed = await call.node.orders.checkout(call.room, call.claims.user, request)
    if not replayed:
        METRICS.orders.inc(1, order.state.value)
    return {**order.to_wire(), "replayed": replayed}


@route("/api/rooms/{room}/orders/mine", ["GET"], roles=SIGNED_IN)
async def my_orders(call: Call) -> Any:
    assert call.claims is not None
    orders = await call.node.orders.list_user(call.room, call.claims.user)
    return {"orders": [o.to_wire() for o in orders]}


@route("/api/rooms/{room}/orders", ["GET"], roles=MODERATORS)
async def room_orders(call: Call) -> Any:
    """Every order of the room; `?state=paid`, `?review=flagged` filter."""
    params = call.request.query_params
    state = None
    if "state" in params:
        try:
            state = OrderState(params["state"])
        except ValueError:
            raise invalid_field("state", ", ".join(s.value for s in OrderState)) from None
    orders = await call.node.orders.list_room(call.room, state=state, review=params.get("review"))
    return {"orders": [o.to_wire() for o in orders]}


@route("/api/rooms/{room}/orders/{order}", ["GET"], roles=SIGNED_IN)
async def get_order(call: Call) -> Any:
    return (await _visible_order(call)).to_wire()


@route("/api/rooms/{room}/orders/{order}/cancel", ["POST"], roles=SIGNED_IN)
async def cancel_order(call: Call) -> Any:
    """Cancel an unpaid order: its units go back on sale and its coupons back to the buyer."""
    assert call.claims is not None
    order = await _visible_order(call)
    buyer = call.claims.user == order.user
    reason = "cancelled_by_buyer" if buyer else f"cancelled_by_{call.claims.role.value}"
    cancelled = await call.node.orders.cancel(call.room, order.id, call.claims.user, reason=reason)
    METRICS.orders.inc(1, cancelled.state.value)
    return cancelled.to_wire()


@route("/api/rooms/{room}/orders/{order}/payment", ["POST"], roles=SIGNED_IN, status=201)
async def start_payment(call: Call) -> Any:
    """Create a payment at the provider; the buyer completes it at `pay_url`."""
    assert call.claims is not None
    return await call.node.payments.start(
        call.room, _order_id(call), call.claims.user, callback_url(call),
        pay_base_url=str(call.request.base_url),
    )  # fmt: skip


def callback_url(call: Call) -> str:
    """Where the provider calls the engine back. Never from the request's `Host` header: a
    forged one would have the engine's signed callback sent wherever the caller chose.
    `LIVECART_PUBLIC_URL` when set, else the address this request came in on."""
    public = call.node.settings.public_url
    if public:
        return f"{public.rstrip('/')}/api/payments/callback"
    server = call.request.scope.get("server") or (call.node.settings.host,
                                                  call.node.settings.port)  # fmt: skip
    host, port = server[0], server[1]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/api/payments/callback"


@route("/api/rooms/{room}/orders/{order}/refund", ["POST"], roles=HOSTS)
async def refund_order(call: Call) -> Any:
    """Refund `amount` (default: all that is left), optionally `restock` lines; `id` makes
    it idempotent."""
    assert call.claims is not None
    order, replayed = await call.node.payments.refund(
        call.room, _order_id(call), await call.decode(RefundTerms), call.claims.user
    )
    if not replayed:
        METRICS.orders.inc(1, order.state.value)
    return {**order.to_wire(), "replayed": replayed}


@route("/api/rooms/{room}/orders/{order}/fulfill", ["POST"], roles=HOSTS)
async def fulfill_order(call: Call) -> Any:
    assert call.claims is not None
    order = await call.node.orders.mark(call.room, _order_id(call), "fulfill", call.claims.user)
    METRICS.orders.inc(1, order.state.value)
    return order.to_wire()


@route("/api/rooms/{room}/orders/{order}/approve", ["POST"], roles=HOSTS)
async def approve_order(call: Call) -> Any:
    """Clear the manual-review flag of a high-value order."""
    assert call.claims is not None
    order = await call.node.orders.mark(call.room, _order_id(call), "approve", call.claims.user)
    return order.to_wire()


@route("/api/rooms/{room}/blocklist", ["GET"], roles=HOSTS)
async def get_blocklist(call: Call) -> Any:
    return await call.node.blocklist.list(call.room)


@route("/api/rooms/{room}/blocklist", ["POST"], roles=HOSTS)
async def block(call: Call) -> Any:
    """Block a user or a device from ordering: `{"kind": "user"|"device", "id": ...}`."""
    return await call.node.blocklist.add(call.room, await call.decode(BlockEntry))


@route("/api/rooms/{room}/blocklist", ["DELETE"], roles=HOSTS)
async def unblock(call: Call) -> Any:
    return await call.node.blocklist.remove(call.room, await call.decode(BlockEntry))


ROUTES: list[Route] = [
    checkout,
    my_orders,
    room_orders,
    get_order,
    cancel_order,
    start_payment,
    refund_order,
    fulfill_order,
    approve_order,
    get_blocklist,
    block,
    unblock,
]
