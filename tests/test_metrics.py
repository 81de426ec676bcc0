"""engine.core.metrics: valid Prometheus text exposition (format 0.0.4)."""

from __future__ import annotations

import math
import os
import platform
import re
import time
from pathlib import Path

import orjson
import psutil
import pytest

import engine
from engine.core import process_metrics
from engine.core.metrics import METRICS, Counter, Gauge, Histogram, Metrics, Snapshot, add_up

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = (
    rf"\{{(?:[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})(?:,[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})*\}}"
)
VALUE = r"(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
SAMPLE_RE = re.compile(rf"^({NAME})({LABELS})? ({VALUE})$")
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def parse(text: str) -> dict[str, tuple[str, list[tuple[str, str, float]]]]:
    """A strict reader of the text format: family -> (type, [(sample name, labels, value)])."""
    assert text.endswith("\n")
    families: dict[str, tuple[str, list[tuple[str, str, float]]]] = {}
    helps: set[str] = set()
    current: str | None = None
    for line in text[:-1].split("\n"):
        if match := HELP_RE.match(line):
            assert match[1] not in helps, f"second HELP for {match[1]}"
            helps.add(match[1])
            current = None
        elif match := TYPE_RE.match(line):
            assert match[1] not in families, f"second TYPE for {match[1]}"
            assert match[1] in helps, "HELP comes before TYPE"
            current = match[1]
            families[current] = (match[2], [])
        else:
            match = SAMPLE_RE.match(line)
            assert match, f"not a valid sample line: {line!r}"
            assert current is not None, f"sample before its TYPE: {line!r}"
            kind, samples = families[current]
            assert match[1] in {current + s for s in SUFFIXES[kind]}, line
            samples.append((match[1], match[2] or "", float(match[3])))
    return families


def test_counter_render() -> None:
    counter = Counter("app_errors_total", "Errors by code", ("code",))
    counter.inc(1, "b")
    counter.inc(2.5, "a")
    counter.inc(1, "b")
    assert counter.value("b") == 2
    assert counter.value("zzz") == 0
    assert list(counter.render()) == [
        "# HELP app_errors_total Errors by code",
        "# TYPE app_errors_total counter",
        'app_errors_total{code="a"} 2.5',
        'app_errors_total{code="b"} 2',
    ]


def test_unlabelled_counter() -> None:
    counter = Counter("app_total", "Things")
    assert list(counter.render()) == ["# HELP app_total Things", "# TYPE app_total counter"]
    counter.inc()
    counter.inc(41)
    assert list(counter.render())[-1] == "app_total 42"


def test_label_escaping() -> None:
    counter = Counter("app_total", "Escapes", ("path", "note"))
    counter.inc(1, 'C:\\dir\\"x"', "line1\nline2")
    sample = list(counter.render())[-1]
    assert sample == 'app_total{path="C:\\\\dir\\\\\\"x\\"",note="line1\\nline2"} 1'
    assert SAMPLE_RE.match(sample)


def test_gauge_reads_at_scrape_time() -> None:
    values: dict[tuple[str, ...], float] = {("json",): 3.0, ("msgpack",): 0.5}
    gauge = Gauge("app_conns", "Open connections", ("codec",), read=lambda: values)
    assert list(gauge.render())[2:] == [
        'app_conns{codec="json"} 3',
        'app_conns{codec="msgpack"} 0.5',
    ]
    values[("json",)] = 4.0
    assert list(gauge.render())[2] == 'app_conns{codec="json"} 4'
    assert list(Gauge("app_idle", "No reader").render()) == [
        "# HELP app_idle No reader",
        "# TYPE app_idle gauge",
    ]


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram("app_seconds", "Latency", (0.1, 0.5, 1.0))
    for value in (0.05, 0.1, 0.3, 0.5, 0.7, 2.0, 3.0):
        histogram.observe(value)
    assert list(histogram.render()) == [
        "# HELP app_seconds Latency",
        "# TYPE app_seconds histogram",
        'app_seconds_bucket{le="0.1"} 2',  # le is inclusive: 0.1 counts here
        'app_seconds_bucket{le="0.5"} 4',
        'app_seconds_bucket{le="1"} 5',
        'app_seconds_bucket{le="+Inf"} 7',
        f"app_seconds_sum {sum((0.05, 0.1, 0.3, 0.5, 0.7, 2.0, 3.0))!r}",
        "app_seconds_count 7",
    ]


