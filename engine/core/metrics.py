"""Prometheus metrics in the text exposition format (version 0.0.4), dependency-free.

One process-wide registry (`METRICS`); hot paths only increment plain attributes (a
counter's inc is one dict update). Gauges that are cheap to compute on demand
(connections, rooms) are read at scrape time through callbacks.

Under `livecart serve --workers N` a scrape answers for the whole server: each worker
writes its samples (`Metrics.snapshot`) to a file about once a second, and the worker
that takes a scrape renders its own live values merged with the others' files
(`Metrics.render(others)`; the files: engine/server/metrics_share.py). Counters and histograms
add up; each gauge says how it merges (`Gauge.merge`: "sum" or "max").
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.core import process_metrics

LabelValues = tuple[str, ...]
# A family's samples as plain JSON-able rows (what a worker writes to its snapshot file):
# a counter's or a gauge's [labels, value], a histogram's [labels, counts, sum, count].
Rows = list[list[Any]]
# One process's samples: family name -> rows.
Snapshot = dict[str, Rows]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(int(value)) if float(value).is_integer() else repr(value)


@dataclass
class Counter:
    name: str
    help: str
    labelnames: tuple[str, ...] = ()
    values: dict[LabelValues, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def rows(self) -> Rows:
        return [[list(labels), value] for labels, value in self.values.items()]

    def merged(self, others: Iterable[Rows]) -> dict[LabelValues, float]:
        """This process's values plus the other processes' (summed per label set)."""
        return _add_rows(dict(self.values), others, self.labelnames, "sum")

    def render(self, others: Sequence[Rows] = ()) -> Iterable[str]:
        """The family's lines; with `others`, summed with those processes' rows."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted((self.merged(others) if others else self.values).items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


