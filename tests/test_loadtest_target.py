"""`livecart loadtest --host` against a deployment as testers meet one (loadtests/target.py):
an engine behind nginx terminating TLS with a certificate from a CA of the test's own (made
with the `openssl` CLI), the host token kept out of `ps`, and `--cleanup` ending the room.

The runs are real and small (8 viewers, 6 s of opening-rush) through nginx to a real engine:
trusting the CA (`--ca-file`) gives a good verdict, not trusting it is exit 2 naming the
remedy, `--insecure` works and says it checks nothing."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from packaging.requirements import Requirement

from clients import HostClient
from engine.server.app import Engine
from loadtests import target
from tests.conftest import EngineFactory, token
from tests.test_proxy import TIMEOUT_S, start_nginx, stop_nginx

ROOT = Path(__file__).resolve().parents[1]
# Variables of the test's own environment that would change what a run reads.
CLEARED = {target.TOKEN_ENV, target.CA_FILE_ENV, target.INSECURE_ENV, "WEBSOCKET_CLIENT_CA_BUNDLE",
           "SSL_CERT_FILE", "SSL_CERT_DIR"}  # fmt: skip


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of this test's own and a certificate it signed for 127.0.0.1: (the CA's PEM,
    the server's certificate, the server's key)."""
    directory.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=livecart load-test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
            cwd=directory)  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
            cwd=directory)  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@dataclass
class Deployment:
    engine: Engine
    url: str  # https:// through nginx
    ca: Path
    room: str

    @property
    def host_token(self) -> str:
        return token(self.room, "host", "load-tester")


@pytest.fixture
async def deployment(engine_factory: EngineFactory, tmp_path: Path) -> AsyncIterator[Deployment]:
    ca, cert, key = await asyncio.to_thread(make_certificates, tmp_path / "tls")
    # nginx is the trusted proxy: the engine believes its X-Forwarded-Host (the Origin check).
    engine = await engine_factory(trusted_proxies=("127.0.0.1",))
    process, port = await asyncio.to_thread(
        start_nginx, tmp_path / "nginx", engine.port, (cert, key)
    )
    try:
        yield Deployment(engine, f"https://127.0.0.1:{port}", ca, f"lt-{secrets.token_hex(4)}")
    finally:
        await asyncio.to_thread(stop_nginx, process)


@dataclass
class Run:
    code: int
    verdict: dict[str, Any] | None
    stderr: str


async def loadtest(deployment: Deployment, out: Path, *args: str, generator: str = "asyncio",
                   env: dict[str, str] | None = None) -> Run:  # fmt: skip
    """`livecart loadtest opening-rush` against the deployment (in a thread: the engine
    serves from this test's event loop meanwhile)."""
    command = [
        sys.executable, "-m", "engine.cli", "loadtest", "opening-rush", "--users", "8",
        "--spawn-rate", "8", "--duration", "6", "--processes", "1", "--generator", generator,
        "--host", deployment.url, "--room", deployment.room, "--out", str(out), "--json", *args,
    ]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED} | (env or {})
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=150, check=False,
        env=environ, cwd=ROOT,
    )  # fmt: skip
    verdict = orjson.loads(result.stdout) if result.stdout else None
    return Run(result.returncode, verdict, result.stderr)


def assert_good(run: Run) -> dict[str, Any]:
    assert run.verdict is not None, run.stderr[-3000:]
    assert run.code == 0, (run.verdict["problems"], run.stderr[-2000:])
    assert run.verdict["ok"] is True
    assert run.verdict["viewers_joined"] == 8
    assert run.verdict["by_type"]["WS join"]["count"] >= 8
    assert run.verdict["by_type"]["HTTP token"]["failures"] == 0
    return run.verdict


async def room_seen(deployment: Deployment, bearer: str | None) -> httpx.Response:
    """The room as the engine answers it directly (no proxy), with or without a token."""
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    async with httpx.AsyncClient(base_url=deployment.engine.base_url, timeout=TIMEOUT_S) as http:
        return await http.get(f"/api/rooms/{deployment.room}", headers=headers)


