"""The engine behind Debian's nginx, configured by deploy/nginx/livecart.conf, the file
docs/deploy.md § Reverse proxy shows: the test reads the file, and checks that the page
shows it word for word, so what operators copy is what is tested (issues 19 and 23).

nginx pools its connections to the engine (`keepalive`): health checks and viewer
handshakes travel over the same connections, and each must be routed by its own path. The
engine trusts only nginx's address (127.0.0.1) here, so a client connecting from another
loopback address (127.0.0.2) plays someone reaching the engine directly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from clients import HostClient, ViewerClient
from engine.server.app import Engine
from tests.conftest import EngineFactory, token
from tests.test_gateway import collect_comments

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_MD = ROOT / "docs" / "deploy.md"
NGINX_CONF = ROOT / "deploy" / "nginx" / "livecart.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
ELSEWHERE = "127.0.0.2"  # a client address that is not a trusted proxy
TIMEOUT_S = 10.0


def documented_config() -> str:
    """The nginx block of docs/deploy.md § Reverse proxy."""
    section = DEPLOY_MD.read_text().split("\n## Reverse proxy\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    assert match, "docs/deploy.md § Reverse proxy has no nginx block"
    return match.group(1)


def test_the_page_shows_the_configuration_file_as_it_is() -> None:
    assert documented_config() == NGINX_CONF.read_text(), (
        "docs/deploy.md § Reverse proxy and deploy/nginx/livecart.conf differ: copy the file "
        "into the page's nginx block"
    )


def substituted(config: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert config.count(old) == 1, f"deploy/nginx/livecart.conf lost {old!r}"
        config = config.replace(old, new)
    return config


def nginx_conf(directory: Path, engine_port: int, port: int) -> str:
    """A whole nginx.conf: this test's own paths around deploy/nginx/livecart.conf."""
    http = substituted(
        NGINX_CONF.read_text(),
        {"server 127.0.0.1:8000;": f"server 127.0.0.1:{engine_port};",
         "listen 80;": f"listen 127.0.0.1:{port};"},
    )  # fmt: skip
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # One worker: one pool of upstream connections, which every request here shares.
    return f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} notice;
{"user root root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 256; }}
http {{
    access_log {directory / "access.log"};
{temp}
{http}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_nginx(
    directory: Path, engine_port: int, tls: tuple[Path, Path] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """nginx in front of the engine, listening: (its process, its port). With `tls` (a
    certificate and its key) it listens with TLS."""
    assert NGINX, "nginx is missing: make test installs it (Debian: apt-get install nginx)"
    directory.mkdir()
    for _ in range(5):  # another process may take the free port first: try another
        port = free_port()
        conf = nginx_conf(directory, engine_port, port)
        if tls is not None:
            listen = f"listen 127.0.0.1:{port};"
            assert conf.count(listen) == 1
            cert, key = tls
            conf = conf.replace(
                listen,
                f"listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n"
                f"    ssl_certificate_key {key};",
            )
        (directory / "nginx.conf").write_text(conf)
        process = subprocess.Popen(
            [NGINX, "-p", f"{directory}/", "-c", str(directory / "nginx.conf"),
             "-e", str(directory / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        if listening(port, process):
            return process, port
        _, stderr = process.communicate(timeout=TIMEOUT_S)
        assert b"in use" in stderr, stderr.decode()
    raise AssertionError("no free port for nginx")


def listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Whether a proxy `process` accepts on `port` (False: it exited)."""
    deadline = time.monotonic() + TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.02)
    assert process.poll() is not None, f"{process.args[0]} did not listen in time"
    return False


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
    try:
        process.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    assert process.stderr is not None
    process.stderr.close()


@dataclass
class Fronted:
    """What a test reaches through a proxy on this machine (nginx here, HAProxy in
    tests/test_deploy.py): its port and URLs."""

    port: int  # the proxy's

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class Proxied(Fronted):
    engine: Engine

    def upstream_ports(self) -> set[int]:
        """nginx's ports of the connections the engine holds open to it now."""
        return {
            c.raddr.port
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.engine.port
        }

    def viewer_ports(self) -> set[int]:
        """nginx's ports of the engine's open viewer connections."""
        assert self.engine.listener is not None
        return {c.remote_address[1] for c in self.engine.listener.ws_server.all_connections}


@pytest.fixture
async def proxied(engine_factory: EngineFactory, tmp_path: Path) -> AsyncIterator[Proxied]:
    engine = await engine_factory(trusted_proxies=("127.0.0.1",))
    process, port = await asyncio.to_thread(start_nginx, tmp_path / "nginx", engine.port)
    try:
        yield Proxied(port, engine)
    finally:
        await asyncio.to_thread(stop_nginx, process)


@pytest.fixture
async def live_room(proxied: Proxied) -> str:
    room = f"nginx-{secrets.token_hex(4)}"
    async with HostClient(proxied.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Behind a proxy")
        await host.go_live()
    return room


async def test_health_checks_and_viewers_share_pooled_connections(
    proxied: Proxied, live_room: str
) -> None:
    viewers: list[ViewerClient] = []
    rode_a_pooled_connection = 0
    try:
        async with httpx.AsyncClient(base_url=proxied.base_url, timeout=TIMEOUT_S) as http:
            for n in range(10):
                checks = await asyncio.gather(*(http.get("/healthz") for _ in range(3)))
                assert [c.status_code for c in checks] == [200] * 3
                pooled, before = proxied.upstream_ports(), proxied.viewer_ports()
                viewer = ViewerClient(proxied.ws_url, live_room, token(live_room, user=f"u{n}"),
                                      reconnect=False)  # fmt: skip
                viewers.append(viewer)
                welcome = await viewer.connect()  # 101, then hello and welcome
                assert welcome["room"]["id"] == live_room
                (new,) = proxied.viewer_ports() - before
                rode_a_pooled_connection += new in pooled
        # The point of the test: handshakes came on connections that had carried requests.
        assert rode_a_pooled_connection >= 1
        await viewers[0].comment("hello through nginx")
        for viewer in viewers:
            assert await collect_comments(viewer, 1) == ["hello through nginx"]
    finally:
        for viewer in viewers:
            await viewer.close()


async def welcome_over(ws: ClientConnection) -> dict[str, Any]:
    await ws.send(orjson.dumps({"type": "hello"}).decode())
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame: dict[str, Any] = orjson.loads(await ws.recv())
            if frame["type"] == "welcome":
                return frame


async def handshake_status(url: str, origin: str | None, headers: dict[str, str] | None = None,
                           local: str = "127.0.0.1") -> int:  # fmt: skip
    try:
        async with connect(url, origin=origin, additional_headers=headers,  # type: ignore[arg-type]
                           local_addr=(local, 0), open_timeout=TIMEOUT_S):  # fmt: skip
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_a_browser_page_behind_the_proxy_gets_in_and_forgeries_do_not(
    proxied: Proxied, live_room: str
) -> None:
    page = f"http://127.0.0.1:{proxied.port}"  # the page's origin: nginx's host and port
    url = f"{proxied.ws_url}/{live_room}"
    # nginx sends `Host: 127.0.0.1` (no port) and the port in X-Forwarded-Host.
    async with connect(url, origin=page, compression=None) as ws:  # type: ignore[arg-type]
        assert (await welcome_over(ws))["room"]["id"] == live_room
    # A foreign page cannot pass for the engine's own through nginx: nginx sets
    # X-Forwarded-Host itself, over whatever the client sent.
    forged = {"X-Forwarded-Host": "evil.example"}
    assert await handshake_status(url, "http://evil.example", forged) == 403
    # Nor by going around nginx: from an address that is not a trusted proxy the forwarded
    # headers are ignored, so the Origin is compared with the real Host.
    direct = f"{proxied.engine.ws_url}/{live_room}"
    assert await handshake_status(direct, "http://evil.example", forged, ELSEWHERE) == 403
    assert await handshake_status(direct, page, {"X-Forwarded-Host": f"127.0.0.1:{proxied.port}"},
                                  ELSEWHERE) == 403  # fmt: skip


async def test_the_handshake_rate_is_kept_for_the_client_not_for_nginx(
    proxied: Proxied, live_room: str
) -> None:
    forged = {"X-Forwarded-For": "198.51.100.7"}
    # Through nginx from 127.0.0.2: nginx appends the address it saw to what was sent.
    assert await handshake_status(f"{proxied.ws_url}/{live_room}", None, forged, ELSEWHERE) == 101
    # Straight to the engine from 127.0.0.2: the header is ignored.
    direct = f"{proxied.engine.ws_url}/{live_room}"
    assert await handshake_status(direct, None, forged, ELSEWHERE) == 101
    assert proxied.engine.listener is not None
    assert set(proxied.engine.listener.admission.rate.ips) == {ELSEWHERE}
