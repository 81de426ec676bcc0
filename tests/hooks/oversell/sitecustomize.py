"""A test hook, never for production: an engine that oversells on purpose, so the load
test's verdict can be shown to catch it (tests/test_loadtest.py).

Put this folder on `PYTHONPATH` and every Python process started with it (the load test's
local engine and its workers among them) imports this module at start-up, which takes the
stock check out of the grab script as the scripts are loaded. The engine's own code has no
such switch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.store import scripts

HOOK_DIR = Path(__file__).resolve().parent
STOCK_CHECK = "elseif quantity > available then"
_real_sources = scripts.lua_sources


def overselling_sources() -> dict[str, str]:
    sources = _real_sources()
    if STOCK_CHECK not in sources["grab"]:
        raise RuntimeError(f"the oversell hook: grab.lua no longer has {STOCK_CHECK!r}")
    sources["grab"] = sources["grab"].replace(STOCK_CHECK, "elseif false then")
    return sources


scripts.lua_sources = overselling_sources
print("test hook: grabs skip the stock check and WILL OVERSELL", file=sys.stderr)
