"""Where show reminders go (docs/social.md): a `Notifier` receives one `Reminder` per
(event, subscriber). Built in: `LogNotifier` (a structured log line) and `WebhookNotifier`
(a signed JSON POST, retried with backoff).

A reminder's `id` is its idempotency key: the same for every delivery attempt of one
event to one user, so a receiver drops the rare redelivery after an engine crash.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from engine.commerce.payments import sign

log = logging.getLogger("livecart.reminders")

IDEMPOTENCY_HEADER = "idempotency-key"
_KEY_LABEL = b"livecart reminders"


class ReminderKind(enum.Enum):
    GOING_LIVE = "going_live"
    SALE_SOON = "sale_soon"


@dataclass(frozen=True, slots=True)
class Reminder:
    id: str  # "<room>:<event>:<user>", the idempotency key
    kind: ReminderKind
    room: str
    event: str
    user: str
    due_at: int
    data: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind.value, "room": self.room, "event": self.event,
            "user": self.user, "due_at": self.due_at, "url": f"/live/{self.room}", **self.data,
        }  # fmt: skip


class NotifierError(Exception):
    """A reminder could not be delivered (the notifier gave up)."""


class Notifier(Protocol):
    async def send(self, reminder: Reminder) -> None:
        """Deliver one reminder; raise NotifierError when it cannot be."""

    async def close(self) -> None: ...


class LogNotifier:
    """One INFO line on the `livecart.reminders` logger per reminder (fields in `extra`)."""

    async def send(self, reminder: Reminder) -> None:
        log.info("reminder %s for %s in %s", reminder.kind.value, reminder.user, reminder.room,
                 extra={"room": reminder.room, "user": reminder.user,
                        "reminder": reminder.to_wire()})  # fmt: skip

    async def close(self) -> None:
        return None


def webhook_secret(engine_secret: str) -> bytes:
    """The webhook's HMAC key: derived from the engine secret, as receivers derive it."""
    return hmac.new(engine_secret.encode(), _KEY_LABEL, hashlib.sha256).hexdigest().encode()


class WebhookNotifier:
    """POSTs each reminder as JSON, signed like payment callbacks (x-livecart-timestamp,
    -nonce = the reminder id, -signature = hex HMAC-SHA256 of "timestamp.nonce.body"),
    with an Idempotency-Key header. Retries connection errors and 5xx with exponential
    backoff, `attempts` tries in all; a 4xx or the last failure raises NotifierError."""

    def __init__(self, url: str, secret: bytes, *, attempts: int = 4, backoff_s: float = 0.25,
                 timeout_s: float = 5.0) -> None:  # fmt: skip
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, reminder: Reminder) -> None:
        body = orjson.dumps(reminder.to_wire())
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            headers = sign(self.secret, body, now_s=time.time(), nonce=reminder.id)
            try:
                response = await self.http.post(self.url, content=body, headers={
                    **headers, IDEMPOTENCY_HEADER: reminder.id,
                    "content-type": "application/json",
                })  # fmt: skip
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break  # the receiver refuses it: retrying cannot help
        log.warning("reminder %s not delivered: %s", reminder.id, problem,
                    extra={"room": reminder.room, "user": reminder.user})  # fmt: skip
        raise NotifierError(problem)

    async def close(self) -> None:
        await self.http.aclose()


def notifier_for(webhook_url: str, engine_secret: str) -> Notifier:
    """The configured notifier: the webhook when a URL is set, else the log."""
    if webhook_url:
        return WebhookNotifier(webhook_url, webhook_secret(engine_secret))
    return LogNotifier()