def test_empty_histogram() -> None:
    lines = list(Histogram("app_seconds", "Latency", (1.0,)).render())
    assert lines[2:] == [
        'app_seconds_bucket{le="1"} 0',
        'app_seconds_bucket{le="+Inf"} 0',
        "app_seconds_sum 0",
        "app_seconds_count 0",
    ]


def test_full_registry_is_valid_prometheus_text() -> None:
    metrics = Metrics()
    metrics.connections.read = lambda: {("json",): 2.0, ("msgpack",): 1.0}
    metrics.rooms.read = lambda: {(): 3.0}
    metrics.connections_total.inc()
    metrics.disconnects.inc(1, "slow_consumer")
    metrics.frames_sent.inc(10, "tick")
    metrics.bytes_sent.inc(1234)
    metrics.messages_received.inc(1, "comment")
    metrics.errors.inc(1, 'we"ird\ncode\\')
    metrics.sampled_out.inc(7)
    for value in (0.0001, 0.003, 0.3, 5.0):
        metrics.redis_rtt.observe(value)
    metrics.tick_seconds.observe(0.0005)

    families = parse(metrics.render())
    assert families["livecart_open_connections"] == (
        "gauge",
        [
            ("livecart_open_connections", '{codec="json"}', 2.0),
            ("livecart_open_connections", '{codec="msgpack"}', 1.0),
        ],
    )
    assert families["livecart_rooms_active"] == ("gauge", [("livecart_rooms_active", "", 3.0)])
    assert families["livecart_comments_sampled_out_total"][1] == [
        ("livecart_comments_sampled_out_total", "", 7.0)
    ]
    assert families["livecart_errors_total"][1] == [
        ("livecart_errors_total", '{code="we\\"ird\\ncode\\\\"}', 1.0)
    ]
    kinds = {name: kind for name, (kind, _) in families.items()}
    assert all(name.endswith("_total") for name, kind in kinds.items() if kind == "counter")
    assert kinds["livecart_redis_rtt_seconds"] == "histogram"

    rtt = families["livecart_redis_rtt_seconds"][1]
    buckets = [(labels, value) for name, labels, value in rtt if name.endswith("_bucket")]
    counts = [value for _, value in buckets]
    assert counts == sorted(counts)  # cumulative
    assert buckets[-1] == ('{le="+Inf"}', 4.0)
    bounds = [float(labels[5:-2]) for labels, _ in buckets]
    assert bounds == sorted(bounds)
    assert math.isinf(bounds[-1])
    assert dict(buckets)['{le="0.0005"}'] == 1.0
    assert dict(buckets)['{le="0.005"}'] == 2.0
    assert dict(buckets)['{le="1"}'] == 3.0
    totals = {name: value for name, labels, value in rtt if not labels}
    assert totals == {
        "livecart_redis_rtt_seconds_sum": pytest.approx(5.3031),
        "livecart_redis_rtt_seconds_count": 4.0,
    }


def test_every_family_renders_once() -> None:
    metrics = Metrics()
    families = parse(metrics.render())
    declared = {family.name for family in metrics.families()}
    assert set(families) == declared
    assert "livecart_backfill_gaps_total" in families
    read_now = {"livecart_build_info", *process_metrics.SERIES}
    assert all(
        samples == [] or kind == "histogram" or name in read_now
        for name, (kind, samples) in families.items()
    )


