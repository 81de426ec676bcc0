"""A payment provider that lives outside the engine, for the test that the engine picks its
provider by configuration (LIVECART_PAYMENT_PROVIDER="tests.hooks.provider:LedgerProvider").
It keeps what it was asked in memory; the real providers' contract is the same protocol
(engine/commerce/payments.py `PaymentProvider`)."""

from __future__ import annotations

import datetime
import secrets
from typing import Any

from engine.commerce.payments import ProviderPayment, SettlementLine

CREATED: list[dict[str, Any]] = []  # every payment any LedgerProvider created, in order


class LedgerProvider:
    def __init__(self, redis: Any, scripts: Any, secret: bytes) -> None:
        self.secret = secret

    async def create_payment(
        self, room: str, order: str, amount: int, currency: str, callback_url: str, *,
        pay_base_url: str = "",
    ) -> ProviderPayment:  # fmt: skip
        payment = f"led_{secrets.token_hex(8)}"
        CREATED.append({"payment": payment, "room": room, "order": order, "amount": amount,
                        "currency": currency, "callback_url": callback_url})  # fmt: skip
        return ProviderPayment(payment, f"https://pay.example/{payment}")

    async def refund(self, payment_id: str, amount: int, refund_id: str) -> str:
        return f"re_{refund_id}"

    async def settlement(self, day: datetime.date) -> list[SettlementLine]:
        return []  # it settles nothing: no money moves through it

    async def close(self) -> None:
        return None
