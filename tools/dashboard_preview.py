"""A preview of deploy/grafana/livecart.json without Grafana: each panel's PromQL run
through a real Prometheus's `query_range` API, drawn as one SVG line chart per panel in a
self-contained HTML page (no scripts, no external files).

Not Grafana: no panel options beyond the title, the unit and the legend format are
honoured; it shows that every panel's query returns what the engine exported.

    python -m tools.dashboard_preview --prometheus http://127.0.0.1:9090 \\
        --job livecart --minutes 15 --out preview.html
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "livecart.json"
COLORS = ("#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0")
WIDTH, HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 560, 200, 64, 10, 24, 10


@dataclass
class Series:
    legend: str
    points: list[tuple[float, float]]


@dataclass
class Panel:
    title: str
    unit: str
    exprs: list[str]
    series: list[Series] = field(default_factory=list)


def expand(expr: str, job: str, instance: str = ".*", rate_interval: str = "15s") -> str:
    """The dashboard's variables as Grafana would fill them for one job, all engines."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$job", job)
        .replace("$instance", instance)
    )


def legend(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)
    return text.strip() or json.dumps(labels, sort_keys=True)


def query_range(
    http: httpx.Client, expr: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    response = http.get(
        "/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": step}
    )
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise RuntimeError(f"query_range {expr!r}: {response.status_code} {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def load_panels(
    http: httpx.Client,
    job: str,
    start: float,
    end: float,
    *,
    step: float,
    rate_interval: str = "15s",
    dashboard: Path = DASHBOARD,
) -> list[Panel]:
    """Every panel of the dashboard with the series its queries return."""
    model = json.loads(dashboard.read_text())
    panels = []
    for spec in model["panels"]:
        unit = spec.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        panel = Panel(spec["title"], unit, [])
        for target in spec["targets"]:
            expr = expand(target["expr"], job, rate_interval=rate_interval)
            panel.exprs.append(expr)
            for found in query_range(http, expr, start, end, step):
                points = [
                    (float(t), float(v))
                    for t, v in found["values"]
                    if math.isfinite(float(v))  # histogram_quantile of no data: NaN
                ]
                if points:
                    label = legend(target.get("legendFormat", ""), found["metric"])
                    panel.series.append(Series(label, points))
        panels.append(panel)
    return panels


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit == "bytes":
        for size, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.3g} {suffix}"
        return f"{value:.3g} B"
    if unit == "percentunit":
        return f"{value * 100:.3g} %"
    if unit == "ops":
        return f"{value:.3g}/s"
    return f"{value:.4g}"


def chart(panel: Panel, start: float, end: float) -> str:
    """One panel as an SVG line chart, with its legend."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in panel.series for _, v in s.points]
    high = max([*values, 0.0])
    high = high * 1.1 if high > 0 else 1.0
    span = max(end - start, 1e-9)

    def x(t: float) -> float:
        return LEFT + (t - start) / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / high * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}">']
    for i in range(5):  # grid and value axis
        v = high * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#2c3235"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{html.escape(format_value(v, panel.unit))}</text>"
        )
    for i in range(5):  # time axis
        t = start + span * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<text x="{x(t):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
            f"{time.strftime('%H:%M:%S', time.gmtime(t))}</text>"
        )
    for n, series in enumerate(panel.series):
        color = COLORS[n % len(COLORS)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series.points)
        if len(series.points) == 1:
            ((t, v),) = series.points
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>')
        # Every other series dashed, so one drawn over an equal one still shows.
        dash = ' stroke-dasharray="6 4"' if n % 2 else ""
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{path}"/>'
        )
    if not panel.series:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
            'class="none">No data</text>'
        )
    parts.append("</svg>")
    items = "".join(
        f'<li><span style="background:{COLORS[n % len(COLORS)]}"></span>'
        f"{html.escape(s.legend)} <b>{html.escape(format_value(s.points[-1][1], panel.unit))}</b>"
        "</li>"
        for n, s in enumerate(panel.series)
    )
    return (
        f'<section class="panel"><h2>{html.escape(panel.title)}</h2>{"".join(parts)}'
        f'<ul class="legend">{items}</ul></section>'
    )


STYLE = """
body { background: #111217; color: #ccccdc; font: 12px/1.4 system-ui, sans-serif; margin: 16px; }
h1 { font-size: 18px; margin: 0 0 4px; } p.note { margin: 0 0 12px; color: #8e8e9e; }
main { display: grid; grid-template-columns: repeat(2, 580px); gap: 10px; }
.panel { background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; padding: 6px 8px; }
h2 { font-size: 13px; font-weight: 500; margin: 0 0 4px; }
svg text { fill: #8e8e9e; font-size: 10px; } svg text.none { font-size: 13px; }
ul.legend { list-style: none; margin: 2px 0 0; padding: 0; display: flex; flex-wrap: wrap;
  gap: 2px 12px; min-height: 16px; }
ul.legend span { display: inline-block; width: 12px; height: 3px; margin: 0 4px 3px 0;
  vertical-align: middle; }
"""


def page(panels: Sequence[Panel], start: float, end: float, title: str = "livecart") -> str:
    window = (
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start))} to "
        f"{time.strftime('%H:%M:%S', time.gmtime(end))} UTC"
    )
    charts = "".join(chart(panel, start, end) for panel in panels)
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} dashboard preview</title><style>{STYLE}</style></head>"
        f'<body><h1>{html.escape(title)}</h1><p class="note">Preview of '
        "deploy/grafana/livecart.json: each panel's queries run through Prometheus's "
        f"query_range API, {window} (tools/dashboard_preview.py; not Grafana).</p>"
        f"<main>{charts}</main></body></html>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL of a Prometheus")
    parser.add_argument("--job", default="livecart")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--rate-interval", default="1m")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    end = time.time()
    start = end - args.minutes * 60
    with httpx.Client(base_url=args.prometheus, timeout=30) as http:
        step = max(1.0, (end - start) / 300)
        panels = load_panels(
            http, args.job, start, end, step=step, rate_interval=args.rate_interval
        )
    args.out.write_text(page(panels, start, end))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
