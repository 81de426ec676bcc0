"""`livecart dev …`: development helpers, a local Redis Cluster (engine/tools/dev_cluster.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.arguments import Subparsers
from engine.tools.dev_cluster import DevCluster, stop_signals


def cmd_dev(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    cluster = DevCluster(
        data_dir, masters=args.masters, replicas_per_master=args.replicas, base_port=args.base_port
    )
    with stop_signals() as stop_requested:
        cluster.start()
        try:
            replicas = args.masters * args.replicas
            print(f"livecart dev cluster: REDIS_URL={cluster.url} ({args.masters} masters, "
                  f"{replicas} replicas; data in {data_dir})", flush=True)  # fmt: skip
            while not stop_requested.wait(0.5):
                pass
        finally:
            cluster.stop()
    return 0


def add_parsers(sub: Subparsers) -> None:
    dev = sub.add_parser("dev", help="development helpers: a local Redis Cluster")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    cluster = dev_sub.add_parser(
        "cluster", help="run a local Redis Cluster until Ctrl-C; prints its REDIS_URL"
    )
    cluster.add_argument("--data-dir", default="./.livecart/cluster")
    cluster.add_argument("--base-port", type=int, default=None, help="default: free ports")
    cluster.add_argument("--masters", type=int, default=3)
    cluster.add_argument("--replicas", type=int, default=1, help="replicas per master")
    dev.set_defaults(func=cmd_dev)
