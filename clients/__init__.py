"""livecart's Python SDK: `ViewerClient` (realtime), `HostClient` (HTTP API + realtime) and
`ShopperClient` (a viewer's coupons, checkout, payment, orders, group-buy teams, share links
and reminders over HTTP)."""

from clients.backoff import Backoff
from clients.errors import LivecartClientError
from clients.host import HostClient
from clients.shopper import ShopperClient
from clients.viewer import ViewerClient

__all__ = ["Backoff", "HostClient", "LivecartClientError", "ShopperClient", "ViewerClient"]
