"""What the commands share of their arguments: the subparsers' type, whole numbers and
numbers checked as they are parsed, and the settings the flags give."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from engine.core.settings import Settings

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def settings_from_flags(args: argparse.Namespace) -> Settings:
    """The settings: a command's flags, else the environment, else the defaults."""
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        redis_url=getattr(args, "redis_url", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        tick_ms=getattr(args, "tick_ms", None),
        log_format=getattr(args, "log_format", None),
    )


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], else one sentence saying which."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}, not {text!r}")
        return value

    return parse


def number(low: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number >= low (> low when `above`), else one sentence."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > low if above else value >= low) or math.isinf(value):
            bound = f"above {low:g}" if above else f"of at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be a number {bound}, not {text!r}")
        return value

    return parse


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