def test_process_series_and_build_info() -> None:
    """prometheus_client's process collector's names, types and units, read from /proc for
    this process, labelled with its worker index; the build info is 1."""
    families = parse(Metrics().render())
    assert set(process_metrics.SERIES) <= set(families)
    values = {name: samples for name, (_, samples) in families.items()}
    assert families["process_cpu_seconds_total"][0] == "counter"
    assert families["process_resident_memory_bytes"][0] == "gauge"
    ((_, labels, rss),) = values["process_resident_memory_bytes"]
    assert labels == '{worker="0"}'
    assert 1e6 < rss < 64e9
    ((_, _, started),) = values["process_start_time_seconds"]
    assert started == pytest.approx(psutil.Process().create_time(), abs=1.0)
    ((_, _, fds),) = values["process_open_fds"]
    assert fds == pytest.approx(psutil.Process().num_fds(), abs=3)
    ((_, _, cpu),) = values["process_cpu_seconds_total"]
    busy = time.process_time() + 0.2
    while time.process_time() < busy:
        pass
    ((_, _, later),) = parse(Metrics().render())["process_cpu_seconds_total"][1]
    assert later >= cpu + 0.15
    assert values["livecart_build_info"] == [
        (
            "livecart_build_info",
            f'{{version="{engine.__version__}",python="{platform.python_version()}"}}',
            1.0,
        )
    ]


def test_process_series_carry_the_worker_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `serve --workers N` each worker's series stay apart; one scrape shows all;
    an exited worker's leave with it (gauges to the merge, not folded into dead.json)."""
    monkeypatch.setenv(process_metrics.WORKER_ENV, "1")
    other = orjson.loads(orjson.dumps(Metrics().snapshot()))
    monkeypatch.setenv(process_metrics.WORKER_ENV, "0")
    families = parse(Metrics().render([other]))
    workers = [labels for _, labels, _ in families["process_cpu_seconds_total"][1]]
    assert workers == ['{worker="0"}', '{worker="1"}']
    assert [v for _, _, v in families["livecart_build_info"][1]] == [1.0]  # max, not a sum
    assert "process_cpu_seconds_total" not in add_up([other])


def test_global_registry_renders() -> None:
    families = parse(METRICS.render())
    assert "livecart_connections_total" in families


def engine_part(text: str) -> list[str]:
    """An exposition text's lines less the `process_*` ones (read from /proc each time)."""
    return [line for line in text.splitlines() if "process_" not in line]


# ---- several processes: one scrape adds them up (engine/server/metrics_share.py) ------------


def worker_registry(connections: float, lag: float, grabs: float, latency: float) -> Metrics:
    """A registry as one worker of `serve --workers N` would hold it."""
    metrics = Metrics()
    metrics.connections.read = lambda: {("json",): connections}
    metrics.rooms.read = lambda: {(): 1.0}
    metrics.room_sweeper_lag.set(lag, "r1")
    metrics.grabs.inc(grabs, "reserved")
    metrics.grab_seconds.observe(latency)
    return metrics


def test_render_adds_other_processes_snapshots() -> None:
    one = worker_registry(connections=2, lag=0.5, grabs=3, latency=0.003)
    two = worker_registry(connections=5, lag=1.5, grabs=4, latency=0.3)
    two.errors.inc(1, "room_not_found")  # a series only the other process has
    # What a snapshot file holds survives JSON (engine/server/metrics_share.py writes it with
    # orjson).
    snapshot = orjson.loads(orjson.dumps(two.snapshot()))

    families = parse(one.render([snapshot]))
    assert families["livecart_grabs_total"][1] == [
        ("livecart_grabs_total", '{status="reserved"}', 7.0)
    ]
    assert families["livecart_errors_total"][1] == [
        ("livecart_errors_total", '{code="room_not_found"}', 1.0)
    ]
    assert families["livecart_open_connections"][1] == [
        ("livecart_open_connections", '{codec="json"}', 7.0)
    ]  # summed
    assert families["livecart_rooms_active"][1] == [("livecart_rooms_active", "", 2.0)]
    assert families["livecart_room_sweeper_lag_seconds"][1] == [
        ("livecart_room_sweeper_lag_seconds", '{room="r1"}', 1.5)
    ]  # the worst lag, not a sum
    grab_seconds = {
        (name, labels): value for name, labels, value in families["livecart_grab_seconds"][1]
    }
    assert grab_seconds[("livecart_grab_seconds_bucket", '{le="0.005"}')] == 1
    assert grab_seconds[("livecart_grab_seconds_bucket", '{le="0.5"}')] == 2
    assert grab_seconds[("livecart_grab_seconds_bucket", '{le="+Inf"}')] == 2
    assert grab_seconds[("livecart_grab_seconds_count", "")] == 2
    assert grab_seconds[("livecart_grab_seconds_sum", "")] == pytest.approx(0.303)
    # Merging reads the registries and changes neither.
    assert one.grabs.value("reserved") == 3
    assert one.grab_seconds.count == 1
    assert engine_part(one.render()) == engine_part(one.render([]))


