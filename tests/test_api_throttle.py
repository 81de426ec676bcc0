"""engine.server.api.throttle over real HTTP: viewers' writes are held to the WebSocket's frame
rate per room and user (issue 20: HTTP bids and claims used to have no limit)."""

from __future__ import annotations

import httpx

from clients import HostClient
from engine.core.settings import Limits
from tests.conftest import EngineFactory, RoomFactory, token
from tests.test_api_coupons import TEMPLATE

SLOW = Limits(messages_per_second=0.5, message_burst=5)


async def test_a_viewer_s_writes_over_http_are_rate_limited(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    engine = await engine_factory(limits=SLOW)
    room = await room_factory(engine)
    host_token = token(room, "host", "host-1")
    async with HostClient(engine.base_url, room, host_token) as host:
        template = await host.call("POST", f"/api/rooms/{room}/coupons/templates", TEMPLATE)
        drop = (await host.drop_coupons(template["id"], 50))["id"]
    claim = f"/api/rooms/{room}/coupons/drops/{drop}/claim"
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:

        async def claims(user: str, count: int) -> list[httpx.Response]:
            auth = {"Authorization": f"Bearer {token(room, 'viewer', user)}"}
            return [await http.post(claim, json={"id": f"c{n}"}, headers=auth)
                    for n in range(count)]  # fmt: skip

        answers = await claims("kim", 12)
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 7
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["retryable"] is True
        assert 0 < refused.json()["error"]["details"]["retry_after_ms"] <= 2000
        assert refused.headers["Retry-After"] == "2"
        # Another viewer has a bucket of their own; the host's writes are not limited.
        assert [a.status_code for a in await claims("lee", 5)] == [200] * 5
        auth = {"Authorization": f"Bearer {host_token}"}
        for _ in range(8):
            made = await http.post(f"/api/rooms/{room}/coupons/templates/{template['id']}/drops",
                                   json={"quantity": 1}, headers=auth)  # fmt: skip
            assert made.status_code == 201
        # Reads are not writes: a limited viewer still reads.
        kim = {"Authorization": f"Bearer {token(room, 'viewer', 'kim')}"}
        read = await http.get(f"/api/rooms/{room}/coupons/drops", headers=kim)
        assert read.status_code == 200
