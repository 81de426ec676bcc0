"""Lua scripts: loaded from each context's `lua/*.lua` (`lua_sources`), called by SHA, reloaded
after NOSCRIPT.

Each file starts with a contract header (`-- KEYS[1] - ...`, `-- ARGV[1] - ...`,
`-- returns ...`). The header's KEYS count is enforced on every call, so a caller passing
the wrong keys fails loudly in tests instead of touching the wrong data.

Scripts publish on a room's bus with `redis.call(PUBLISH, ...)`: `PUBLISH` is a Lua local
this module puts at the top of every script, naming the bus's command (PUBLISH or
SPUBLISH, engine/store/bus.py), so that the choice is made once per engine process.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from engine.core.metrics import METRICS
from engine.store.bus import PubSubMode

_KEYS_RE = re.compile(r"^-- KEYS\[(\d+)\]", re.MULTILINE)
_VARIADIC_KEYS_RE = re.compile(r"^-- KEYS\[\d+\.\.n\]", re.MULTILINE)
_ARGV_RE = re.compile(r"^-- ARGV\[(\d+)(?:\.\.n)?\]", re.MULTILINE)
_VARIADIC_RE = re.compile(r"^-- ARGV\[\d+\.\.n\]", re.MULTILINE)
# `--!include _name` pastes lua/_name.lua in place: Redis scripts cannot import, and
# some logic (the clock, serving the waitlist) is shared by several scripts.
_INCLUDE_RE = re.compile(r"^--!include (_[a-z_]+)$", re.MULTILINE)
_LITERAL_PUBLISH_RE = re.compile(r"""redis\.p?call\(\s*['"]S?PUBLISH['"]""", re.IGNORECASE)

RedisArg = str | bytes | int | float
log = logging.getLogger("livecart.scripts")


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str
    num_keys: int
    min_args: int
    variadic: bool
    variadic_keys: bool = False

    @classmethod
    def parse(cls, name: str, source: str) -> Script:
        keys = [int(n) for n in _KEYS_RE.findall(source)]
        argv = [int(n) for n in _ARGV_RE.findall(source)]
        if keys != list(range(1, len(keys) + 1)):
            raise ValueError(f"{name}.lua: KEYS header must number 1..n, got {keys}")
        if "-- returns" not in source:
            raise ValueError(f"{name}.lua: the header must say what the script returns")
        variadic = bool(_VARIADIC_RE.search(source))
        fixed_args = len(argv) - (1 if variadic else 0)
        return cls(
            name=name,
            source=source,
            sha=hashlib.sha1(source.encode()).hexdigest(),
            num_keys=len(keys),
            min_args=fixed_args,
            variadic=variadic,
            variadic_keys=bool(_VARIADIC_KEYS_RE.search(source)),
        )

    async def __call__(self, redis: Redis, keys: list[str], args: list[RedisArg]) -> Any:
        self.check(keys, args)
        try:
            try:
                return await redis.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                # Redis restarted or failed over: its script cache is empty.
                await redis.script_load(self.source)
                return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except ResponseError:
            self.count_error(keys)
            raise

    def check(self, keys: list[str], args: list[RedisArg]) -> None:
        """As many keys and arguments as the script's header says, or TypeError."""
        if len(keys) < self.num_keys or (not self.variadic_keys and len(keys) != self.num_keys):
            raise TypeError(f"{self.name}: expected {self.num_keys} keys, got {len(keys)}")
        if len(args) < self.min_args or (not self.variadic and len(args) != self.min_args):
            raise TypeError(f"{self.name}: expected {self.min_args} args, got {len(args)}")

    def count_error(self, keys: list[str]) -> None:
        """A call the script refused with an error (metrics)."""
        METRICS.script_errors.inc(1, self.name)
        METRICS.room_script_errors.inc(1, room_of_key(keys[0]) if keys else "", self.name)


def room_of_key(key: str) -> str:
    """The room of a room key (its `{room}` hash tag), "" for other keys."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start != -1 and end != -1 and key.startswith("lc:{") else ""


def lua_sources() -> dict[str, str]:
    """Every script of the package by name: each context keeps its scripts in a `lua/`
    folder beside its modules (engine/commerce/lua/grab.lua, ...); names are unique."""
    sources: dict[str, str] = {}
    folders = [resources.files("engine")]
    while folders:
        folder = folders.pop()
        for entry in folder.iterdir():
            if not entry.is_dir() or entry.name.startswith(("_", ".")):
                continue
            if entry.name != "lua":
                folders.append(entry)
                continue
            for script in entry.iterdir():
                name = script.name.removesuffix(".lua")
                if script.name.endswith(".lua"):
                    if name in sources:
                        raise RuntimeError(f"two Lua scripts named {script.name}")
                    sources[name] = script.read_text()
    return sources


class Scripts:
    """Every script of the package, by name, as attributes for readable call sites."""

    all: dict[str, Script]
    bus_publish: Script
    comment_post: Script
    comment_delete: Script
    comment_pin: Script
    room_entry: Script
    room_create: Script
    room_transition: Script
    room_update: Script
    room_sync: Script
    viewer_seen: Script
    sale_create: Script
    sale_adjust: Script
    grab: Script
    award: Script
    release: Script
    confirm: Script
    waitlist_join: Script
    product_save: Script
    product_show: Script
    coupon_drop: Script
    coupon_claim: Script
    checkout: Script
    order_pay: Script
    order_release: Script
    order_refund: Script
    order_mark: Script
    # share links and reminders
    referral_join: Script
    reminder_schedule: Script
    reminder_claim: Script
    reminder_renew: Script
    reminder_finish: Script
    token_revoke: Script
    psp_refund: Script  # the simulated payment provider's

    def __init__(self, pubsub: PubSubMode = PubSubMode.PLAIN) -> None:
        self._sources: dict[str, str] = {}
        sources = lua_sources()
        for name, source in sources.items():
            if not name.startswith("_"):
                expanded = _INCLUDE_RE.sub(lambda m: sources[m.group(1)].rstrip("\n"), source)
                if _LITERAL_PUBLISH_RE.search(expanded):
                    raise ValueError(f"{name}.lua: publish with redis.call(PUBLISH, ...)")
                self._sources[name] = expanded
        self.use(pubsub)

    def use(self, pubsub: PubSubMode) -> None:
        """Build every script for the bus's pub/sub flavour (before the first call)."""
        prelude = f"local PUBLISH = '{pubsub.publish_command}' -- engine/store/scripts.py\n"
        self.all = {name: Script.parse(name, prelude + source)
                    for name, source in self._sources.items()}  # fmt: skip
        for name in type(self).__annotations__:
            if name == "all":
                continue
            if name not in self.all:
                raise RuntimeError(f"missing Lua script {name}.lua")
            setattr(self, name, self.all[name])

    async def load(self, redis: Redis) -> None:
        """SCRIPT LOAD everything so /readyz can report them loaded."""
        for script in self.all.values():
            await redis.script_load(script.source)

    async def loaded(self, redis: Redis) -> bool:
        shas = [script.sha for script in self.all.values()]
        flags = await redis.script_exists(*shas)
        return all(flags)