def test_peers_are_read_at_each_scrape() -> None:
    metrics = Metrics()
    metrics.bytes_sent.inc(10)
    other = Metrics()
    other.bytes_sent.inc(5)
    reads: list[int] = []

    def peers() -> list[Snapshot]:
        reads.append(1)
        return [other.snapshot()]

    metrics.peers = peers
    assert "livecart_bytes_sent_total 15" in metrics.render()
    other.bytes_sent.inc(5)
    assert "livecart_bytes_sent_total 20" in metrics.render()
    assert len(reads) == 2
    assert "livecart_bytes_sent_total 10" in metrics.render([])  # this process alone


def test_add_up_keeps_counts_and_drops_gauges() -> None:
    one = worker_registry(connections=2, lag=0.5, grabs=3, latency=0.003)
    two = worker_registry(connections=5, lag=1.5, grabs=4, latency=0.3)
    total = add_up([one.snapshot(), two.snapshot()])
    assert total["livecart_grabs_total"] == [[["reserved"], 7.0]]
    ((labels, counts, total_s, count),) = total["livecart_grab_seconds"]
    assert (labels, sum(counts), count) == ([], 2, 2)
    assert total_s == pytest.approx(0.303)
    assert not [name for name in total if name in GAUGES]
    assert add_up([]) == add_up([{}])


def test_rows_of_another_layout_are_left_out() -> None:
    """Snapshots of another version (labels or buckets changed) never break a scrape."""
    metrics = Metrics()
    odd: Snapshot = {
        "livecart_grabs_total": [[["reserved", "extra"], 1.0], [["sold_out"], 2.0]],
        "livecart_grab_seconds": [[[], [1, 2], 0.5, 3]],
        "livecart_not_a_family_here": [[[], 1.0]],
    }
    families = parse(metrics.render([odd]))
    assert families["livecart_grabs_total"][1] == [
        ("livecart_grabs_total", '{status="sold_out"}', 2.0)
    ]
    assert ("livecart_grab_seconds_count", "", 0.0) in families["livecart_grab_seconds"][1]


GAUGES = {
    family.name for family in Metrics().families() if isinstance(family, Gauge)
}  # fmt: skip


def test_open_fds_without_the_cheap_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc/self/fd has no size (Linux before 6.2) the descriptors are listed, and
    then at most every FDS_EVERY_S."""
    real_fds = Path("/proc/self/fd")
    count, _ = process_metrics.open_fds(real_fds)
    assert count == pytest.approx(len(os.listdir(real_fds)), abs=2)
    fake = tmp_path / "self" / "fd"
    fake.mkdir(parents=True)
    for n in range(7):
        (fake / str(n)).touch()
    monkeypatch.setattr(process_metrics, "fd_dir_size", lambda _: 0)  # an older kernel
    assert process_metrics.open_fds(fake) == (7, False)
    assert process_metrics.open_fds(real_fds)[0] == pytest.approx(count, abs=2)
    reader = process_metrics.ProcessReader(tmp_path)
    assert reader.values()["process_open_fds"] == 7
    (fake / "7").touch()
    time.sleep(0.02)
    assert reader.values()["process_open_fds"] == 7  # listed again only after FDS_EVERY_S
    monkeypatch.setattr(process_metrics, "FDS_EVERY_S", 0.0)
    time.sleep(0.02)
    assert reader.values()["process_open_fds"] == 8
    assert "process_resident_memory_bytes" not in reader.values()  # no stat file there
