"""The asyncio load generator's statistics: per (request_type, name) call counts,
failures by code and a reservoir of latencies; answers by status; merged across
processes; summarised as the verdict's figures and as a self-contained HTML report."""

from __future__ import annotations

import html
import math
import random
import time
from collections import Counter
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
    max: float = 0.0

    def add(self, ms: float, error: str | None = None) -> None:
        self.count += 1
        self.max = max(self.max, ms)
        if error is not None:
            self.failures += 1
            self.errors[error] = self.errors.get(error, 0) + 1
        if len(self.samples) < RESERVOIR:
            self.samples.append(ms)
        elif _rng.random() * self.count < RESERVOIR:  # reservoir sampling: every call so
            self.samples[int(_rng.random() * RESERVOIR)] = ms  # far equally likely kept

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "failures": self.failures, "errors": self.errors,
                "samples": [round(ms, 2) for ms in self.samples],
                "max": round(self.max, 2)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        return cls(int(data["count"]), int(data["failures"]), [float(s) for s in data["samples"]],
                   {str(k): int(v) for k, v in data.get("errors", {}).items()},
                   float(data.get("max", 0.0)))  # fmt: skip


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


def bucket_ms(ms: float) -> float:
    """A latency rounded for a histogram: 0.1 ms below 10 ms, 1 ms below 100, 10 ms below
    1000, then 100 ms (about 2 significant digits, as locust's buckets)."""
    for limit, step in ((10.0, 0.1), (100.0, 1.0), (1000.0, 10.0)):
        if ms < limit:
            return round(round(ms / step) * step, 1)
    return float(round(ms / 100.0) * 100)


def bucket_percentiles(histogram: dict[float, int]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) of a {value: count} histogram, rounded to 0.1."""
    total = sum(histogram.values())
    result = {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    if not total:
        return result
    ordered = sorted(histogram.items())
    for label, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        rank, seen = max(1, int(q * total + 0.5)), 0
        for value, count in ordered:
            seen += count
            if seen >= rank:
                result[label] = round(float(value), 1)
                break
    return result


@dataclass
class Second:
    """One wall-clock second of a run: calls and failures per request name (PUSH not
    included), a latency histogram per name, and the pushes' histogram."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    latency: dict[str, Counter[float]] = field(default_factory=dict)
    push: Counter[float] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"r": dict(self.requests), "f": dict(self.failures),
                "l": {k: {str(ms): n for ms, n in h.items()} for k, h in self.latency.items()},
                "p": {str(ms): n for ms, n in self.push.items()}}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Second:
        return cls(Counter(data.get("r", {})), Counter(data.get("f", {})),
                   {k: Counter({float(ms): int(n) for ms, n in h.items()})
                    for k, h in data.get("l", {}).items()},
                   Counter({float(ms): int(n) for ms, n in data.get("p", {}).items()}))  # fmt: skip

    def add(self, other: Second) -> None:
        self.requests.update(other.requests)
        self.failures.update(other.failures)
        for kind, histogram in other.latency.items():
            self.latency.setdefault(kind, Counter()).update(histogram)
        self.push.update(other.push)


@dataclass
class Timeline:
    """A run per wall-clock second (Unix seconds), for the verdict's `timeline` and
    `phases`: both generators record into one (the locustfile from locust's request
    event), and processes' timelines merge. `viewers` is a gauge per source (a process):
    the viewers it had joined at its last sample in that second; rows sum the sources."""

    seconds: dict[int, Second] = field(default_factory=dict)
    viewers: dict[int, dict[str, int]] = field(default_factory=dict)

    def second(self, at: float | None = None) -> Second:
        key = int(time.time() if at is None else at)
        found = self.seconds.get(key)
        if found is None:
            found = self.seconds[key] = Second()
        return found

    def record(self, kind: str, name: str, ms: float, failed: bool = False,
               at: float | None = None) -> None:  # fmt: skip
        second = self.second(at)
        if kind == "PUSH":
            second.push[bucket_ms(ms)] += 1
            return
        second.requests[name] += 1
        if failed:
            second.failures[name] += 1
        second.latency.setdefault(name, Counter())[bucket_ms(ms)] += 1

    def sample_viewers(self, source: str, viewers: int, at: float | None = None) -> None:
        self.viewers.setdefault(int(time.time() if at is None else at), {})[source] = viewers

    def to_json(self) -> dict[str, Any]:
        return {"seconds": {str(t): s.to_json() for t, s in sorted(self.seconds.items())},
                "viewers": {str(t): v for t, v in sorted(self.viewers.items())}}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timeline:
        return cls({int(t): Second.from_json(s) for t, s in data.get("seconds", {}).items()},
                   {int(t): {str(k): int(n) for k, n in v.items()}
                    for t, v in data.get("viewers", {}).items()})  # fmt: skip

    def add(self, other: Timeline) -> None:
        for t, second in other.seconds.items():
            self.second(t).add(second)
        for t, sources in other.viewers.items():
            self.viewers.setdefault(t, {}).update(sources)

    def _span(self, start: float, first: float, end: float) -> Second:
        """The seconds that start in [first, end) (counted from `start`) as one."""
        span = Second()
        for t, second in self.seconds.items():
            if first <= max(0, t - int(start)) < end:
                span.add(second)
        return span

    def rows(self, start: float, duration_s: float) -> list[dict[str, Any]]:
        """The verdict's `timeline.rows`: one per second from the load's start (`start`,
        Unix seconds) to its end or the last second anything happened."""
        base = int(start)
        seen = [t - base for t in [*self.seconds, *self.viewers]]
        last = max([math.ceil(duration_s) - 1, *seen])
        rows = []
        for t in range(0, last + 1):
            second = self.seconds.get(base + t, Second())
            if t == 0:  # anything before the start counts in the first second
                for early, part in self.seconds.items():
                    if early < base:
                        second.add(part)
            rows.append({
                "t": t,
                **_figures(second),
                "pushes": sum(second.push.values()),
                "push_latency_ms": bucket_percentiles(dict(second.push)),
                "viewers": sum(self.viewers.get(base + t, {}).values()),
            })  # fmt: skip
        return rows

    def phases(
        self, start: float, phases: Iterable[tuple[str, float, float]]
    ) -> list[dict[str, Any]]:
        """The verdict's `phases`: each (name, start_s, end_s) with its calls, failures and
        percentiles per request name (whole seconds: a second belongs to the phase it
        starts in; the last phase also takes the seconds after it, calls in flight when the
        load stopped)."""
        result = []
        spans = list(phases)
        for number, (name, start_s, end_s) in enumerate(spans, 1):
            span = self._span(start, start_s, math.inf if number == len(spans) else end_s)
            result.append({"name": name, "start_s": round(start_s, 2), "end_s": round(end_s, 2),
                           **_figures(span)})  # fmt: skip
        return result


