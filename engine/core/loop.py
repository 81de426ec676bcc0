"""The event loop: uvloop where installed (as uvicorn does), else asyncio's own.

uvloop's C transports make each socket write several times cheaper, which is where a
fan-out engine spends its time (ARCHITECTURE.md). LIVECART_LOOP=asyncio opts out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get("LIVECART_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], timeout_s: float = 5.0) -> None:
    """Cancel `tasks` and wait for them to end, for at most `timeout_s`. A task can turn
    its cancellation into an ordinary error (a client library may, mid-command) and carry
    on: a shutdown must not wait for it forever."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)
