"""The JavaScript SDK's tests (clients/js/test/, `node --test`) as part of `make test`.

They start their own engine (`python -m engine.cli serve`, embedded Redis) with this
interpreter (LIVECART_PYTHON). Node 20 needs `--experimental-websocket` for its global
WebSocket; Node 22+ has it built in. A missing node is a failure, not a skip: the SDK
would otherwise go untested without anyone noticing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 180


def _node_flags(node: str) -> list[str]:
    probe = subprocess.run(
        [node, "-e", "process.stdout.write(typeof WebSocket)"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return [] if probe.stdout.strip() == "function" else ["--experimental-websocket"]


def test_js_sdk_node_tests() -> None:
    node = os.environ.get("NODE") or shutil.which("node")
    assert node, (
        "node is not installed (or not on PATH): the JavaScript SDK's tests "
        "(clients/js/test/) need Node.js 20 or newer; install it or set NODE=/path/to/node"
    )
    env = {**os.environ, "LIVECART_PYTHON": os.environ.get("LIVECART_PYTHON", sys.executable)}
    command = [node, *_node_flags(node), "--test", "clients/js/test/"]
    try:
        run = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{' '.join(command)} did not finish in {TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}"
        ) from exc
    assert run.returncode == 0, (
        f"{' '.join(command)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    )
