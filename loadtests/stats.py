"""The asyncio load generator's statistics: per (request_type, name) call counts,
failures by code and a reservoir of latencies; answers by status; merged across
processes; summarised as the verdict's figures and as a self-contained HTML report."""

from __future__ import annotations

import html
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.bench.stats import percentiles
from loadtests.scenarios import REQUESTS

RESERVOIR = 20_000  # latency samples kept per (type, name), per process and merged

Key = tuple[str, str]
_rng = random.Random()


def _label(key: Key) -> str:
    return f"{key[0]} {key[1]}"


def _unlabel(label: str) -> Key:
    kind, _, name = label.partition(" ")
    return kind, name


@dataclass
class Series:
    """One (request_type, name): calls, failures by code, and a reservoir of latencies."""

    count: int = 0
    failures: int = 0
    samples: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, ms: float, error: str | None = None) -> None:
        self.count += 1
        if error is not None:
            self.failures += 1
            self.errors[error] = self.errors.get(error, 0) + 1
        if len(self.samples) < RESERVOIR:
            self.samples.append(ms)
        elif _rng.random() * self.count < RESERVOIR:  # reservoir sampling: every call so
            self.samples[int(_rng.random() * RESERVOIR)] = ms  # far equally likely kept

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "failures": self.failures, "errors": self.errors,
                "samples": [round(ms, 2) for ms in self.samples]}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        return cls(int(data["count"]), int(data["failures"]), [float(s) for s in data["samples"]],
                   {str(k): int(v) for k, v in data.get("errors", {}).items()})  # fmt: skip


def merge_samples(parts: Sequence[tuple[int, list[float]]], cap: int = RESERVOIR) -> list[float]:
    """Merge reservoirs (count seen, samples kept): each part contributes in proportion to
    how many calls it saw, so the result is again a uniform sample of all calls."""
    if sum(len(samples) for _, samples in parts) <= cap:
        return [ms for _, samples in parts for ms in samples]
    total = sum(count for count, _ in parts) or 1
    merged: list[float] = []
    for count, samples in parts:
        take = min(len(samples), round(cap * count / total))
        merged.extend(_rng.sample(samples, take))
    return merged


@dataclass
class Stats:
    """What one or several generator processes measured; JSON-serializable."""

    series: dict[Key, Series] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    viewers: int = 0  # viewers that joined at least once
    viewers_peak: int = 0  # most viewers joined at once (summed over processes)
    processes: int = 1

    def get(self, kind: str, name: str) -> Series:
        key = (kind, name)
        series = self.series.get(key)
        if series is None:
            assert key in REQUESTS, key
            series = self.series[key] = Series()
        return series

    def record(self, kind: str, name: str, ms: float, error: str | None = None) -> None:
        self.get(kind, name).add(ms, error)

    def pushes(self, name: str, now_ms: float, stamps: Iterable[float]) -> None:
        series = self.get("PUSH", name)
        for stamp in stamps:
            series.add(now_ms - stamp)

    def status(self, category: str, status: str) -> None:
        counts = self.statuses.setdefault(category, {})
        counts[status] = counts.get(status, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "series": {_label(key): s.to_json() for key, s in sorted(self.series.items())},
            "statuses": self.statuses,
            "viewers": self.viewers,
            "viewers_peak": self.viewers_peak,
            "processes": self.processes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        return cls(
            {_unlabel(k): Series.from_json(v) for k, v in data["series"].items()},
            {c: {s: int(n) for s, n in counts.items()} for c, counts in data["statuses"].items()},
            int(data.get("viewers", 0)),
            int(data.get("viewers_peak", 0)),
            int(data.get("processes", 1)),
        )

    @classmethod
    def merge(cls, parts: Iterable[Stats]) -> Stats:
        """Several processes' stats as one (they ran at the same time: peaks add up)."""
        parts = list(parts)
        merged = cls(processes=sum(p.processes for p in parts))
        for key in sorted({key for p in parts for key in p.series}):
            pieces = [p.series[key] for p in parts if key in p.series]
            series = merged.series[key] = Series(
                sum(s.count for s in pieces), sum(s.failures for s in pieces),
                merge_samples([(s.count, s.samples) for s in pieces]),
            )  # fmt: skip
            for piece in pieces:
                for code, n in piece.errors.items():
                    series.errors[code] = series.errors.get(code, 0) + n
        for part in parts:
            for category, counts in part.statuses.items():
                into = merged.statuses.setdefault(category, {})
                for status, n in counts.items():
                    into[status] = into.get(status, 0) + n
        merged.viewers = sum(p.viewers for p in parts)
        merged.viewers_peak = sum(p.viewers_peak for p in parts)
        return merged

    def summary(self) -> dict[str, Any]:
        """The generator's result: totals (client calls; PUSH not included), per-type
        counts and percentiles under "<TYPE> <name>", push latency over all PUSH samples."""
        calls = [s for (kind, _), s in self.series.items() if kind != "PUSH"]
        pushes = [s for (kind, _), s in self.series.items() if kind == "PUSH"]
        by_type = {
            _label(key): {"count": s.count, "failures": s.failures, **percentiles(s.samples)}
            for key, s in sorted(self.series.items())
        }
        return {
            "requests": sum(s.count for s in calls),
            "failures": sum(s.failures for s in calls),
            "by_type": by_type,
            "push_latency_ms": percentiles(merge_samples([(s.count, s.samples) for s in pushes])),
            "statuses": self.statuses,
            "errors": {_label(k): dict(s.errors) for k, s in self.series.items() if s.errors},
            "processes": self.processes,
            "viewers": self.viewers,
            "viewers_peak": self.viewers_peak,
        }


def html_report(scenario: str, room: str, figures: dict[str, Any]) -> str:
    """A self-contained HTML page of a run's summary (`run`'s dict): the asyncio
    generator's counterpart of locust's report."""

    def cell(value: Any) -> str:
        return f"<td>{html.escape(str(value))}</td>"

    def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join(f"<tr>{''.join(cell(v) for v in row)}</tr>" for row in rows)
        return f"<table><tr>{header}</tr>{body}</table>"

    by_type = figures.get("by_type", {})
    requests = table(
        ["Type Name", "Count", "Failures", "p50 ms", "p95 ms", "p99 ms"],
        [[name, r["count"], r["failures"], r["p50"], r["p95"], r["p99"]]
         for name, r in sorted(by_type.items())],
    )  # fmt: skip
    errors = table(
        ["Type Name", "Error", "Count"],
        [[name, code, n] for name, codes in sorted(figures.get("errors", {}).items())
         for code, n in sorted(codes.items())],
    )  # fmt: skip
    statuses = table(
        ["Category", "Status", "Count"],
        [[category, status, n] for category, counts in sorted(figures.get("statuses", {}).items())
         for status, n in sorted(counts.items())],
    )  # fmt: skip
    push = figures.get("push_latency_ms", {})
    facts = table(
        ["Requests", "Failures", "Push p50", "Push p95", "Push p99", "Processes", "Peak viewers"],
        [[figures.get("requests"), figures.get("failures"), push.get("p50"), push.get("p95"),
          push.get("p99"), figures.get("processes"), figures.get("viewers_peak")]],
    )  # fmt: skip
    title = html.escape(f"livecart load test: {scenario} in {room} (asyncio generator)")
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h1>{title}</h1>{facts}"
        f"<h2>Requests and pushes</h2>{requests}<h2>Answers</h2>{statuses}"
        f"<h2>Failures</h2>{errors}</body></html>\n"
    )