async def test_trusting_the_ca_runs_a_good_show_and_cleanup_ends_the_room(
    deployment: Deployment, tmp_path: Path
) -> None:
    token_file = tmp_path / "host-token"
    token_file.write_text(deployment.host_token + "\n")
    run = await loadtest(deployment, tmp_path / "out", "--ca-file", str(deployment.ca),
                         "--host-token-file", str(token_file), "--cleanup")  # fmt: skip
    verdict = assert_good(run)
    assert "visible" not in run.stderr  # no token on the command line, no ps warning
    # --cleanup: after the verdict the room is private and ended.
    assert verdict["cleanup"] == {"state": "ended", "private": True}
    anonymous = await room_seen(deployment, None)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "auth_required"
    room = (await room_seen(deployment, deployment.host_token)).json()
    assert (room["state"], room["settings"]["allow_anonymous"]) == ("ended", False)
    assert room["ended_at"] is not None
    assert deployment.room not in await public_rooms(deployment)  # and unlisted


async def public_rooms(deployment: Deployment) -> list[str]:
    async with httpx.AsyncClient(base_url=deployment.engine.base_url, timeout=TIMEOUT_S) as http:
        rooms: list[str] = (await http.get("/api/rooms")).json()["rooms"]
        return rooms


async def test_an_untrusted_certificate_is_exit_2_naming_the_remedy(
    deployment: Deployment, tmp_path: Path
) -> None:
    # The token comes from LIVECART_HOST_TOKEN, the default: the run gets as far as TLS.
    run = await loadtest(deployment, tmp_path / "out",
                         env={target.TOKEN_ENV: deployment.host_token})  # fmt: skip
    assert run.code == 2, run.stderr[-2000:]
    assert run.verdict is None
    assert "could not run the load test" in run.stderr
    assert "TLS certificate was not trusted" in run.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in run.stderr
    assert "--ca-file PATH" in run.stderr
    assert "--insecure" in run.stderr
    # Nothing happened to the room: the first call was refused by the client's TLS check.
    assert (await room_seen(deployment, None)).status_code == 404


async def test_insecure_runs_without_checking_and_says_so(
    deployment: Deployment, tmp_path: Path
) -> None:
    run = await loadtest(deployment, tmp_path / "out", "--insecure", "--host-token-env",
                         "MY_SHOW_TOKEN", env={"MY_SHOW_TOKEN": deployment.host_token})  # fmt: skip
    verdict = assert_good(run)
    assert "warning: --insecure" in run.stderr
    assert "is not checked" in run.stderr
    assert "cleanup" not in verdict
    room = (await room_seen(deployment, None)).json()  # no --cleanup: still live and public
    assert (room["state"], room["settings"]["allow_anonymous"]) == ("live", True)


async def test_locust_trusts_the_ca_file(deployment: Deployment, tmp_path: Path) -> None:
    run = await loadtest(deployment, tmp_path / "out", "--ca-file", str(deployment.ca),
                         "--host-token", deployment.host_token, generator="locust")  # fmt: skip
    verdict = assert_good(run)
    assert verdict["generator"] == "locust"
    assert verdict["by_type"]["WS connect"]["failures"] == 0
    # The token given on the command line works, with the warning that ps shows it.
    assert "--host-token is visible to every user of this machine (ps)" in run.stderr


LOCUST_PROBE = """
import sys
from locust.env import Environment
from loadtests.locust_client import CallFailed, EngineClient
from loadtests.target import Tls

url, room, token, ca = sys.argv[1:5]
env = Environment()
cases = (("system", Tls()), ("ca-file", Tls(ca_file=ca)), ("insecure", Tls(insecure=True)))
for name, tls in cases:
    client = EngineClient(env, url, room, token, tls=tls)
    for step in (lambda: client.mint_token("tls-probe"), client.connect):
        try:
            step()
            print(name, "ok")
        except CallFailed as exc:
            print(name, "failed", exc.code)
    client.close()
"""


async def test_locust_viewers_check_the_certificate(deployment: Deployment) -> None:
    """The locust viewers' own TLS settings, both their HTTP session (locust's FastHttpSession
    checks nothing unless told to) and their WebSocket, in a process of its own (locust
    patches the standard library for gevent on import)."""
    host = deployment.host_token
    async with HostClient(deployment.engine.base_url, deployment.room, host) as client:
        await client.create_room("TLS probe")
        await client.go_live()
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", LOCUST_PROBE, deployment.url, deployment.room, host,
         str(deployment.ca)],
        capture_output=True, text=True, timeout=60, check=False, env=environ, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 6, result.stdout
    # Without the CA (the system's CAs): the token request and the handshake both fail.
    assert lines[0].startswith("system failed")
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]
    assert lines[1] == "system failed connect_failed"
    assert lines[2:] == ["ca-file ok", "ca-file ok", "insecure ok", "insecure ok"]


