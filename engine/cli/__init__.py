"""`livecart` command line (CONTRACTS.md): one module per group of commands, each adding its
own parsers (in the order `livecart --help` lists them). `serve`, `demo`, `token`: serve.py;
`audit`, `report`, `orders`: room_data.py; `loadtest`: loadtests/run.py; the others: the
module of their name. What they share: arguments.py (types, settings from the flags) and
sources.py (where a tool finds Redis, the ledger and the secret)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from redis.exceptions import RedisError

from engine.cli import bench, customers, dev, giveaway, reconcile, room_data, serve
from engine.core.errors import LivecartError
from engine.store.redis_config import RedisConfigError
from engine.store.redis_server import RedisServerError
from loadtests.run import add_parser as add_loadtest_parser

_COMMANDS = (serve.add_parsers, room_data.add_parsers, reconcile.add_parsers,
             giveaway.add_parsers, customers.add_parsers, bench.add_parsers, add_loadtest_parser,
             dev.add_parsers)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecart", description="live-commerce engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, LivecartError, RedisServerError, RedisConfigError) as exc:
        print(f"livecart: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        # "Could not check" is not "checked and failed" (exit 1): tools tell them apart.
        print(f"livecart: Redis: {exc}", file=sys.stderr)
        return 2
    return code
