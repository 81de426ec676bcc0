"""Which payment provider the engine uses, chosen by configuration through the
`PaymentProvider` protocol (engine/commerce/payments.py), not wired in the node:

    ""                    none: starting a payment is `payments_disabled` (the default of
                          `livecart serve`)
    "simulated"           the built-in simulated provider (engine/commerce/psp.py), for
                          development, demos and load tests; also what
                          LIVECART_SIMULATED_PSP=on selects
    "package.module:name" another provider: `name(redis, scripts, secret)` returns it, where
                          `secret` is the callback signing key (docs/orders.md § Providers)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from redis.asyncio import Redis

from engine.commerce.payments import PaymentProvider
from engine.commerce.psp import SimulatedProvider
from engine.store.scripts import Scripts

SIMULATED = "simulated"

ProviderFactory = Callable[[Redis, Scripts, bytes], PaymentProvider]


def make_provider(name: str, redis: Redis, scripts: Scripts,
                  secret: bytes) -> PaymentProvider | None:  # fmt: skip
    """The provider `name` selects (None for none)."""
    if not name:
        return None
    if name == SIMULATED:
        return SimulatedProvider(redis, scripts, secret)
    module, _, attribute = name.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module), attribute)
    return factory(redis, scripts, secret)
