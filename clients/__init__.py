"""livecart's Python SDK: `ViewerClient` (realtime) and `HostClient` (HTTP API + realtime)."""

from clients.backoff import Backoff
from clients.errors import LivecartClientError
from clients.host import HostClient
from clients.viewer import ViewerClient

__all__ = ["Backoff", "HostClient", "LivecartClientError", "ViewerClient"]
