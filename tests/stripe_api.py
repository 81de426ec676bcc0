"""A stand-in for Stripe's API on a free local port, for tests/test_stripe_provider.py: the
routes StripeProvider calls, taking the form-encoded requests the SDK sends and answering
with the shapes of Stripe's API reference (Checkout Sessions, Refunds, Balance Transactions,
list objects, errors), keeping every request it got. It is another system, as Stripe is: the
engine reaches it only through the SDK (`LIVECART_STRIPE_API_BASE`).

What the buyer does on Stripe's page is done here from the test (`pay`, `expire`), and
`event` writes the webhook event Stripe would send for a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_VERSION = "2025-03-31.basil"
# Stripe's own words for two refusals.
IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with."
)
EXPIRES_AT_BOUNDS = (
    "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session "
    "creation."
)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    params: dict[str, str]  # the form body (POST) or the query (GET), as the SDK encoded it
    idempotency_key: str | None
    authorization: str


def _error(status: int, kind: str, message: str, code: str | None = None) -> Response:
    body: dict[str, Any] = {"type": kind, "message": message}
    if code:
        body["code"] = code
    return JSONResponse({"error": body}, status_code=status)


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _page(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


@dataclass
class StripeApi:
    """The state of the stand-in: its objects, and the requests it got, in order."""

    url: str = ""
    page_size: int = 2  # fewer than the provider asks for: its pagination is exercised
    balance_time: int | None = None  # when set, the `created` of new balance transactions
    received: list[Received] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    balance: list[dict[str, Any]] = field(default_factory=list)  # newest last
    _done: dict[tuple[str, str], tuple[dict[str, str], Response]] = field(default_factory=dict)

    def requests(self, method: str, path: str) -> list[Received]:
        return [r for r in self.received if r.method == method and r.path == path]

    # ---- what happens at Stripe outside the API (the buyer, Stripe's own processing) -------

    def pay(self, session_id: str, *, fee: int | None = None) -> dict[str, Any]:
        """The buyer pays the session: a PaymentIntent, its Charge and the Charge's balance
        transaction (fee 2.9% + 30 unless given)."""
        session = self.sessions[session_id]
        intent, charge_id = _id("pi"), _id("ch")
        amount = session["amount_total"]
        charge = {"id": charge_id, "object": "charge", "amount": amount,
                  "currency": session["currency"], "payment_intent": intent, "metadata": {},
                  "status": "succeeded", "created": int(time.time()), "refunded": 0}  # fmt: skip
        self.charges[charge_id] = charge
        session.update(payment_status="paid", status="complete", payment_intent=intent)
        self.add_transaction("charge", charge_id, amount, fee=fee, currency=session["currency"])
        return session

    def expire(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="expired")
        return session

    def add_transaction(self, kind: str, source: str, amount: int, *, fee: int | None = None,
                        at: int | None = None, currency: str = "usd",
                        exchange_rate: float | None = None) -> dict[str, Any]:  # fmt: skip
        fee = (abs(amount) * 29 + 500) // 1000 + 30 if fee is None else fee
        at = at if at is not None else self.balance_time or int(time.time())
        txn = {"id": _id("txn"), "object": "balance_transaction", "amount": amount,
               "currency": currency, "fee": fee, "net": amount - fee, "type": kind,
               "created": at, "source": source,
               "exchange_rate": exchange_rate, "status": "pending",
               "reporting_category": kind}  # fmt: skip
        self.balance.append(txn)
        return txn

    def event(self, kind: str, session_id: str, event_id: str | None = None) -> bytes:
        """The body of the webhook Stripe sends for `kind` about the session as it is now."""
        return orjson.dumps({
            "id": event_id or _id("evt"), "object": "event", "api_version": API_VERSION,
            "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": kind,
            "data": {"object": self.sessions[session_id]},
        })  # fmt: skip

    # ---- the API --------------------------------------------------------------------------

    async def _receive(self, request: Request) -> tuple[dict[str, str], str | None]:
        raw = (await request.body()).decode() if request.method == "POST" else request.url.query
        params = dict(parse_qsl(raw, keep_blank_values=True))
        key = request.headers.get("idempotency-key")
        self.received.append(Received(request.method, request.url.path, params, key,
                                      request.headers.get("authorization", "")))  # fmt: skip
        return params, key

    def _idempotent(self, path: str, key: str | None, params: dict[str, str],
                    make: Callable[[dict[str, str]], Response]) -> Response:  # fmt: skip
        """Stripe's idempotency: the same key and parameters get the first answer again;
        the same key with other parameters is an idempotency_error."""
        if key is not None and (path, key) in self._done:
            first, answer = self._done[(path, key)]
            if first != params:
                return _error(400, "idempotency_error", IDEMPOTENCY_MISMATCH)
            return answer
        answer = make(params)
        if key is not None:
            self._done[(path, key)] = (params, answer)
        return answer

    async def create_session(self, request: Request) -> Response:
        params, key = await self._receive(request)
        return self._idempotent(request.url.path, key, params, self._new_session)

    def _new_session(self, p: dict[str, str]) -> Response:
        for needed in ("mode", "success_url", "line_items[0][price_data][currency]",
                       "line_items[0][price_data][unit_amount]", "line_items[0][quantity]",
                       "line_items[0][price_data][product_data][name]"):  # fmt: skip
            if needed not in p:
                return _error(400, "invalid_request_error", f"Missing required param: {needed}.",
                              "parameter_missing")  # fmt: skip
        now = int(time.time())
        expires_at = int(p.get("expires_at", now + 24 * 3600))
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            return _error(400, "invalid_request_error", EXPIRES_AT_BOUNDS)
        methods = [v for k, v in sorted(p.items()) if k.startswith("payment_method_types[")]
        if "wechat_pay" in methods and "payment_method_options[wechat_pay][client]" not in p:
            return _error(400, "invalid_request_error",
                          "payment_method_options[wechat_pay][client] is required.")  # fmt: skip
        session_id = "cs_test_" + secrets.token_hex(29)
        amount = int(p["line_items[0][price_data][unit_amount]"]) * int(
            p["line_items[0][quantity]"]
        )
        metadata = {k[9:-1]: v for k, v in p.items() if k.startswith("metadata[")}
        session = {
            "id": session_id, "object": "checkout.session", "mode": p["mode"],
            "amount_subtotal": amount, "amount_total": amount,
            "currency": p["line_items[0][price_data][currency]"], "metadata": metadata,
            "client_reference_id": p.get("client_reference_id"), "created": now,
            "expires_at": expires_at, "livemode": False, "payment_intent": None,
            "payment_method_types": methods, "payment_status": "unpaid", "status": "open",
            "success_url": p["success_url"], "cancel_url": p.get("cancel_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }  # fmt: skip
        self.sessions[session_id] = session
        return JSONResponse(session)

    async def get_session(self, request: Request) -> Response:
        await self._receive(request)
        session_id = request.path_params["id"]
        if session_id not in self.sessions:
            return _error(404, "invalid_request_error", f"No such checkout.session: "
                          f"'{session_id}'", "resource_missing")  # fmt: skip
        return JSONResponse(self.sessions[session_id])

    async def list_sessions(self, request: Request) -> Response:
        params, _ = await self._receive(request)
        found = [s for s in reversed(self.sessions.values())
                 if "payment_intent" not in params
                 or s["payment_intent"] == params["payment_intent"]]  # fmt: skip
        limit = int(params.get("limit", 10))
        return JSONResponse(_page(found[:limit], "/v1/checkout/sessions", len(found) > limit))

    async def create_refund(self, request: Request) -> Response:
        params, key = await self._receive(request)
        return self._idempotent(request.url.path, key, params, self._new_refund)

    def create_refund_now(self, params: dict[str, str]) -> dict[str, Any]:
        """A refund made in Stripe's dashboard (not through the API the engine uses)."""
        answer = self._new_refund(params)
        assert answer.status_code == 200, answer.body
        refund: dict[str, Any] = orjson.loads(answer.body)
        return refund

    def _new_refund(self, p: dict[str, str]) -> Response:
        charge = next((c for c in self.charges.values()
                       if c["payment_intent"] == p.get("payment_intent")), None)  # fmt: skip
        if charge is None:
            return _error(400, "invalid_request_error",
                          f"No such payment_intent: '{p.get('payment_intent')}'",
                          "resource_missing")  # fmt: skip
        amount = int(p.get("amount", charge["amount"] - charge["refunded"]))
        if charge["refunded"] + amount > charge["amount"]:
            return _error(400, "invalid_request_error", f"Refund amount ({amount}) is greater "
                          "than unrefunded amount on charge", "amount_too_large")  # fmt: skip
        charge["refunded"] += amount
        refund = {
            "id": _id("re"), "object": "refund", "amount": amount,
            "currency": charge["currency"], "charge": charge["id"],
            "payment_intent": charge["payment_intent"], "status": "succeeded",
            "created": int(time.time()),
            "metadata": {k[9:-1]: v for k, v in p.items() if k.startswith("metadata[")},
        }  # fmt: skip
        self.refunds[refund["id"]] = refund
        self.add_transaction("refund", refund["id"], -amount, fee=0, currency=charge["currency"])
        return JSONResponse(refund)

    async def list_balance(self, request: Request) -> Response:
        params, _ = await self._receive(request)
        low, high = int(params.get("created[gte]", 0)), int(params.get("created[lt]", 2**62))
        expand = "data.source" in {v for k, v in params.items() if k.startswith("expand[")}
        # Newest first, as Stripe lists them; `starting_after` continues after an id.
        found = [t for t in reversed(self.balance) if low <= t["created"] < high]
        after = params.get("starting_after")
        if after:
            found = found[[t["id"] for t in found].index(after) + 1 :]
        size = min(int(params.get("limit", 10)), self.page_size)
        page = [{**t, "source": self._source(t["source"])} if expand else t
                for t in found[:size]]  # fmt: skip
        return JSONResponse(_page(page, "/v1/balance_transactions", len(found) > size))

    def _source(self, source_id: str) -> Any:
        return self.charges.get(source_id) or self.refunds.get(source_id) or source_id

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/checkout/sessions", self.create_session, methods=["POST"]),
            Route("/v1/checkout/sessions", self.list_sessions, methods=["GET"]),
            Route("/v1/checkout/sessions/{id}", self.get_session, methods=["GET"]),
            Route("/v1/refunds", self.create_refund, methods=["POST"]),
            Route("/v1/balance_transactions", self.list_balance, methods=["GET"]),
        ])  # fmt: skip


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[StripeApi]:
    """The stand-in, served on a free local port while the block runs."""
    api = StripeApi()
    config = uvicorn.Config(api.app(), lifespan="off", log_config=None, access_log=False)
    config.load()
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    api.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # What serve() does, less taking the process's signals (SIGINT would stop it, not pytest).
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield api
    finally:
        server.should_exit = True
        await asyncio.wait_for(server.shutdown(), 10)
        sock.close()