# ---- options, without a deployment ------------------------------------------------------------


def options(**given: Any) -> argparse.Namespace:
    values = {"host": "https://shop.test", "host_token": None, "host_token_env": None,
              "host_token_file": None, "ca_file": None, "insecure": False}  # fmt: skip
    return argparse.Namespace(**(values | given))


def test_the_host_token_comes_from_a_file_a_named_variable_or_the_default(
    tmp_path: Path,
) -> None:
    file = tmp_path / "token"
    file.write_text("  from-file\n")
    assert target.host_token(options(host_token_file=str(file)), {}) == "from-file"
    assert target.host_token(options(host_token_env="SHOW"), {"SHOW": "from-env"}) == "from-env"
    assert target.host_token(options(), {target.TOKEN_ENV: "default"}) == "default"
    assert target.host_token(options(host_token="argv"), {target.TOKEN_ENV: "x"}) == "argv"
    assert target.host_token(options(), {}) == ""
    with pytest.raises(ValueError, match=r"\$SHOW is not set or empty"):
        target.host_token(options(host_token_env="SHOW"), {target.TOKEN_ENV: "default"})
    file.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        target.host_token(options(host_token_file=str(file)), {})
    with pytest.raises(ValueError, match="cannot read it"):
        target.host_token(options(host_token_file=str(tmp_path / "missing")), {})


def test_tls_settings_reach_the_generators_through_the_environment(tmp_path: Path) -> None:
    ca, _, _ = make_certificates(tmp_path / "tls")
    tls = target.tls_from_args(options(ca_file=str(ca)), "https://shop.test")
    assert target.Tls.from_env(tls.env()) == tls == target.Tls(str(ca))
    assert tls.sslopt() == {"ca_certs": str(ca)}
    assert tls.context() is not None
    insecure = target.tls_from_args(options(insecure=True), "https://shop.test")
    assert target.Tls.from_env(insecure.env()) == insecure == target.Tls(insecure=True)
    context = insecure.context()
    assert context is not None
    assert (context.check_hostname, context.verify_mode) == (False, 0)
    assert target.Tls.from_env({}) == target.Tls()
    assert target.Tls().context() is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host-token-env", "X"], "--host-token-env is for an existing deployment"),
        (["--host-token-file", "/x"], "--host-token-file is for an existing deployment"),
        (["--host", "https://127.0.0.1:1", "--room", "r", "--host-token", "t",
          "--host-token-env", "X"], "--host-token and --host-token-env exclude each other"),
        (["--host", "http://127.0.0.1:1", "--room", "r", "--host-token", "t", "--insecure"],
         "--ca-file and --insecure are for an https:// --host"),
        (["--host", "https://127.0.0.1:1", "--room", "r", "--host-token", "t", "--ca-file",
          "/nonexistent.pem"], "--ca-file /nonexistent.pem: no such file"),
        (["--host", "https://127.0.0.1:1", "--room", "r", "--host-token", "t", "--ca-file",
          __file__], "not a PEM CA bundle"),
        (["--host", "https://127.0.0.1:1", "--room", "r", "--host-token-env", "UNSET_TOKEN_X"],
         "$UNSET_TOKEN_X is not set or empty"),
    ],
)  # fmt: skip
def test_target_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "loadtest", "opening-rush", "--generator",
         "asyncio", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in CLEARED},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


# ---- the install ------------------------------------------------------------------------------


def test_the_loadtest_extra_is_what_dev_pins_for_it() -> None:
    """`pip install 'livecart[loadtest]'` gets locust and websocket-client without the test
    tools, with the same ranges the dev extra (and so requirements/dev.txt) has."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    loadtest = {Requirement(r).name: str(Requirement(r)) for r in extras["loadtest"]}
    dev = {Requirement(r).name: str(Requirement(r)) for r in extras["dev"]}
    assert set(loadtest) == {"locust", "websocket-client"}
    assert {name: dev.get(name) for name in loadtest} == loadtest
    assert not {"pytest", "mypy", "playwright", "ruff"} & set(loadtest)
