"""Payment routes: the providers' signed callbacks into the engine (the built-in scheme's
and Stripe's webhook), and the built-in simulated provider's pay page, API and settlement
data (a stand-in for a real PSP's hosted checkout and reports)."""

from __future__ import annotations

import dataclasses
import datetime
import html
import re
import time
from typing import Any
from urllib.parse import parse_qs

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from engine.commerce.psp import PayBody, SimulatedProvider
from engine.commerce.stripe_provider import StripeProvider
from engine.core.errors import ConflictError, LivecartError, UnavailableError
from engine.core.fields import invalid_field
from engine.server.api.base import Call, error_response, node_of, route
from engine.server.node import Node


@route("/api/payments/callback", ["POST"])
async def payment_callback(call: Call) -> Any:
    """A provider reports a payment outcome (signed; see engine/commerce/payments.py)."""
    body = await call.body()
    return await call.node.payments.callback(call.request.headers, body, now_s=time.time())


@route("/api/payments/stripe/webhook", ["POST"])
async def stripe_webhook(call: Call) -> Any:
    """Stripe reports an event (signed with `Stripe-Signature`); a `checkout.session.*` event
    that settles a payment is applied as the callback's are, any other is answered 200."""
    provider = call.node.provider
    if not isinstance(provider, StripeProvider):
        raise ConflictError("Stripe is not this engine's payment provider",
                            code="payments_disabled")  # fmt: skip
    body = await call.body()
    payments = call.node.payments
    kind, callback = payments.verified(
        lambda: provider.verify_webhook(call.request.headers, body, now_s=time.time())
    )
    if callback is None:
        return {"outcome": "ignored", "detail": kind}
    return await payments.apply(callback)


def _payment_id(call: Call) -> str:
    return str(call.request.path_params["payment"])


def _simulated_of(node: Node) -> SimulatedProvider:
    """The simulated provider (its routes are mounted only while it is the one in use)."""
    assert node.simulated is not None
    return node.simulated


def _simulated(call: Call) -> SimulatedProvider:
    return _simulated_of(call.node)


@route("/psp/pay/{payment}", ["POST"])
async def pay(call: Call) -> Any:
    """Complete a payment: `{"outcome": "succeeded"|"failed"}` (JSON or a form post). The
    provider calls the engine back before answering, and reports what the engine said."""
    raw = await call.body()
    if call.request.headers.get("content-type", "").startswith("application/x-www-form"):
        outcome = (parse_qs(raw.decode(errors="replace")).get("outcome") or [""])[0]
    else:
        outcome = (await call.decode(PayBody)).outcome
    return await _simulated(call).complete(_payment_id(call), outcome)


@route("/psp/payments/{payment}", ["GET"])
async def get_payment(call: Call) -> Any:
    return await _simulated(call).get(_payment_id(call))


_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fromisoformat alone takes other forms


@route("/psp/settlements/{day}", ["GET"])
async def settlements(call: Call) -> Any:
    """The simulated provider's settlement lines of one UTC day (`YYYY-MM-DD`)."""
    raw = str(call.request.path_params["day"])
    try:
        day = datetime.date.fromisoformat(raw) if _DAY_RE.fullmatch(raw) else None
    except ValueError:
        day = None
    if day is None:
        raise invalid_field("day", "a UTC day, YYYY-MM-DD")
    lines = await _simulated(call).settlement(day)
    return {"day": day.isoformat(), "lines": [dataclasses.asdict(line) for line in lines]}


@route("/psp/payments/{payment}/redeliver", ["POST"])
async def redeliver(call: Call) -> Any:
    """Send the payment's outcome to the engine again (as real providers retry)."""
    return await _simulated(call).deliver(_payment_id(call))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Pay {amount} {currency}</title>
<style>body{{font:16px system-ui;max-width:24rem;margin:2rem auto;padding:0 1rem}}
button{{font-size:1.1rem;width:100%;padding:.8rem;margin:.4rem 0}}</style></head>
<body><h1>livecart test payment</h1>
<p>Order <b>{order}</b> in room <b>{room}</b>: <b>{amount} {currency}</b> (minor units).</p>
<p>State: <b id="state">{state}</b></p>
<form method="post"><button name="outcome" value="succeeded">Pay</button>
<button name="outcome" value="failed">Decline</button></form>
<p><small>Simulated provider: no money moves.</small></p></body></html>
"""


async def pay_page(request: Request) -> Response:
    try:
        record = await _simulated_of(node_of(request)).get(str(request.path_params["payment"]))
    except LivecartError as error:
        return error_response(error)
    except (RedisError, OSError):
        return error_response(UnavailableError("storage unavailable; retry"))
    return HTMLResponse(
        _PAGE.format(
            **{
                k: html.escape(str(v))
                for k, v in record.items()
                if k in {"order", "room", "amount", "currency", "state"}
            }
        )
    )


ROUTES: list[Route] = [
    payment_callback,
    stripe_webhook,
    settlements,
    pay,
    get_payment,
    redeliver,
    Route("/psp/pay/{payment}", pay_page, methods=["GET"]),
]
