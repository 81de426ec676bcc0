"""`livecart demo`: the first quick-start command serves a live demo room with bots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Demo:
    process: subprocess.Popen[str]
    lines: dict[str, str]  # "room API" -> its URL, as the demo prints them
    base_url: str
    data_dir: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=10)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(30) == 0


def start_demo(data_dir: Path, env: dict[str, str], stderr: Path, bots: int = 1) -> Demo:
    """`livecart demo` on a free port; returns once it has printed its links."""
    with open(stderr, "w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "demo", "--port", "0", "--bots", str(bots),
             "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=errors, text=True, env=env,
        )  # fmt: skip
    assert process.stdout is not None
    lines: dict[str, str] = {}
    for line in process.stdout:
        words = line.split()
        if len(words) >= 3:
            lines[" ".join(words[:2])] = words[-1]
        if "Ctrl-C" in line:
            break
    base_url = lines["host console"].removesuffix("/console/")
    return Demo(process, lines, base_url, data_dir)


def close(demo: Demo) -> None:
    if demo.process.poll() is None:
        demo.process.kill()
        demo.process.wait()
    if demo.process.stdout is not None:
        demo.process.stdout.close()


def test_demo_serves_a_live_room_with_chatting_bots(tmp_path: Path) -> None:
    env = {**os.environ, "LIVECART_LOG_LEVEL": "WARNING"}
    demo = start_demo(tmp_path / "data", env, tmp_path / "stderr.txt", bots=4)
    lines = demo.lines
    try:
        room_url = lines["room API"]
        console = httpx.get(lines["host console"], timeout=10)
        assert console.status_code == 200
        assert "text/html" in console.headers["content-type"]
        page, _, fragment = lines["viewer page"].partition("#")
        assert fragment.startswith("token=lc1.")
        assert "text/html" in httpx.get(page, timeout=10).headers["content-type"]
        assert lines["viewer socket"].startswith("ws://")
        assert lines["viewer socket"].endswith("/ws/demo")
        assert lines["host token"].startswith("lc1.")
        room = httpx.get(room_url, timeout=10).json()
        assert room["state"] == "live"
        products = httpx.get(f"{room_url}/products", timeout=10).json()["products"]
        assert [p["title"] for p in products] == ["Trail runner sneaker", "Merino hoodie"]
        assert room["pinned_product"] == products[0]["id"]
        auth = {"authorization": f"Bearer {lines['host token']}"}
        templates = httpx.get(f"{room_url}/coupons/templates", timeout=10, headers=auth)
        assert [t["kind"] for t in templates.json()["templates"]] == [
            "amount_off", "free_shipping"
        ]  # fmt: skip
        deadline = time.monotonic() + 30
        comments: list[dict[str, object]] = []
        while not comments and time.monotonic() < deadline:
            comments = httpx.get(f"{room_url}/comments", timeout=10).json()["entries"]
            time.sleep(0.5)
        assert comments, "the demo bots never commented"
        assert {c["user"] for c in comments} <= {f"bot-{n}" for n in range(1, 5)}
        demo.stop()
    finally:
        close(demo)


def test_a_second_demo_says_what_is_running_in_one_sentence(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "demo", "--port", "0", "--bots", "0",
         "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "LIVECART_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    try:
        assert first.stdout is not None
        port = next(line for line in first.stdout if "host console" in line).split(":")[2]
        port = port.split("/")[0]

        def again(port: str) -> list[str]:
            second = subprocess.run(
                [sys.executable, "-m", "engine.cli", "demo", "--port", port, "--data-dir", data],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert second.returncode == 2
            assert "Traceback" not in second.stderr
            return [line for line in second.stderr.splitlines() if line.startswith("livecart")]

        # `make demo` again: its port is the first one's.
        assert again(port) == [
            f"livecart: an engine (or something else) is already listening on 127.0.0.1:{port}: "
            "stop it or pass --port"
        ]
        # Another port, the same folder: the data dir is the first one's.
        [refusal] = again("0")
        assert refusal.startswith(f"livecart: data dir {data}/redis is in use by another engine")
        first.send_signal(signal.SIGINT)
        assert first.wait(20) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if first.stdout is not None:
            first.stdout.close()
