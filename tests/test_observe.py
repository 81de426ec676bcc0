"""What operators watch (docs/metrics.md § Operators: Prometheus): a real engine's whole
/metrics read by prometheus_client's reference parsers (text format and OpenMetrics), and
every metric that deploy/grafana/livecart.json and deploy/prometheus/alerts.yml query is
one the engine exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from clients import HostClient, ShopperClient
from engine.core.metrics import Gauge, Metrics
from engine.server.app import Engine
from tests.conftest import ADDRESS, ViewerFactory, token
from tests.test_api_catalog import JACKET

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "livecart.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus makes itself, not the engine.
PROMETHEUS_MADE = {"up"}


async def show_activity(engine: Engine, room: str, viewer_factory: ViewerFactory) -> int:
    """A little of a show on `engine`: viewers join and comment, a flash sale's one unit is
    grabbed (and one grab comes too late), the order is paid; one request is refused.
    Returns the order's total (minor units, USD)."""
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_product(**JACKET)
        sale = await host.launch_sale("DJ-M", 1, price=5000)
    ana = await viewer_factory(room, user="ana")
    bob = await viewer_factory(room, user="bob")
    await ana.comment("hello from the preview")
    grabbed = await ana.grab(sale["id"])
    assert grabbed["status"] == "reserved", grabbed
    assert (await bob.grab(sale["id"]))["status"] == "sold_out"
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as shopper:
        order = await shopper.checkout(
            [grabbed["reservation"]], address=ADDRESS, contact={"email": "ana@example.com"}
        )
        payment = await shopper.start_payment(order["id"])
        assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        assert (await http.get("/api/rooms/r-does-not-exist")).status_code == 404
    total: int = order["pricing"]["total"]
    return total


async def scrape_text(engine: Engine) -> str:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


