"""The feature seam: what a feature brings, declared in one place, and how features are found.

A feature is a package whose module defines `FEATURE = Feature(...)`. The engine loads the
packages named in `Settings.features` (`LIVECART_FEATURES`, dotted paths, as Saleor loads
its plugins), so nothing below the features imports them; the gateway, the hub's
storefront, the sweeper, the audit, the report, the app's routes and the error table then
iterate what the features declared instead of naming them. A feature's Lua scripts sit in
its `lua/` folder and are loaded with every other script (engine/store/scripts.py).

The callables take the feature's own service (what `service(node)` built once per process)
so a feature needs no attribute on the node; their argument types are `Any` here because
this module sits below everything they touch.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.core.errors import LivecartError, register_codes
from engine.core.identity import Author


@dataclass(frozen=True, slots=True)
class FrameCall:
    """One client frame for a feature: the room, who sent it, and the frame decoded into
    its schema (an instance of the Frame's `schema`)."""

    room: str
    author: Author
    message: Any


@dataclass(frozen=True, slots=True)
class Frame:
    """A client frame type a feature answers. `schema` is its typed definition, a
    subclass of engine.realtime.protocol.ClientFrame tagged with the frame's `type` (with
    an optional `id` request id): the gateway decodes and validates it with the core's
    frames in one union, so its refusals are the documented errors. `handle(service,
    call)` applies the rules that need the room (raising a LivecartError with its code)
    and returns the ack's `result`. The frame takes a token from the connection's frame
    budget like every frame."""

    schema: type[Any]
    handle: Callable[[Any, FrameCall], Awaitable[dict[str, Any]]]
    signed_in: bool = True  # anonymous viewers get `forbidden`
    ack_without_id: bool = False  # answer a frame without `id` too (an ack with no `ref`)
    # Refusals that mean another client got there first (a bid outbid in the same
    # instant), not a misbehaving one: they do not count against the error budget.
    race_lost: frozenset[str] = frozenset()

    @property
    def type(self) -> str:
        tag: str = self.schema.__struct_config__.tag
        return tag


class RoomView(Protocol):
    """What one process shows of a feature in one room: its welcome field and the changes
    its ticks carry, kept in step with the room log's entries of the feature's kinds."""

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None: ...

    async def refresh(self) -> None: ...  # before a welcome

    async def poll(self) -> None: ...  # once per sync interval

    def welcome(self) -> Any: ...

    def take_changes(self) -> Any | None: ...  # None: nothing changed since the last tick


class WelcomeListView:
    """A RoomView shown in welcomes only: the feature's API objects (each with an `id`),
    read again before the next welcome once an entry marks them stale; ticks carry nothing
    of them, viewers follow the feature's own room-log entries. A subclass reads them
    (`read`) and says which entries change what it holds (`apply`, with `stale`, `items`)."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.items: dict[str, dict[str, Any]] = {}  # id -> API object, in reading order
        self.stale = True  # read them before the next welcome

    async def read(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def apply(self, kind: str, ref: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    async def refresh(self) -> None:
        if self.stale:
            self.stale = False
            self.items = {item["id"]: item for item in await self.read()}

    async def poll(self) -> None:
        """Nothing to read once per sync: the entries carry every change viewers see."""

    def welcome(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def take_changes(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Feature:
    """Everything a feature plugs in. `name` is also its field in welcomes and ticks, its
    section of the post-live report, and its folder under `/features/` for web modules."""

    name: str
    service: Callable[[Any], Any]  # the node -> the feature's service (once per process)
    routes: Sequence[Any] = ()  # Starlette routes
    frames: Sequence[Frame] = ()
    entry_kinds: tuple[str, ...] = ()  # the room-log entry kinds (prefixes) it follows
    room_view: Callable[[Any, str], RoomView] | None = None  # (service, room)
    # A sweeper pass: (service, every room's id, now in ms) -> how many items it handled.
    sweep: Callable[[Any, list[str], int], Awaitable[int]] | None = None
    # Its checks: (redis, report, room, snapshot), the snapshot being the commerce audit's
    # atomic read of the room's sales, reservations, orders and payments.
    audit: Callable[[Any, Any, str, Any], Awaitable[None]] | None = None
    report: Callable[[Any, str], Awaitable[Any]] | None = None  # (redis, room) -> section
    errors: Mapping[str, type[LivecartError]] = field(default_factory=dict)
    # What a posted comment can also mean to it (a keyword, an order): (service, room,
    # author, text), after the comment is in the room; a failure is logged, never an
    # error on the comment.
    on_comment: Callable[[Any, str, Author, str], Awaitable[None]] | None = None
    # An order paid: (service, room, order id), after its payment is recorded.
    on_paid: Callable[[Any, str, str], Awaitable[None]] | None = None
    web: Path | None = None  # a folder with `console.js` and/or `viewer.js`

    def web_modules(self) -> dict[str, str]:
        """The page modules it ships: {"console": url, "viewer": url} (those that exist)."""
        if self.web is None:
            return {}
        return {page: f"/features/{self.name}/{page}.js" for page in ("console", "viewer")
                if (self.web / f"{page}.js").is_file()}  # fmt: skip


def load_features(paths: Sequence[str]) -> tuple[Feature, ...]:
    """The features of these packages (dotted paths), their error codes registered."""
    features: list[Feature] = []
    for path in paths:
        feature = getattr(importlib.import_module(path), "FEATURE", None)
        if not isinstance(feature, Feature):
            raise ValueError(f"features: {path!r} defines no FEATURE = Feature(...)")
        if any(f.name == feature.name for f in features):
            raise ValueError(f"features: two features named {feature.name!r}")
        register_codes(feature.errors)
        features.append(feature)
    return tuple(features)
