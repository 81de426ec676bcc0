"""A simulated payment provider, built in so a show can take money end to end without a
real PSP: create a payment, let the buyer complete it (a pay page, or its JSON API), then
call the engine back over HTTP with a signed callback, like a real provider would.

It is deliberately another system: its records live under `lc:psp:*` (not room data),
and it reaches the engine only through the public callback URL it was given.

Like a real provider it keeps settlement data per UTC day (`settlement`): a charge line when a
payment succeeds, with a simulated fee (`FEE_PERCENT_TENTHS`, `FEE_FIXED`), and a refund line
when a refund is paid out; `record_line` adds any line, for tests of reconciliation.
"""

from __future__ import annotations

import datetime
import logging
import secrets
import time
from typing import Any, Literal

import httpx
import msgspec
import orjson
from msgspec import Struct
from redis.asyncio import Redis

from engine.commerce.payments import PAYMENT_ID_RE, ProviderPayment, SettlementLine, sign
from engine.core.errors import ConflictError, NotFoundError, ProtocolError
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.psp")

OUTCOMES = {"succeeded": "payment.succeeded", "failed": "payment.failed"}
_RECORD_TTL_S = 30 * 24 * 3600  # payments and settlement days alike
# The simulated fee of a charge: 2.9% + 30 minor units, rounded half up to a minor unit (a
# refund's fee is 0). A card rate's shape, not any provider's price list.
FEE_PERCENT_TENTHS = 29
FEE_FIXED = 30


def charge_fee(amount: int) -> int:
    """The simulated fee of a charge of `amount` minor units (integers only: no floats)."""
    return (amount * FEE_PERCENT_TENTHS + 500) // 1000 + FEE_FIXED


