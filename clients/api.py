"""`ApiClient`: the JSON HTTP API with a bearer token, shared by the host's and the
buyer's clients. Error bodies raise `LivecartClientError` with the wire code."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any, Self

import httpx

from clients.errors import LivecartClientError

IDLE_CONNECTION_S = 4.0  # under the engine's keep-alive (engine/server/listener.py KEEP_ALIVE_S)


class ApiClient:
    def __init__(self, base_url: str, room: str, token: str, *, timeout_s: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        """`ssl_context`: how an https:// engine's certificate is checked (a private CA, or no
        check for a test deployment); None: the system's trusted CAs."""
        self.base_url = base_url.rstrip("/")
        self.room = room
        self.token = token
        self.ssl_context = ssl_context
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=ssl_context if ssl_context is not None else True,
            # The engine closes a connection idle for 5 s (docs/deploy.md); letting go of it
            # sooner keeps a request from going out on one the engine is closing.
            limits=httpx.Limits(keepalive_expiry=IDLE_CONNECTION_S),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, *,
                   content_type: str | None = None,
                   params: dict[str, str] | None = None) -> Any:  # fmt: skip
        """One API call: `body` as JSON, or as raw bytes of `content_type` when given;
        `params`, the query string; error bodies raise LivecartClientError with the wire code."""
        if content_type is None:
            response = await self.http.request(method, path, json=body, params=params)
        else:
            response = await self.http.request(method, path, content=body,
                                               headers={"content-type": content_type})  # fmt: skip
        if response.status_code == 204:
            return None
        data = response.json()
        if response.is_error:
            raise LivecartClientError.from_wire(data.get("error", {}), status=response.status_code)
        return data

    @property
    def _room(self) -> str:
        return f"/api/rooms/{self.room}"