@dataclass
class Gauge:
    name: str
    help: str
    labelnames: tuple[str, ...] = ()
    read: Callable[[], dict[LabelValues, float]] | None = None
    values: dict[LabelValues, float] = field(default_factory=dict)  # set() when not read()
    # Over the workers of one server: "sum" (connections, viewers: the server's total) or
    # "max" (a lag: the worst one). Only live workers' gauges count.
    merge: Literal["sum", "max"] = "sum"
    # The TYPE it renders: "counter" for a count read from elsewhere at scrape time (a
    # process's CPU seconds), which, like a gauge, leaves the sum when its process exits.
    kind: Literal["gauge", "counter"] = "gauge"

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def current(self) -> dict[LabelValues, float]:
        return self.read() if self.read else self.values

    def rows(self) -> Rows:
        return [[list(labels), value] for labels, value in self.current().items()]

    def merged(self, others: Iterable[Rows]) -> dict[LabelValues, float]:
        return _add_rows(dict(self.current()), others, self.labelnames, self.merge)

    def render(self, others: Sequence[Rows] = ()) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in sorted((self.merged(others) if others else self.current()).items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


def _add_rows(
    into: dict[LabelValues, float],
    others: Iterable[Rows],
    labelnames: tuple[str, ...],
    how: Literal["sum", "max"],
) -> dict[LabelValues, float]:
    for rows in others:
        for labels, value in rows:
            key = tuple(labels)
            if len(key) != len(labelnames):
                continue  # another version's layout: left out rather than misrendered
            old = into.get(key)
            into[key] = value if old is None else (old + value if how == "sum" else max(old, value))
    return into


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    labelnames: tuple[str, ...] = ()
    series: dict[LabelValues, _Series] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labelnames:  # an unlabelled histogram shows its zeros from the start
            self.series[()] = _Series([0] * (len(self.buckets) + 1))

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series([0] * (len(self.buckets) + 1))
        series.counts[bisect.bisect_left(self.buckets, value)] += 1
        series.total += value
        series.count += 1

    @property
    def count(self) -> int:
        return sum(series.count for series in self.series.values())

    def rows(self) -> Rows:
        return [
            [list(labels), list(series.counts), series.total, series.count]
            for labels, series in self.series.items()
        ]

    def merged(self, others: Iterable[Rows]) -> dict[LabelValues, _Series]:
        """This process's series plus the other processes' (bucket by bucket)."""
        out = {
            labels: _Series(list(s.counts), s.total, s.count) for labels, s in self.series.items()
        }
        width = len(self.buckets) + 1
        for rows in others:
            for labels, counts, total, count in rows:
                key = tuple(labels)
                if len(key) != len(self.labelnames) or len(counts) != width:
                    continue  # another version's layout
                series = out.get(key)
                if series is None:
                    series = out[key] = _Series([0] * width)
                series.counts = [a + b for a, b in zip(series.counts, counts, strict=True)]
                series.total += total
                series.count += count
        return out

    def render(self, others: Sequence[Rows] = ()) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, series in sorted((self.merged(others) if others else self.series).items()):
            cumulative = 0
            for bound, n in zip((*self.buckets, math.inf), series.counts, strict=True):
                cumulative += n
                le = _labels(self.labelnames, labels, f'le="{_number(bound)}"')
                yield f"{self.name}_bucket{le} {cumulative}"
            tags = _labels(self.labelnames, labels)
            yield f"{self.name}_sum{tags} {_number(series.total)}"
            yield f"{self.name}_count{tags} {series.count}"


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        # Not `livecart_connections`: OpenMetrics would read that gauge and the counter
        # `livecart_connections_total` as one family.
        self.connections = Gauge(
            "livecart_open_connections", "Open viewer WebSocket connections", ("codec",)
        )
        self.rooms = Gauge(
            "livecart_rooms_active", "Room hubs (a room counts once per process serving it)"
        )
        self.connections_total = Counter(
            "livecart_connections_total", "Viewer WebSocket connections accepted"
        )
        self.disconnects = Counter(
            "livecart_disconnects_total", "Viewer disconnections by reason", ("reason",)
        )
        self.frames_sent = Counter(
            "livecart_frames_sent_total", "Frames written to viewer sockets", ("kind",)
        )
        self.bytes_sent = Counter("livecart_bytes_sent_total", "Bytes of frames written to viewers")
        self.messages_received = Counter(
            "livecart_messages_received_total", "Client frames received, by type", ("type",)
        )
        self.errors = Counter(
            "livecart_errors_total", "Error frames and HTTP errors sent, by code", ("code",)
        )
        self.sampled_out = Counter(
            "livecart_comments_sampled_out_total", "Comments left out of ticks by sampling"
        )
        self.backfill_gaps = Counter(
            "livecart_backfill_gaps_total",
            "Resubscriptions that could not backfill everything (log trimmed meanwhile)",
        )
        self.broker_reconnects = Counter(
            "livecart_broker_reconnects_total", "Pub/sub connection losses"
        )
        self.grabs = Counter("livecart_grabs_total", "Grab answers, by status", ("status",))
        self.grab_seconds = Histogram(
            "livecart_grab_seconds",
            "Grab latency inside the engine (batching + script)",
            _LATENCY_BUCKETS,
        )
        self.grab_batch_size = Histogram(
            "livecart_grab_batch_size", "Grabs per script call", (1, 2, 4, 8, 16, 32, 64, 128, 256)
        )
        self.reservations_expired = Counter(
            "livecart_reservations_expired_total", "Holds returned to stock by the sweeper"
        )
        self.coupon_claims = Counter(
            "livecart_coupon_claims_total", "Coupon claim answers, by status", ("status",)
        )
        self.orders = Counter(
            "livecart_orders_total", "Order state changes made here, by new state", ("state",)
        )
        self.payment_callbacks = Counter(
            "livecart_payment_callbacks_total",
            "Payment callbacks, by outcome (paid, duplicate, refund ...) or rejection code",
            ("outcome",),
        )
        self.paid_amount = Counter(
            "livecart_paid_minor_units_total",
            "Totals of the orders paid here, in the currency's minor units (GMV), by currency",
            ("currency",),
        )
        self.refunds = Counter("livecart_refunds_total", "Refunds paid out, by reason", ("reason",))
        self.orders_expired = Counter(
            "livecart_orders_expired_total", "Unpaid orders expired by the sweeper"
        )
        self.script_errors = Counter(
            "livecart_script_errors_total", "Lua script calls that failed", ("script",)
        )
        self.redis_rtt = Histogram(
            "livecart_redis_rtt_seconds", "Round trip of the per-room sync script", _LATENCY_BUCKETS
        )
        self.tick_seconds = Histogram(
            "livecart_tick_seconds", "Time to encode and write one room tick", _LATENCY_BUCKETS
        )

        # Per room, for alerting on one show (the room label's series of a room go away
        # when this process drops its hub: forget_room).
        self.room_viewers = Gauge(
            "livecart_room_viewers", "Viewer connections in the room", ("room",)
        )
        self.room_grab_seconds = Histogram(
            "livecart_room_grab_seconds", "Grab latency inside the engine, per room",
            _LATENCY_BUCKETS, ("room",),
        )  # fmt: skip
        self.room_grabs = Counter(
            "livecart_room_grabs_total", "Grab answers per room, by status", ("room", "status")
        )
        self.room_script_errors = Counter(
            "livecart_room_script_errors_total", "Failed Lua script calls per room",
            ("room", "script"),
        )  # fmt: skip
        self.room_callback_rejections = Counter(
            "livecart_room_payment_callback_rejections_total",
            'Payment callbacks refused per room, by code (room "" when it was unreadable)',
            ("room", "code"),
        )
        self.room_sweeper_lag = Gauge(
            "livecart_room_sweeper_lag_seconds",
            "How overdue the oldest expired hold was when a process's last sweep found it "
            "(the most over the processes)",
            ("room",),
            merge="max",
        )
        self.ledger_events = Counter(
            "livecart_ledger_events_total", "Order events written to the ledger (PostgreSQL)"
        )
        self.ledger_lag = Gauge(
            "livecart_ledger_lag_events",
            "Order events not yet in the ledger, over every room (the most a process saw)",
            merge="max",
        )
        self.handshakes_refused = Counter(
            "livecart_handshakes_refused_total",
            "Viewer WebSocket handshakes refused: origin (403), rate or connections (503)",
            ("reason",),
        )  # fmt: skip
        self.sweep_seconds = Histogram(
            "livecart_sweep_seconds", "One sweeper pass over every room", _LATENCY_BUCKETS
        )
        # The process's own series, one per worker (engine/core/process_metrics.py), and
        # the build: 1 on every worker, so "max" over them.
        reader = process_metrics.ProcessReader()
        self.process = [
            Gauge(name, text, ("worker",), read=functools.partial(reader.series, name), kind=kind)
            for name, (kind, text) in process_metrics.SERIES.items()
        ]
        self.build_info = Gauge(
            "livecart_build_info", "The engine's version and Python's; always 1",
            ("version", "python"), read=lambda: {process_metrics.build_labels(): 1.0}, merge="max",
        )  # fmt: skip
        # In a worker of `serve --workers N`: the other workers' snapshots, read at each
        # scrape (engine/server/metrics_share.py). None: this process answers for itself alone.
        self.peers: Callable[[], Sequence[Snapshot]] | None = None

    def forget_room(self, room: str) -> None:
        for family in (self.room_grabs, self.room_script_errors, self.room_callback_rejections):
            for labels in [labels for labels in family.values if labels[0] == room]:
                del family.values[labels]
        self.room_grab_seconds.series.pop((room,), None)
        self.room_sweeper_lag.values.pop((room,), None)

    def families(self) -> list[Counter | Gauge | Histogram]:
        found = [v for v in vars(self).values() if isinstance(v, Counter | Gauge | Histogram)]
        return found + self.process

    def snapshot(self) -> Snapshot:
        """This process's samples, gauges read now (what a worker writes to its file)."""
        return {family.name: family.rows() for family in self.families()}

    def render(self, others: Sequence[Snapshot] | None = None) -> str:
        """The exposition text: this process's values, with `others` (other processes'
        snapshots; by default what `peers` reads) merged in."""
        if others is None:
            others = self.peers() if self.peers is not None else ()
        lines: list[str] = []
        for family in self.families():
            lines += family.render([s[family.name] for s in others if family.name in s])
        return "\n".join(lines) + "\n"


def add_up(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The counters and histograms of `snapshots` summed; gauges left out (what an exited
    worker keeps contributing: its counts stay counted, its gauges are gone)."""
    blank = Metrics()
    chosen = list(snapshots)
    out: Snapshot = {}
    for family in blank.families():
        if isinstance(family, Gauge):
            continue
        rows = [snapshot[family.name] for snapshot in chosen if family.name in snapshot]
        if isinstance(family, Histogram):
            family.series = family.merged(rows)
        else:
            family.values = family.merged(rows)
        out[family.name] = family.rows()
    return out


METRICS = Metrics()
