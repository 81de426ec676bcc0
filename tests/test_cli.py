"""The `livecart` command line as operators run it: real processes, real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from clients import HostClient, ViewerClient
from engine import cli
from engine.core.identity import Role
from engine.core.settings import Settings, load_secret
from engine.rooms import auth
from engine.store import keys
from tests.conftest import SECRET
from tests.test_gateway import collect_comments

LIVECART = [sys.executable, "-m", "engine.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LIVECART, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [*LIVECART, "serve", "--port", "0", "--workers", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://" in line, line
        yield process, line.split("listening on ", 1)[1].split()[0]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_token_command_mints_a_verifiable_token(tmp_path: Path) -> None:
    secret = load_secret(Settings(data_dir=tmp_path))  # what `serve` made in its data dir
    result = run("token", "--room", "shop", "--role", "moderator", "--user", "mod-1",
                 "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = auth.verify(secret, result.stdout.strip(), room="shop")
    assert (claims.role, claims.user) == (Role.MODERATOR, "mod-1")


def test_token_command_never_invents_a_secret(tmp_path: Path) -> None:
    # Run away from the engine's folder: a secret made up here would sign a token the
    # engine rejects, so the command says where it looked and how to point it there.
    empty = tmp_path / "elsewhere"
    result = run("token", "--room", "shop", "--role", "host", "--data-dir", str(empty),
                 env={k: v for k, v in os.environ.items() if k != "LIVECART_SECRET"})  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"livecart: no token secret at {empty.resolve() / 'secret'}: run this in the folder "
        "where the engine runs, pass --data-dir with the engine's data dir, or set "
        "LIVECART_SECRET to the engine's secret\n"
    )
    assert not empty.exists()
    # LIVECART_SECRET is the engine's secret wherever the command runs.
    result = run("token", "--room", "shop", "--role", "host", "--data-dir", str(empty),
                 env={**os.environ, "LIVECART_SECRET": SECRET})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert auth.verify(SECRET, result.stdout.strip(), room="shop").role is Role.HOST
    assert not empty.exists()


def test_token_command_rejects_bad_input(tmp_path: Path) -> None:
    result = run("token", "--room", "Bad Room!", "--role", "host", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "room ids" in result.stderr


@pytest.mark.parametrize("ttl", ["0", "-60", "604801", "31536000", "1.5", "1d"])
def test_token_ttl_is_bounded(ttl: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--ttl` from 1 s to 7 days, as the hosts' HTTP route (issue 20: it had no bound)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["token", "--room", "shop", "--role", "host", "--ttl", ttl])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"livecart token: error: argument --ttl: must be a whole number from 1 to 604800, "
        f"not {ttl!r}"
    )


def test_token_ttl_up_to_seven_days(tmp_path: Path) -> None:
    secret = load_secret(Settings(data_dir=tmp_path))
    longest = run("token", "--room", "shop", "--role", "host", "--ttl", "604800",
                  "--data-dir", str(tmp_path))  # fmt: skip
    assert longest.returncode == 0, longest.stderr
    claims = auth.verify(secret, longest.stdout.strip(), room="shop")
    assert claims.expires_at - claims.issued_at == 604800
    beyond = run("token", "--room", "shop", "--role", "host", "--ttl", "604801",
                 "--data-dir", str(tmp_path))  # fmt: skip
    assert (beyond.returncode, beyond.stdout) == (2, "")
    assert "argument --ttl: must be a whole number from 1 to 604800" in beyond.stderr


def test_token_command_refuses_a_secret_file_open_to_others(tmp_path: Path) -> None:
    load_secret(Settings(data_dir=tmp_path))
    path = tmp_path / "secret"
    path.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if k != "LIVECART_SECRET"}
    result = run("token", "--room", "shop", "--role", "host", "--data-dir", str(tmp_path),
                 env=env)  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"livecart: the token secret file {path} is open to other "
                                    f"users (mode 0644): run `chmod 600 {path}`")  # fmt: skip
    path.chmod(0o600)
    assert run("token", "--room", "shop", "--role", "host", "--data-dir", str(tmp_path),
               env=env).returncode == 0  # fmt: skip


def test_serve_with_a_short_secret_is_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "LIVECART_SECRET": "sekrit"}
    result = run("serve", "--port", "0", "--workers", "1", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "livecart: LIVECART_SECRET must be at least 32 characters long, not 6: generate one "
        "with python -c 'import secrets; print(secrets.token_urlsafe(32))'\n"
    )


def test_serve_warns_at_start_when_no_origin_is_configured(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {"LIVECART_PUBLIC_URL", "LIVECART_ALLOWED_ORIGINS"}}  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*LIVECART, "serve", "--port", "0", "--workers", "1", "--data-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )  # fmt: skip
    assert process.stdout is not None
    with process.stdout:
        try:
            assert "listening on http://" in process.stdout.readline()
        finally:
            process.terminate()
            process.wait(30)
    warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
    assert any(
        "no browser origin is configured (LIVECART_PUBLIC_URL, LIVECART_ALLOWED_ORIGINS)" in line
        for line in warnings
    ), warnings


def test_serve_with_embedded_redis_and_graceful_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving("--data-dir", str(data)) as (process, url):
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready == {
            "ok": True,
            "checks": {"redis": True, "scripts": True, "pubsub": True},
            "simulated_psp": True,
        }
        redis_pid, port = _embedded_redis(data)
        config = redis.Redis(port=port)
        try:
            assert config.config_get("dir") == {"dir": str((data / "redis").resolve())}
            assert config.config_get("appendonly") == {"appendonly": "yes"}
            assert config.config_get("appendfsync") == {"appendfsync": "everysec"}
        finally:
            config.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    assert not Path(f"/proc/{redis_pid}").exists()


def _embedded_redis(data: Path) -> tuple[int, int]:
    """(pid, port) of the embedded redis-server, from its log ("Running mode=..., port=N")."""
    log = data / "redis" / "redis.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if "port=" in line]
        if lines:
            pid, _, rest = lines[-1].partition(":")
            return int(pid), int(rest.rsplit("port=", 1)[1].rstrip("."))
        time.sleep(0.1)
    raise AssertionError("embedded redis-server not found")


async def test_two_serve_processes_share_one_redis(redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "LIVECART_SECRET": SECRET}
    room = "two-processes"
    with serving(env=env) as (_, url_a), serving(env=env) as (_, url_b):
        host_token = auth.mint(SECRET, room=room, role=Role.HOST, user="host-1")
        async with HostClient(url_a, room, host_token) as host:
            await host.create_room("shared")
            await host.go_live()
        ws = lambda url: url.replace("http://", "ws://") + "/ws"  # noqa: E731
        poster = ViewerClient(
            ws(url_a), room, auth.mint(SECRET, room=room, role=Role.VIEWER, user="p")
        )
        watchers = [ViewerClient(ws(url_b), room, None) for _ in range(3)]
        await poster.connect()
        for watcher in watchers:
            await watcher.connect()
        try:
            await poster.comment("from process A")
            for watcher in watchers:
                assert await collect_comments(watcher, 1) == ["from process A"]
            client = redis.Redis.from_url(redis_url)
            try:
                shard = client.execute_command("PUBSUB", "SHARDNUMSUB", keys.room_bus(room))
                assert shard == [keys.room_bus(room).encode(), 2]  # sharded: Redis 7
            finally:
                client.close()
        finally:
            await poster.close()
            for watcher in watchers:
                await watcher.close()


@pytest.mark.parametrize("flag", ["--redis-url", "REDIS_URL"])
def test_existing_redis_by_flag_or_env(redis_url: str, tmp_path: Path, flag: str) -> None:
    args: tuple[str, ...] = ("--data-dir", str(tmp_path))
    env = None
    if flag == "--redis-url":
        args += ("--redis-url", redis_url)
    else:
        env = {"REDIS_URL": redis_url}
    with serving(*args, env=env) as (_, url):
        assert httpx.get(f"{url}/readyz", timeout=10).json()["ok"] is True
    assert not (tmp_path / "redis").exists()  # no embedded server was started


# ---- what a new user trips on: one sentence each, no traceback ---------------------------


def _free_port_held(listen: bool) -> tuple[socket.socket, int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    if listen:
        holder.listen()
    port: int = holder.getsockname()[1]
    return holder, port


@pytest.mark.parametrize(
    ("command", "listen"),
    [
        (("serve", "--workers", "1"), True),
        (("serve", "--workers", "2"), True),
        (("demo",), True),
        (("serve", "--workers", "1"), False),  # bound, not listening: found at bind time
    ],
)
def test_a_taken_port_is_one_sentence(
    tmp_path: Path, command: tuple[str, ...], listen: bool
) -> None:
    holder, port = _free_port_held(listen)
    with holder:
        result = run(*command, "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    refusal = [line for line in result.stderr.splitlines() if line.startswith("livecart: ")]
    assert refusal == [
        f"livecart: an engine (or something else) is already listening on 127.0.0.1:{port}: "
        "stop it or pass --port"
    ], result.stderr
    assert "Traceback" not in result.stderr
    if listen:  # refused before anything started
        assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--workers", "1", "--port", "0", "--redis-url", "localhost:6379"),
        ("serve", "--workers", "2", "--port", "0", "--redis-url", "localhost:6379"),
        ("audit", "r1", "--redis-url", "cluster://127.0.0.1:7000"),
    ],
)
def test_a_bad_redis_url_names_every_scheme(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("livecart: the Redis URL ")
    assert result.stderr.rstrip().endswith(
        "must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// "
        "(e.g. redis://127.0.0.1:6379/0)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("fanout", "--viewers", "0"),
        ("fanout", "--comments-per-second", "0"),
        ("fanout", "--seconds", "0"),
        ("fanout", "--tick-ms", "0"),
        ("fanout", "--display-rate", "0"),
        ("grab", "--viewers", "0"),
        ("grab", "--stock", "0"),
        ("grab", "--attempts", "-1"),
        ("grab", "--limit", "0"),
        ("grab", "--think-ms", "-5"),
        ("grab", "--window-ms", "nan"),
        ("grab", "--compare-metrics", "-1"),
        ("coupons", "--viewers", "0"),
        ("coupons", "--coupons", "0"),
        ("coupons", "--attempts", "0"),
        ("checkout", "--orders", "0"),
        ("checkout", "--concurrency", "0"),
        ("auction", "--bidders", "0"),
        ("auction", "--engines", "0"),
        ("auction", "--seconds", "4"),
        ("auction", "--think-ms", "-1"),
        ("group-buy", "--team-size", "1"),
        ("group-buy", "--team-size", "51"),
        ("group-buy", "--window-s", "4"),
        ("storm", "--viewers", "0"),
        ("storm", "--handshakes-per-s", "0"),
        ("storm", "--outage-s", "-1"),
        ("storm", "--comments", "-1"),
        ("grab", "--viewers", "many"),
    ],
)
def test_bench_counts_are_validated(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["bench", *args])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(f"livecart bench {args[0]}: error: argument {args[1]}: must be a ")
    assert error.endswith(f", not {args[2]!r}")


def test_bench_defaults_are_valid() -> None:
    parser = cli.build_parser()
    for bench in ("fanout", "grab", "coupons", "checkout", "auction", "group-buy", "storm"):
        parser.parse_args(["bench", bench])