class _Families:
    """A collector that hands back already-parsed families (to re-expose them)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def reference_parse(text: str) -> list[Metric]:
    """`text` through prometheus_client's text parser, then as OpenMetrics through its
    OpenMetrics parser. Fails unless every sample line parsed and family names are unique."""
    families = list(text_string_to_metric_families(text))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert sum(len(family.samples) for family in families) == len(lines)
    names = [family.name for family in families]
    assert sorted(n for n in set(names) if names.count(n) > 1) == [], "families share a name"
    reread = as_openmetrics(families)
    assert [family.name for family in reread] == names
    assert sum(len(f.samples) for f in reread) == len(lines)
    return families


def as_openmetrics(families: list[Metric]) -> list[Metric]:
    """The families exposed as OpenMetrics and read back by its parser, which refuses two
    families of one name (a gauge `x` beside a counter `x_total`: "Clashing name")."""
    openmetrics = generate_latest(_Families(families)).decode()  # type: ignore[arg-type]
    return list(openmetrics_families(openmetrics))


async def test_the_whole_exposition_parses_as_text_and_openmetrics(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    def paid(families: dict[str, Metric]) -> float:
        """GMV counted so far (the registry is the process's: other tests' orders too)."""
        samples = families["livecart_paid_minor_units"].samples
        return sum(s.value for s in samples if s.labels == {"currency": "USD"})

    before = {family.name: family for family in reference_parse(await scrape_text(engine))}
    total = await show_activity(engine, room, viewer_factory)
    families = {family.name: family for family in reference_parse(await scrape_text(engine))}
    # The gauge of open connections and the counter of accepted ones are two families.
    assert families["livecart_open_connections"].type == "gauge"
    assert families["livecart_connections"].type == "counter"
    assert [s.name for s in families["livecart_connections"].samples] == [
        "livecart_connections_total"
    ]
    assert sum(s.value for s in families["livecart_open_connections"].samples) >= 2
    assert paid(families) - paid(before) == total > 0
    (build,) = families["livecart_build_info"].samples
    assert build.value == 1
    assert set(build.labels) == {"version", "python"}
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        (sample,) = families[name].samples
        assert sample.labels == {"worker": "0"}
        assert sample.value > 0


def test_the_check_catches_a_family_collision() -> None:
    """The old gauge `livecart_connections` beside the counter `livecart_connections_total`:
    the reference parse refuses it."""
    metrics = Metrics()
    clash = Gauge("livecart_connections", "the old name")
    clash.set(1)
    text = metrics.render() + "\n".join(clash.render()) + "\n"
    with pytest.raises(AssertionError, match="families share a name"):
        reference_parse(text)
    with pytest.raises(ValueError, match="Clashing name: livecart_connections"):
        as_openmetrics(list(text_string_to_metric_families(text)))


# ---- the names the dashboard and the alert rules query ------------------------------------


def dashboard_exprs(dashboard: dict[str, Any] | None = None) -> list[str]:
    """Every PromQL expression of deploy/grafana/livecart.json (panel targets, variables)."""
    dashboard = dashboard or json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def alert_exprs(text: str | None = None) -> dict[str, str]:
    """alert name -> its `expr` (one line, or a `>-` block) from alerts.yml."""
    lines = (ALERTS.read_text() if text is None else text).splitlines()
    out: dict[str, str] = {}
    alert = ""
    for i, line in enumerate(lines):
        if match := re.match(r"\s*- alert: (\w+)$", line):
            alert = match[1]
        elif match := re.match(r"(\s*)expr: (.*)$", line):
            if match[2] != ">-":
                out[alert] = match[2]
                continue
            indent = len(match[1])
            block = []
            for following in lines[i + 1 :]:
                if len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following.strip())
            out[alert] = " ".join(block)
    return out


# PromQL words that look like metric names (functions, keywords, aggregations).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers not inside a string, a label
    matcher's name, a `by`/`on`/`without` list or a range, and not followed by `(`."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # label matchers
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges
    names = set()
    for match in _IDENT.finditer(bare):
        after = bare[match.end() :].lstrip()
        word = match[0]
        if after.startswith("(") or word in {"and", "or", "unless", "bool", "offset", "inf"}:
            continue
        if re.fullmatch(r"\d.*|e\d+", word):
            continue
        names.add(word)
    return names


def exported(text: str) -> set[str]:
    """Every sample name a /metrics text may hold: each family's (its TYPE line), and a
    histogram's `_bucket`, `_sum` and `_count` (those suffixes only for histograms)."""
    names = set()
    for line in text.splitlines():
        if match := re.match(r"# TYPE (\S+) (\w+)$", line):
            name, kind = match[1], match[2]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_metric_names_reads_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, instance) (rate(livecart_grab_seconds_bucket"
        '{job="$job", instance=~"x"}[5m]))) > 0.25 and on (job) up == 0'
        " or 0 * count(process_open_fds)"
    )
    assert metric_names(expr) == {"livecart_grab_seconds_bucket", "up", "process_open_fds"}
    assert metric_names('label_values(livecart_build_info{job="$job"}, instance)') == {
        "livecart_build_info",
        "instance",  # the one non-metric word label_values takes: left to the caller
    }


async def test_every_queried_metric_is_exported(engine: Engine) -> None:
    text = await scrape_text(engine)
    have = exported(text) | PROMETHEUS_MADE
    dashboard = set().union(*map(metric_names, dashboard_exprs())) - {"instance", "job"}
    alerts = alert_exprs()
    assert len(alerts) == 13
    rules = set().union(*map(metric_names, alerts.values()))
    assert dashboard - have == set()
    assert rules - have == set()
    # Not vacuous: they query most of what matters.
    assert {
        "livecart_grab_seconds_bucket", "livecart_open_connections", "livecart_build_info",
        "process_cpu_seconds_total", "process_resident_memory_bytes",
        "livecart_paid_minor_units_total", "livecart_redis_rtt_seconds_bucket",
    } <= dashboard  # fmt: skip
    assert {"up", "livecart_tick_seconds_bucket", "livecart_open_connections"} <= rules
    # A name that is not exported is caught (histogram suffixes only on histograms).
    assert "livecart_open_connections_bucket" not in have
    assert "livecart_grab_seconds" in have


def test_dashboard_panels() -> None:
    """One panel per topic, every query through the DS_PROMETHEUS variable."""
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert titles == [
        "Rooms", "Viewers online", "Fan-out tick duration", "Frames pushed", "Grab latency",
        "Grab outcomes", "Orders", "GMV", "Redis latency", "Redis errors",
        "Disconnects by reason", "Errors by code", "Process CPU", "Process memory",
    ]  # fmt: skip
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert 'job="$job"' in target["expr"], target["expr"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)


def test_every_exported_family_is_documented() -> None:
    """Each family of /metrics has its row in docs/api.md's metric table or docs/metrics.md's
    (the per-room ones); the old name of the connections gauge is in neither table."""
    tables = "".join(
        line
        for doc in ("api.md", "metrics.md")
        for line in (ROOT / "docs" / doc).read_text().splitlines(keepends=True)
        if line.startswith("|")
    )
    for family in Metrics().families():
        assert f"`{family.name}`" in tables or family.name in tables, family.name
    assert "`livecart_connections`" not in tables