def utc_day(at_ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(at_ms / 1000, datetime.UTC).date()


class PayBody(Struct, frozen=True):
    """The buyer's answer to the pay page, as its JSON API takes it (`POST /psp/pay/...`)."""

    outcome: Literal["succeeded", "failed"]


class SimulatedProvider:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        secret: bytes,
        *,
        pay_base_url: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.secret = secret
        self.pay_base_url = pay_base_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    # ---- PaymentProvider ------------------------------------------------------------------

    async def create_payment(
        self, room: str, order: str, amount: int, currency: str, callback_url: str, *,
        pay_base_url: str = "",
    ) -> ProviderPayment:  # fmt: skip
        payment_id = f"pay_{secrets.token_hex(12)}"
        await self.redis.hset(
            keys.psp_payment(payment_id),
            mapping={
                "id": payment_id,
                "room": room,
                "order": order,
                "amount": amount,
                "currency": currency,
                "callback_url": callback_url,
                "state": "created",
                "created_at": int(time.time() * 1000),
                "refunded": 0,
            },
        )
        await self.redis.expire(keys.psp_payment(payment_id), _RECORD_TTL_S)
        base = self.pay_base_url or pay_base_url.rstrip("/") or callback_url.split("/api/", 1)[0]
        return ProviderPayment(payment_id, f"{base}/psp/pay/{payment_id}")

    async def refund(self, payment_id: str, amount: int, refund_id: str) -> str:
        record = await self.get(payment_id)  # a known payment, else payment_not_found
        result = await self.scripts.psp_refund(
            self.redis, [keys.psp_payment(payment_id)], [refund_id, amount]
        )
        if text(result[0]) == "err":
            problem, detail = text(result[1]), text(result[2])
            if problem == "state":
                raise ConflictError(f"payment {payment_id} is {detail}", code="psp_refused")
            raise ConflictError("refund above the amount paid", code="psp_refused")
        if text(result[0]) == "refunded":  # not a replay: one settlement line per refund id
            await self.record_line(self._line(record, "refund", refund_id, int(result[1]), 0))
        return refund_id  # refunded now, or already (idempotent by refund id)

    async def settlement(self, day: datetime.date) -> list[SettlementLine]:
        """The lines of one UTC day, in the order they were recorded."""
        raw = await self.redis.lrange(keys.psp_settlement(day.isoformat()), 0, -1)
        return [msgspec.json.decode(line, type=SettlementLine) for line in raw]

    async def record_line(self, line: SettlementLine) -> None:
        """Add a line to its day's settlement (the provider's own, or any line a test of
        reconciliation needs: a charge with no order, a duplicate, a wrong amount)."""
        key = keys.psp_settlement(utc_day(line.at_ms).isoformat())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, msgspec.json.encode(line))
            pipe.expire(key, _RECORD_TTL_S)
            await pipe.execute()

    @staticmethod
    def _line(record: dict[str, Any], kind: str, reference: str, amount: int,
              fee: int) -> SettlementLine:  # fmt: skip
        return SettlementLine(
            reference=reference, kind=kind, payment_id=record["id"], room=record["room"],
            order=record["order"], amount=amount, currency=record["currency"], fee=fee,
            at_ms=int(time.time() * 1000),
        )  # fmt: skip

    # ---- the buyer's side -----------------------------------------------------------------

    async def get(self, payment_id: str) -> dict[str, Any]:
        if not PAYMENT_ID_RE.fullmatch(payment_id):
            raise NotFoundError(f"no payment {payment_id!r}", code="payment_not_found")
        raw = await self.redis.hgetall(keys.psp_payment(payment_id))
        if not raw:
            raise NotFoundError(f"no payment {payment_id!r}", code="payment_not_found")
        record: dict[str, Any] = {text(k): text(v) for k, v in raw.items()}
        for field in ("amount", "refunded", "created_at"):
            record[field] = int(record[field])
        return record

    async def complete(self, payment_id: str, outcome: str) -> dict[str, Any]:
        """The buyer pays (or the card is declined): record it and call the engine back."""
        if outcome not in OUTCOMES:
            raise ProtocolError(
                "outcome: succeeded or failed", code="invalid_field", details={"field": "outcome"}
            )
        record = await self.get(payment_id)
        if record["state"] == "succeeded":
            raise ConflictError("this payment has already succeeded", code="psp_refused")
        await self.redis.hset(keys.psp_payment(payment_id), "state", outcome)
        # The money is taken whether or not the engine applies the callback: the charge is
        # in the day's settlement from now on, once (the flag stops a racing second success).
        if outcome == "succeeded" and await self.redis.hsetnx(
            keys.psp_payment(payment_id), "charged", 1
        ):
            amount = record["amount"]
            await self.record_line(
                self._line(record, "charge", payment_id, amount, charge_fee(amount))
            )
        return await self.deliver(payment_id)

    async def deliver(self, payment_id: str) -> dict[str, Any]:
        """(Re)send the payment's outcome to the engine, signed, with a fresh nonce: real
        providers redeliver until they get a 2xx, so the engine must apply it once."""
        record = await self.get(payment_id)
        if record["state"] not in OUTCOMES:
            raise ConflictError("the payment has no outcome yet", code="psp_refused")
        body = orjson.dumps(
            {
                "event": OUTCOMES[record["state"]],
                "payment_id": payment_id,
                "room": record["room"],
                "order": record["order"],
                "amount": record["amount"],
                "currency": record["currency"],
            }
        )
        headers = sign(self.secret, body, now_s=time.time())
        try:
            response = await self.http.post(
                record["callback_url"],
                content=body,
                headers={**headers, "content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.warning("callback for %s failed: %s", payment_id, exc)
            return {
                "payment": payment_id,
                "state": record["state"],
                "delivered": False,
                "error": str(exc),
            }
        try:
            answer = response.json()
        except ValueError:
            answer = {"raw": response.text[:200]}
        return {
            "payment": payment_id,
            "state": record["state"],
            "delivered": True,
            "status": response.status_code,
            "engine": answer,
        }
