"""The customer tiers a coupon drop can be limited to: names only.

Who holds which tier is decided from the books (engine/ledger/customers.py, docs/ledger.md
§ Customers and RFM); the names live here, below the ledger, because a drop's terms
(engine/commerce/coupons.py) and its claim script check them.
"""

from __future__ import annotations

import enum


class Tier(enum.Enum):
    """A buyer's tier in one shop, from their RFM scores (ledger order), or PROSPECT for
    someone who has not bought from the shop (every viewer the tier map does not name)."""

    CHAMPIONS = "champions"
    LOYAL = "loyal"
    NEW = "new"
    PROMISING = "promising"
    NEEDS_ATTENTION = "needs_attention"
    AT_RISK = "at_risk"
    HIBERNATING = "hibernating"
    PROSPECT = "prospect"


TIER_NAMES: tuple[str, ...] = tuple(tier.value for tier in Tier)
