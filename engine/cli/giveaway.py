"""`livecart giveaway verify`: a closed giveaway's draw recomputed from its revealed seed
(engine/features/giveaways/draw.py)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.cli.arguments import Subparsers, add_json
from engine.cli.sources import add_source_args, read_room, redis_url_for_tools
from engine.features.giveaways.store import check_draw


def cmd_giveaway(args: argparse.Namespace) -> int:
    async def verify(redis: Redis, room: str) -> dict[str, Any]:
        return await check_draw(redis, room, args.giveaway)

    result = read_room(redis_url_for_tools(args), args.room, verify)
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        mark = {True: "ok", False: "FAILED"}
        print(f"giveaway {result['giveaway']} in {result['room']} ({result['state']}): "
              f"{'VERIFIED' if result['ok'] else 'NOT VERIFIED'}")  # fmt: skip
        print(f"  commitment {result['commitment']}")
        print(f"  seed       {result['seed']}")
        print(f"  sha256(seed) == commitment: {mark[result['commitment_ok']]}")
        print(f"  winners recomputed from {len(result['entrants'])} sorted entrants, "
              f"{len(result['excluded'])} excluded by the limits: "
              f"{mark[result['winners_ok']]}")  # fmt: skip
        print(f"  winners    {' '.join(result['winners']) or '(none)'}")
    return 0 if result["ok"] else 1


def add_parsers(sub: Subparsers) -> None:
    giveaway = sub.add_parser("giveaway", help="giveaways: check a recorded draw")
    giveaway_sub = giveaway.add_subparsers(dest="giveaway_command", required=True)
    verify = giveaway_sub.add_parser(
        "verify", help="recompute a closed giveaway's draw from its revealed seed; exit 1 if not"
    )
    verify.add_argument("room")
    verify.add_argument("giveaway")
    add_source_args(verify)
    add_json(verify)
    giveaway.set_defaults(func=cmd_giveaway)