def _figures(second: Second) -> dict[str, Any]:
    kinds = sorted(second.requests)
    return {
        "requests": {k: second.requests[k] for k in kinds},
        "failures": {k: second.failures.get(k, 0) for k in kinds},
        "latency_ms": {k: bucket_percentiles(dict(second.latency.get(k, {}))) for k in kinds},
    }


@dataclass
class Stats:
    """What one or several generator processes measured; JSON-serializable."""

    series: dict[Key, Series] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    viewers: int = 0  # viewers that joined at least once
    viewers_peak: int = 0  # most viewers joined at once (summed over processes)
    processes: int = 1
    timeline: Timeline = field(default_factory=Timeline)

    def get(self, kind: str, name: str) -> Series:
        key = (kind, name)
        series = self.series.get(key)
        if series is None:
            assert key in REQUESTS, key
            series = self.series[key] = Series()
        return series

    def record(self, kind: str, name: str, ms: float, error: str | None = None) -> None:
        self.get(kind, name).add(ms, error)
        self.timeline.record(kind, name, ms, error is not None)

    def pushes(self, name: str, now_ms: float, stamps: Iterable[float]) -> None:
        series = self.get("PUSH", name)
        second = self.timeline.second(now_ms / 1000)
        for stamp in stamps:
            series.add(now_ms - stamp)
            second.push[bucket_ms(now_ms - stamp)] += 1

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
            "timeline": self.timeline.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        return cls(
            {_unlabel(k): Series.from_json(v) for k, v in data["series"].items()},
            {c: {s: int(n) for s, n in counts.items()} for c, counts in data["statuses"].items()},
            int(data.get("viewers", 0)),
            int(data.get("viewers_peak", 0)),
            int(data.get("processes", 1)),
            Timeline.from_json(data.get("timeline", {})),
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
                max=max(s.max for s in pieces),
            )  # fmt: skip
            for piece in pieces:
                for code, n in piece.errors.items():
                    series.errors[code] = series.errors.get(code, 0) + n
        for part in parts:
            for category, counts in part.statuses.items():
                into = merged.statuses.setdefault(category, {})
                for status, n in counts.items():
                    into[status] = into.get(status, 0) + n
        for part in parts:
            merged.timeline.add(part.timeline)
        merged.viewers = sum(p.viewers for p in parts)
        merged.viewers_peak = sum(p.viewers_peak for p in parts)
        return merged

    def summary(self) -> dict[str, Any]:
        """The generator's result: totals (client calls; PUSH not included), per-type
        counts and percentiles under "<TYPE> <name>", push latency over all PUSH samples."""
        calls = [s for (kind, _), s in self.series.items() if kind != "PUSH"]
        pushes = [s for (kind, _), s in self.series.items() if kind == "PUSH"]
        by_type = {
            _label(key): {
                "count": s.count,
                "failures": s.failures,
                **percentiles(s.samples),
                "max": round(s.max, 1),
            }
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
            "timeline": self.timeline.to_json(),
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


def _close_names() -> dict[int, str]:
    from engine.realtime.protocol import CloseCode  # noqa: PLC0415 - names only

    names = {1000: "normal", 1001: "going_away", 1006: "abnormal", 1009: "message_too_big",
             1011: "internal_error", 1012: "service_restart", 1013: "try_again_later",
             1014: "bad_gateway"}  # fmt: skip
    names.update({int(code): code.name.lower() for code in CloseCode})
    return names


def close_codes(counts: dict[str, int]) -> dict[str, int]:
    """Close codes the viewers saw ({"1006": n}, 1006 for a connection dropped without a
    close frame) as the verdict's {"1006 abnormal": n}."""
    names = _close_names()
    named = {}
    for code, n in sorted(counts.items()):
        name = names.get(int(code), "unknown") if code.isdigit() else "unknown"
        named[f"{code} {name}"] = n
    return named
