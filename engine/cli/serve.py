"""Running the engine: `livecart serve` and `livecart demo`, their settings checked before
anything starts, and `livecart token`, a token the running engine accepts."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Coroutine
from typing import Any, TypedDict

from redis.exceptions import RedisError

from engine.cli.arguments import Subparsers, settings_from_flags, whole
from engine.cli.sources import engine_secret
from engine.core.collector import pace_for_connections
from engine.core.identity import Role
from engine.core.logs import configure as configure_logs
from engine.core.loop import run_event_loop
from engine.core.settings import Settings
from engine.rooms import auth, jwt_auth
from engine.server.admission import origin_warning
from engine.server.app import Engine
from engine.server.workers import Supervisor, default_workers
from engine.store import redis_client, redis_config
from engine.store.keys import check_room_id, check_user_id
from engine.tools.demo import run_demo

log = logging.getLogger("livecart.cli")


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    # Unset flags fall back to the environment (LIVECART_HOST, LIVECART_PORT), then the defaults.
    parser.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (0 picks a free one; default 8000)"
    )
    parser.add_argument(
        "--redis-url", default=None, help="use this Redis instead of an embedded one (or REDIS_URL)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="embedded Redis data and the token secret (default ./.livecart)",
    )
    parser.add_argument(
        "--tick-ms", type=int, default=None, help="room fan-out tick in ms (default 100)"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=None)


async def _serve(settings: Settings) -> int:
    async with Engine(settings) as engine:
        line = f"livecart listening on {engine.base_url}  (viewers: {engine.ws_url}/{{room}})"
        await engine.serve_until_signal(lambda: print(line, flush=True))
    return 0


def _port_in_use(settings: Settings) -> ValueError:
    return ValueError(
        f"an engine (or something else) is already listening on {settings.host}:"
        f"{settings.port}: stop it or pass --port"
    )


def _engine_settings(args: argparse.Namespace) -> Settings:
    """`serve` and `demo`: the settings, checked before anything starts."""
    settings = settings_from_flags(args)
    if settings.redis_url:
        redis_client.check_url(settings.redis_url)
    _check_port_free(settings)
    return settings


def _check_port_free(settings: Settings) -> None:
    """Before anything starts (the embedded Redis locks the data dir first, and workers
    would share a port with SO_REUSEPORT): say plainly that the port is taken."""
    if not settings.port:
        return
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host)
    try:
        with socket.create_connection((probe or settings.host, settings.port), timeout=0.5):
            pass
    except OSError:
        return
    raise _port_in_use(settings)


def run_engine(settings: Settings, main: Coroutine[Any, Any, int]) -> int:
    """Run one engine's event loop; a port taken after the check is the same sentence."""
    pace_for_connections()
    try:
        return run_event_loop(main)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _port_in_use(settings) from None
        raise


def _check_redis_for_workers(settings: Settings) -> None:
    """`serve --workers N` on an external Redis: refuse an unsafe one once, here, rather
    than in every worker. An unreachable Redis is left to the workers, which wait for it."""
    if settings.redis_url is None or settings.redis_unsafe_ok:
        return
    try:
        asyncio.run(redis_config.check_url(settings.redis_url))
    except (RedisError, OSError):
        return


def cmd_serve(args: argparse.Namespace) -> int:
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        print("livecart: --workers must be at least 1", file=sys.stderr)
        return 2
    settings = _engine_settings(args)
    configure_logs(settings.log_format, settings.log_level)
    warning = origin_warning(settings.allowed_origins, settings.public_url)
    if warning is not None:
        log.warning(warning)
    if workers > 1:
        # N processes on one port (SO_REUSEPORT), one Redis: engine/server/workers.py.
        _check_redis_for_workers(settings)
        return Supervisor(settings, workers).run()
    return run_engine(settings, _serve(settings))


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _engine_settings(args)
    if "LIVECART_SIMULATED_PSP" not in os.environ:
        settings = settings.replace(simulated_psp=True)  # a demo pays through it
    configure_logs(settings.log_format, settings.log_level)
    return run_engine(settings, run_demo(settings, bots=args.bots))


class _Claims(TypedDict):
    """What a token says, in either format."""

    room: str
    role: Role
    user: str
    name: str | None
    ttl_s: int


def cmd_token(args: argparse.Namespace) -> int:
    settings = settings_from_flags(args)
    claims = _Claims(room=check_room_id(args.room), role=Role(args.role),
                     user=check_user_id(args.user or f"{args.role}-1"), name=args.name,
                     ttl_s=args.ttl)  # fmt: skip
    if args.format == "jwt":
        print(_jwt_token(settings, args.kid, claims))
        return 0
    print(auth.mint(engine_secret(settings), **claims))
    return 0


def _jwt_token(settings: Settings, kid: str | None, claims: _Claims) -> str:
    """An HS256 JWT signed with one of LIVECART_JWT_HS256_KEYS (--kid, default the first)."""
    keys = jwt_auth.parse_hs256_keys(settings.jwt_hs256_keys)
    if not keys:
        raise ValueError(
            "--format jwt signs with LIVECART_JWT_HS256_KEYS (kid:secret,...), which is not set"
        )
    kid = kid or next(iter(keys))
    if kid not in keys:
        raise ValueError(f"no LIVECART_JWT_HS256_KEYS key has kid {kid!r}: {', '.join(keys)}")
    return jwt_auth.mint_hs256(keys[kid], kid, **claims, audience=settings.jwt_audience)


def add_parsers(sub: Subparsers) -> None:
    serve = sub.add_parser("serve", help="run the engine")
    _add_server_args(serve)
    serve.add_argument(
        "--workers", type=int, default=None, help="engine processes on the port (default: cores)"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run the engine with a seeded demo room and bots")
    _add_server_args(demo)
    demo.add_argument("--bots", type=int, default=8, help="simulated viewers (default 8)")
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="mint a signed token")
    token.add_argument("--room", required=True)
    token.add_argument("--role", required=True, choices=["host", "moderator", "viewer"])
    token.add_argument("--user", default=None)
    token.add_argument("--name", default=None)
    token.add_argument(
        "--ttl",
        type=whole(1, auth.MAX_TTL_S),
        default=auth.DEFAULT_TTL_S,
        metavar="SECONDS",
        help=f"lifetime in seconds, 1 to {auth.MAX_TTL_S} (7 days); default 43200 (12 h)",
    )
    token.add_argument("--data-dir", default=None)
    token.add_argument(
        "--format",
        choices=["lc1", "jwt"],
        default="lc1",
        help="lc1 (default): signed with the engine's secret; jwt: an HS256 JWT signed with "
        "a LIVECART_JWT_HS256_KEYS key (with `aud` when LIVECART_JWT_AUDIENCE is set)",
    )
    token.add_argument("--kid", default=None, help="--format jwt: the key's kid (default: first)")
    token.set_defaults(func=cmd_token)
