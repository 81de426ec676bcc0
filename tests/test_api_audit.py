"""GET /api/rooms/{room}/audit: the audit report plus the load-test figures, for hosts."""

from __future__ import annotations

import httpx
import pytest

from clients import HostClient, LivecartClientError
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import token
from tests.test_api_catalog import JACKET


async def test_hosts_get_the_report_and_its_figures(engine: Engine, host: HostClient,
                                                    room: str) -> None:  # fmt: skip
    await host.create_product(**JACKET)
    sale = await host.launch_sale("DJ-M", 5)
    report = await host.call("GET", f"/api/rooms/{room}/audit")
    assert report["ok"] is True
    assert (report["oversell"], report["double_used_coupons"]) == (0, 0)
    assert {c["name"] for c in report["checks"]} >= {f"sale {sale['id']}: stock adds up"}
    # Seven units reserved of five: the audit fails and counts two oversold.
    assert engine.node is not None
    await engine.node.redis.hincrby(keys.sale(room, sale["id"]), "reserved", 7)
    damaged = await host.call("GET", f"/api/rooms/{room}/audit")
    assert damaged["ok"] is False
    assert damaged["oversell"] == 2


@pytest.mark.parametrize("role", ["viewer", "moderator"])
async def test_only_hosts_audit(engine: Engine, room: str, role: str) -> None:
    async with HostClient(engine.base_url, room, token(room, role)) as other:
        with pytest.raises(LivecartClientError) as refused:
            await other.call("GET", f"/api/rooms/{room}/audit")
    assert refused.value.code == "forbidden"
    async with httpx.AsyncClient(base_url=engine.base_url) as anonymous:
        response = await anonymous.get(f"/api/rooms/{room}/audit")
    assert response.status_code == 401
