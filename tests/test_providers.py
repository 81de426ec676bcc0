"""engine/commerce/providers.py: the payment provider is chosen by configuration through
the PaymentProvider protocol (none, the simulated one, Stripe, or a factory named by dotted
path)."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from clients import ShopperClient
from engine.commerce.providers import make_provider
from engine.commerce.stripe_provider import StripeProvider
from engine.core.settings import Settings
from engine.store.scripts import Scripts
from tests.conftest import EngineFactory, RoomFactory, ViewerFactory, token
from tests.hooks import provider
from tests.test_psp import ana_order


def test_the_setting_selects_a_provider() -> None:
    assert Settings().provider == ""
    assert Settings(simulated_psp=True).provider == "simulated"
    assert Settings(payment_provider="tests.hooks.provider:LedgerProvider").provider == (
        "tests.hooks.provider:LedgerProvider"
    )
    assert Settings.from_env({"LIVECART_PAYMENT_PROVIDER": "stripe"}).provider == "stripe"
    with pytest.raises(ValueError, match="payment_provider"):
        Settings.from_env({"LIVECART_PAYMENT_PROVIDER": "paypal"})


@pytest.mark.parametrize(
    "keys",
    [{}, {"stripe_api_key": "sk_test_0123456789"}, {"stripe_webhook_secret": "whsec_0123456789"}],
    ids=["neither", "no webhook secret", "no API key"],
)
async def test_stripe_without_its_keys_refuses_to_start(
    redis: aioredis.Redis, keys: dict[str, str]
) -> None:
    settings = Settings(payment_provider="stripe", **keys)
    with pytest.raises(ValueError, match="STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET"):
        make_provider(settings, redis, Scripts(), b"secret")


async def test_stripe_with_its_keys_is_the_provider(redis: aioredis.Redis) -> None:
    settings = Settings(payment_provider="stripe", stripe_api_key="sk_test_0123456789",
                        stripe_webhook_secret="whsec_0123456789")  # fmt: skip
    provider = make_provider(settings, redis, Scripts(), b"secret")
    assert isinstance(provider, StripeProvider)
    assert provider.payment_methods == ("card", "alipay", "wechat_pay")
    await provider.close()


async def test_a_provider_named_by_configuration_takes_the_payments(
    engine_factory: EngineFactory, room_factory: RoomFactory, viewer_factory: ViewerFactory
) -> None:
    ledger = "tests.hooks.provider:LedgerProvider"
    engine = await engine_factory(simulated_psp=False, payment_provider=ledger)
    room = await room_factory(engine)
    order = await ana_order(engine, room, viewer_factory)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        started = await ana.start_payment(order)
    assert started["pay_url"].startswith("https://pay.example/led_")
    created = next(p for p in provider.CREATED if p["payment"] == started["payment"])
    assert (created["room"], created["order"]) == (room, order)
    assert created["callback_url"].endswith("/api/payments/callback")
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        # The simulated provider is not in use: its routes are not there, /readyz is quiet.
        assert (await http.get(f"/psp/payments/{started['payment']}")).status_code == 404
        assert "simulated_psp" not in (await http.get("/readyz")).json()
