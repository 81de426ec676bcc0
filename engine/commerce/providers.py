"""Which payment provider the engine uses, chosen by configuration through the
`PaymentProvider` protocol (engine/commerce/payments.py), not wired in the node:

    ""                    none: starting a payment is `payments_disabled` (the default of
                          `livecart serve`)
    "simulated"           the built-in simulated provider (engine/commerce/psp.py), for
                          development, demos and load tests; also what
                          LIVECART_SIMULATED_PSP=on selects
    "stripe"              Stripe Checkout (engine/commerce/stripe_provider.py), with the
                          settings' STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET (both required)
    "package.module:name" another provider: `name(redis, scripts, secret)` returns it, where
                          `secret` is the callback signing key (docs/payments.md)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from redis.asyncio import Redis

from engine.commerce.payments import PaymentProvider
from engine.commerce.psp import SimulatedProvider
from engine.commerce.stripe_provider import StripeProvider
from engine.core.settings import Settings
from engine.store.scripts import Scripts

SIMULATED = "simulated"
STRIPE = "stripe"

ProviderFactory = Callable[[Redis, Scripts, bytes], PaymentProvider]


def make_provider(settings: Settings, redis: Redis, scripts: Scripts,
                  secret: bytes) -> PaymentProvider | None:  # fmt: skip
    """The provider `settings.provider` selects (None for none); a ValueError when Stripe
    is selected without its keys."""
    name = settings.provider
    if not name:
        return None
    if name == SIMULATED:
        return SimulatedProvider(redis, scripts, secret)
    if name == STRIPE:
        return StripeProvider.from_settings(settings, redis)
    module, _, attribute = name.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module), attribute)
    return factory(redis, scripts, secret)
