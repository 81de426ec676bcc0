"""The run's report: one self-contained HTML page per `livecart loadtest` run (sans-I/O).

`render(result)` takes the run's result (the verdict JSON, docs/loadtesting.md § Reading
the verdict) and returns one page: the verdict first, then the target, the SLOs, the
audit, per-second charts (requests by kind, pushes, latency percentiles per kind,
connected viewers, with the show's events as numbered markers), the phases and the
totals. Inline CSS and inline SVG; no script, no font, no request, so it opens offline,
prints, and reads on a phone. The same page for both generators.

Results recorded before a key existed (`slos`, `phases`, `timeline`, `events`,
`close_codes`, `seed`) still render: the page says which keys the run lacks and each
section that needs one says so in place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from engine.insights.report_html import compact  # axis labels as the show report's

FILE_NAME = "loadtest-report.html"
NEW_KEYS = ("slos", "phases", "timeline", "events", "close_codes", "seed")
# Okabe-Ito: told apart with every common colour-vision deficiency (no yellow: unreadable
# on white; vermillion is kept for failures and p99). Beyond six kinds, lines also differ
# by dash pattern.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
PERCENTILES = (("p50", "#0072B2", ""), ("p95", "#E69F00", "6 3"), ("p99", "#D55E00", ""))
EVENT_COLOUR = "#4b5563"
# One chart's viewBox: sized so that its 14-unit text stays readable from a phone (one chart
# per row, scaled to ~0.72: 10 px) to a laptop (two per row, ~1.15).
# The band above TOP holds the events' numbered badges (two rows).
W, H, LEFT, RIGHT, TOP, BOTTOM = 480, 290, 56, 14, 46, 46
BADGE_ROWS = (12, 31)
MAX_POINTS = 600  # longer runs are drawn in buckets of several seconds
# Request kinds in the order a viewer meets them (others follow, alphabetically).
ORDER = ("HTTP token", "WS connect", "WS join", "WS grab", "WS claim", "WS click", "WS comment",
         "WS like", "HTTP checkout", "HTTP payment", "HTTP pay")  # fmt: skip


def ordered(kinds: Iterable[str]) -> list[str]:
    return sorted(kinds, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k))


CSS = """
:root{--ink:#111827;--muted:#4b5563;--line:#e5e7eb;--card:#f9fafb;--pass:#1a7f37;
--fail:#b42318;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:var(--ink);background:#fff}
main{max-width:1200px;margin:0 auto;padding:20px 16px 48px}
h1{font-size:1.6rem;margin:0 0 6px;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.verdict{border-radius:12px;padding:14px 18px;margin:12px 0 8px;color:#fff}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}
.verdict.unknown{background:var(--warn)}
.verdict .word{font-size:1.7rem;font-weight:700;letter-spacing:.02em}
.verdict ul{margin:6px 0 0;padding-left:1.2em}
.verdict p{margin:2px 0 0}
.notice{border:1px solid #d4a72c;background:#fff8c5;border-radius:8px;padding:8px 12px;
margin:12px 0}
.missing{color:var(--muted);font-style:italic;margin:6px 0}
dl.target{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.target dt{color:var(--muted)}dl.target dd{margin:0;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px}
.card .label{color:var(--muted);font-size:.75rem;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:1.3rem;font-weight:600;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,500px),1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:10px;padding:10px}
figure svg{width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:.85rem;color:var(--ink);margin:6px 0 0}
.legend svg{display:inline-block;width:22px;height:10px;vertical-align:0;margin-right:5px}
.empty{padding:32px 12px;text-align:center;color:var(--muted)}
.tables{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:.75rem;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
td.n,th.n{text-align:right;white-space:nowrap}
tr.phase-start td{border-top:2px solid #9ca3af}
.ok{color:var(--pass);font-weight:600;white-space:nowrap}
.bad{color:var(--fail);font-weight:600;white-space:nowrap}
.events{padding-left:0;list-style:none;margin:0}
.events li{padding:3px 0;display:flex;gap:10px;align-items:baseline}
.badge{display:inline-block;min-width:1.6em;text-align:center;border-radius:999px;
background:#4b5563;color:#fff;font-size:.8rem;font-weight:600;padding:0 .4em}
.events .at{color:var(--muted);font-variant-numeric:tabular-nums;min-width:4.5em}
footer{margin-top:40px;color:var(--muted);font-size:.85rem}
@media (max-width:600px){body{font-size:14px}main{padding:12px 10px 32px}
h1{font-size:1.3rem}th,td{padding:4px 6px}.verdict .word{font-size:1.4rem}}
@media print{main{max-width:none}figure,.card,tr{break-inside:avoid}
.verdict{border:2px solid #000;color:#000;background:none!important}}
"""


# ---- formatting ------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A finite number, else None (missing, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def count(value: Any) -> str:
    number = _num(value)
    return "—" if number is None else f"{round(number):,}"


def ms(value: Any) -> str:
    """A latency: "0.8 ms", "245 ms", "1.52 s"."""
    number = _num(value)
    if number is None:
        return "—"
    if number >= 1000:
        return f"{number / 1000:.2f} s"
    return f"{number:.1f} ms" if number < 10 else f"{number:.0f} ms"


def seconds(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "—"
    if number < 60:
        return f"{number:.1f} s".replace(".0 s", " s")
    whole = round(number)
    return f"{whole // 60}m {whole % 60:02d}s"


def measured(value: Any, unit: str) -> str:
    number = _num(value)
    if number is None:
        return "no data"
    text = f"{number:,.2f}".rstrip("0").rstrip(".") if number % 1 else f"{number:,.0f}"
    return f"{text} {unit}".strip()


def mark(ok: Any) -> str:
    """Pass or fail as a word and a symbol, never colour alone."""
    if ok is True:
        return '<span class="ok">✓ pass</span>'
    if ok is False:
        return '<span class="bad">✗ fail</span>'
    return '<span class="missing">unknown</span>'


def table(key: str, heads: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int],
          *, raw: bool = False, row_class: Sequence[str] | None = None) -> str:  # fmt: skip
    """A table; cells are escaped unless `raw` (their HTML built here)."""

    def cell(tag: str, i: int, text: str) -> str:
        value = text if raw and tag == "td" else escape(text)
        return f'<{tag} class="n">{value}</{tag}>' if i in numeric else f"<{tag}>{value}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(heads))
    body = []
    for n, row in enumerate(rows):
        cls = f' class="{row_class[n]}"' if row_class and row_class[n] else ""
        body.append(f"<tr{cls}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    if not body:
        body = [f'<tr><td colspan="{len(heads)}">None</td></tr>']
    return (f'<div class="tables"><table id="{key}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")  # fmt: skip


def missing(what: str, key: str) -> str:
    return (
        f'<p class="missing" data-missing="{escape(key)}">{escape(what)}: not in this '
        f"run's result (no <code>{escape(key)}</code>; recorded by an older livecart?)</p>"
    )


# ---- the result's parts -----------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class Event:
    number: int
    t: float
    label: str


def events_of(result: dict[str, Any]) -> tuple[list[Event], str]:
    """The show's events (numbered in time order) and where they came from: `events`, else
    the host steps played (`show`, older runs), else none."""
    raw: list[tuple[float, str]] = []
    if "events" in result:
        source = "events"
        for event in _list(result.get("events")):
            t = _num(_dict(event).get("t"))
            if t is not None:
                raw.append((t, str(event.get("label", ""))))
    else:
        source = "show" if _list(result.get("show")) else ""
        for item in _list(result.get("show")):
            step = _dict(item)
            t = _num(step.get("at_s"))
            if t is None:
                continue
            detail = {k: v for k, v in step.items() if k not in {"at_s", "action"}}
            what = ", ".join(f"{k} {v}" for k, v in detail.items() if k != "starts_at")
            raw.append((t, f"{step.get('action', 'step')}" + (f" ({what})" if what else "")))
    raw.sort(key=lambda item: item[0])
    return [Event(i + 1, t, label) for i, (t, label) in enumerate(raw)], source


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float


def phases_of(result: dict[str, Any]) -> list[Phase]:
    phases = []
    for item in _list(result.get("phases")):
        phase = _dict(item)
        start, end = _num(phase.get("start_s")), _num(phase.get("end_s"))
        if start is not None and end is not None and end > start:
            phases.append(Phase(str(phase.get("name", "")), start, end))
    return phases


@dataclass(frozen=True)
class Timeline:
    """The per-second rows, bucketed to at most MAX_POINTS points: each point's time is its
    bucket's start (s); counts are per second (averaged over the bucket), latencies the
    bucket's highest (a slow second is never averaged away); None where nothing was timed."""

    step: int
    times: list[float]
    requests: dict[str, list[float]]
    failures: dict[str, list[float]]
    pushes: list[float]
    viewers: list[float | None]
    latency: dict[str, dict[str, list[float | None]]]  # kind -> p50/p95/p99
    push_latency: dict[str, list[float | None]]

    @property
    def end(self) -> float:
        return self.times[-1] + self.step if self.times else 0.0


def timeline_of(result: dict[str, Any]) -> Timeline | None:
    data = _dict(result.get("timeline"))
    rows = [_dict(r) for r in _list(data.get("rows")) if _num(_dict(r).get("t")) is not None]
    if not rows:
        return None
    by_t: dict[int, dict[str, Any]] = {}
    for row in rows:
        by_t[int(row["t"])] = row
    first, last = min(by_t), max(by_t)
    span = last - first + 1
    step = max(1, math.ceil(span / MAX_POINTS))
    kinds = sorted({k for r in rows for k in _dict(r.get("requests"))})
    timed = sorted({k for r in rows for k in _dict(r.get("latency_ms"))})
    times: list[float] = []
    requests: dict[str, list[float]] = {k: [] for k in kinds}
    failing = sorted({k for r in rows for k in _dict(r.get("failures"))})
    failures: dict[str, list[float]] = {k: [] for k in failing}
    pushes: list[float] = []
    viewers: list[float | None] = []
    latency: dict[str, dict[str, list[float | None]]] = {
        k: {p: [] for p, _, _ in PERCENTILES} for k in timed
    }
    push_latency: dict[str, list[float | None]] = {p: [] for p, _, _ in PERCENTILES}

    def highest(values: Iterable[Any]) -> float | None:
        found = [v for v in (_num(x) for x in values) if v is not None]
        return max(found) if found else None

    for start in range(first, last + 1, step):
        group = [by_t[t] for t in range(start, min(start + step, last + 1)) if t in by_t]
        times.append(float(start))
        for kind in kinds:
            total = sum(_num(_dict(r.get("requests")).get(kind)) or 0.0 for r in group)
            requests[kind].append(total / step)
        for kind in failing:
            total = sum(_num(_dict(r.get("failures")).get(kind)) or 0.0 for r in group)
            failures[kind].append(total / step)
        pushes.append(sum(_num(r.get("pushes")) or 0.0 for r in group) / step)
        viewers.append(highest(r.get("viewers") for r in group))
        for kind in timed:
            for p, _, _ in PERCENTILES:
                values = (_dict(_dict(r.get("latency_ms")).get(kind)).get(p) for r in group)
                latency[kind][p].append(highest(values))
        for p, _, _ in PERCENTILES:
            push_latency[p].append(highest(_dict(r.get("push_latency_ms")).get(p) for r in group))
    return Timeline(step, times, requests, failures, pushes, viewers, latency, push_latency)


# ---- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    name: str
    values: Sequence[float | None]  # None: a gap
    colour: str
    dash: str = ""
    width: float = 2.0


def quiet_as_gaps(values: Sequence[float]) -> list[float | None]:
    """A count's seconds of 0 with 0 on both sides as gaps: a kind that is idle most of the
    run is not a line along the axis hiding the others, yet its rise and fall still show."""
    out: list[float | None] = list(values)
    for i, v in enumerate(values):
        before = values[i - 1] if i else 0.0
        after = values[i + 1] if i + 1 < len(values) else 0.0
        if v == 0 and before == 0 and after == 0:
            out[i] = None
    return out


def nice_range(high: float, ticks: int = 4) -> tuple[float, float]:
    """(top, step): 0..top in round steps covering `high`; never empty."""
    if high <= 0:
        return float(ticks), 1.0
    raw = high / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.ceil(high / step - 1e-9) * step, step


def time_step(span: float) -> float:
    """Seconds between x-axis ticks: at most ~7 labels."""
    return next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
                if span / s <= 7) if span > 0 else 1  # fmt: skip


def tick_label(t: float, span: float) -> str:
    if span <= 120:
        return f"{t:.0f}"
    whole = round(t)
    return f"{whole // 60}:{whole % 60:02d}"


@dataclass(frozen=True)
class Frame:
    """Maps seconds and values onto one chart's drawing area."""

    start: float
    end: float
    top: float

    def x(self, t: float) -> float:
        span = (self.end - self.start) or 1.0
        t = min(max(t, self.start), self.end)
        return LEFT + (t - self.start) / span * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        v = min(max(v, 0.0), self.top)
        return H - BOTTOM - v / (self.top or 1.0) * (H - TOP - BOTTOM)


def axes(frame: Frame, step: float, y_label: str) -> str:
    parts = []
    value = 0.0
    while value <= frame.top + step / 2:
        y = frame.y(value)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e5e7eb"/><text x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(compact(value))}</text>')  # fmt: skip
        value += step
    span = frame.end - frame.start
    every = time_step(span)
    base = H - BOTTOM
    t = math.ceil(frame.start / every) * every
    while t <= frame.end + 1e-9:
        x = frame.x(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" '
                     f'stroke="#6b7280"/><text x="{x:.1f}" y="{base + 18}" '
                     f'text-anchor="middle">{tick_label(t, span)}</text>')  # fmt: skip
        t += every
    middle = (TOP + base) / 2
    x_label = "seconds since the load started" if span <= 120 else "m:ss since the load started"
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{base}" y2="{base}" stroke="#6b7280"/>'
                 f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle" '
                 f'fill="#4b5563">{escape(x_label)}</text>'
                 f'<text x="16" y="{middle:.0f}" text-anchor="middle" fill="#4b5563" '
                 f'transform="rotate(-90 16 {middle:.0f})">{escape(y_label)}</text>')  # fmt: skip
    return "".join(parts)


def bands(frame: Frame, phases: list[Phase]) -> str:
    parts = []
    for i, phase in enumerate(phases):
        x1, x2 = frame.x(phase.start), frame.x(phase.end)
        fill = "#f3f4f6" if i % 2 == 0 else "#ffffff"
        parts.append(f'<rect class="phase" x="{x1:.1f}" y="{TOP}" width="{max(0.0, x2 - x1):.1f}" '
                     f'height="{H - TOP - BOTTOM}" fill="{fill}"><title>phase '
                     f"{escape(phase.name)}: {phase.start:g} to {phase.end:g} s</title>"
                     "</rect>")  # fmt: skip
    return "".join(parts)


BADGE_GAP = 18  # between two badges' centres in one row (radius 8)


def event_marks(frame: Frame, events: list[Event]) -> str:
    """A dashed line per event and its number in a badge in the band along the top. A badge
    goes in the row where it can sit nearest its line without touching another badge; when
    events crowd, it moves right along the row and a short stroke leads to its line."""
    parts, last = [], [-1e9] * len(BADGE_ROWS)
    for event in events:
        if not frame.start <= event.t <= frame.end:
            continue
        x = frame.x(event.t)
        free = [max(x, at + BADGE_GAP) for at in last]
        row = min(range(len(BADGE_ROWS)), key=lambda r: (free[r] - x, r))
        bx, y = free[row], BADGE_ROWS[row]
        last[row] = bx
        lead = (f'<line x1="{bx:.1f}" x2="{x:.1f}" y1="{y + 8}" y2="{TOP}" '
                f'stroke="{EVENT_COLOUR}"/>' if bx != x else "")  # fmt: skip
        parts.append(f'<g class="event" data-event="{event.number}"><title>{event.number}. '
                     f"{escape(event.label)} at {seconds(event.t)}</title>{lead}"
                     f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 8 if bx == x else TOP}" '
                     f'y2="{H - BOTTOM}" stroke="{EVENT_COLOUR}" stroke-dasharray="3 3"/>'
                     f'<circle cx="{bx:.1f}" cy="{y}" r="8" fill="{EVENT_COLOUR}"/>'
                     f'<text x="{bx:.1f}" y="{y + 4}" text-anchor="middle" fill="#fff" '
                     f'font-size="11" font-weight="600">{event.number}</text></g>')  # fmt: skip
    return "".join(parts)


def path(frame: Frame, times: Sequence[float], line: Line, step: float) -> str:
    """The line as one <path>, broken where a value is missing; a lone point is a dot."""
    segments: list[list[tuple[float, float]]] = [[]]
    for t, v in zip(times, line.values, strict=True):
        if v is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((frame.x(t + step / 2), frame.y(v)))
    d, dots = [], []
    for segment in segments:
        if len(segment) == 1:
            dots.append(f'<circle cx="{segment[0][0]:.1f}" cy="{segment[0][1]:.1f}" r="2.5" '
                        f'fill="{line.colour}"/>')  # fmt: skip
        elif segment:
            d.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in segment))
    dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
    shown = sum(1 for v in line.values if v is not None)
    return (f'<g class="series" data-series="{escape(line.name)}" data-points="{shown}">'
            + (f'<path d="{" ".join(d)}" fill="none" stroke="{line.colour}" '
               f'stroke-width="{line.width}" stroke-linejoin="round"{dash}/>' if d else "")
            + "".join(dots) + "</g>")  # fmt: skip


def legend(lines: Sequence[Line]) -> str:
    items = "".join(
        f'<span data-legend="{escape(line.name)}"><svg viewBox="0 0 22 10" aria-hidden="true">'
        f'<line x1="0" x2="22" y1="5" y2="5" stroke="{line.colour}" stroke-width="3"'
        + (f' stroke-dasharray="{line.dash}"' if line.dash else "")
        + f"/></svg>{escape(line.name)}</span>"
        for line in lines
    )
    return f'<div class="legend">{items}</div>'


@dataclass(frozen=True)
class Scene:
    """What every chart of a run shares: its seconds, events and phases."""

    timeline: Timeline | None
    events: list[Event]
    phases: list[Phase]
    note: str = ""


def chart(key: str, title: str, y_label: str, lines: Sequence[Line], scene: Scene, *,
          none: str = "Nothing measured") -> str:  # fmt: skip
    """One figure: the lines over the run's seconds, the phases behind, the events on top."""
    timeline, events, phases, note = scene.timeline, scene.events, scene.phases, scene.note
    shading = " · shaded: phases" if phases else ""
    head = f"<figcaption><b>{escape(title)}</b>{escape(note + shading)}</figcaption>"
    values = [v for line in lines for v in line.values if v is not None]
    if timeline is None or not values:
        why = "No per-second data in this run's result" if timeline is None else none
        return (f'<figure id="{key}" data-empty="1">{head}<p class="empty">{why}</p>'
                f"</figure>")  # fmt: skip
    # From the load's start (or the first row or event, if earlier) to the last of either.
    start = min([0.0, timeline.times[0], *(e.t for e in events)])
    end = max([timeline.end, *(e.t for e in events)])
    top, step = nice_range(max(values))
    frame = Frame(start, end, top)
    body = (bands(frame, phases) + axes(frame, step, y_label)
            + "".join(path(frame, timeline.times, line, timeline.step) for line in lines)
            + event_marks(frame, events))  # fmt: skip
    desc = "; ".join(f"{line.name}: max {compact(max(v for v in line.values if v is not None))}"
                     for line in lines if any(v is not None for v in line.values))  # fmt: skip
    svg = (f'<svg id="chart-{key}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-labelledby="{key}-t {key}-d" font-size="14" fill="#111827">'
           f'<title id="{key}-t">{escape(title)}</title><desc id="{key}-d">{escape(desc)}</desc>'
           f"{body}</svg>")  # fmt: skip
    return f'<figure id="{key}">{head}{svg}{legend(lines)}</figure>'


def styled(names: Sequence[str]) -> list[tuple[str, str, str]]:
    """(name, colour, dash) for each name: the palette first, then dashed again."""
    return [(name, PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)])
            for i, name in enumerate(names)]  # fmt: skip


def charts(result: dict[str, Any], events: list[Event], phases: list[Phase]) -> str:
    timeline = timeline_of(result)
    if timeline is None:
        return missing("Per-second charts", "timeline")
    note = ""
    if timeline.step > 1:
        note = f" · each point {timeline.step} s (counts averaged per second, latency the highest)"
    # A kind has the same colour and dash in both charts.
    kinds = ordered({*timeline.requests, *timeline.failures})
    style = {name: (colour, dash) for name, colour, dash in styled(kinds)}
    throughput = [Line(name, quiet_as_gaps(timeline.requests[name]), *style[name])
                  for name in kinds if name in timeline.requests]  # fmt: skip
    failures = [Line(name, quiet_as_gaps(timeline.failures[name]), *style[name], width=2.5)
                for name in kinds if name in timeline.failures]  # fmt: skip
    scene = Scene(timeline, events, phases, note)
    figures = [
        chart("throughput", "Requests per second, by kind", "requests / s", throughput, scene),
        chart("failures", "Failed requests per second, by kind", "failures / s", failures, scene,
              none="No failed requests"),
        chart("pushes", "Pushes received per second", "pushes / s",
              [Line("pushes", timeline.pushes, PALETTE[0])], scene),
        chart("viewers", "Connected viewers", "viewers",
              [Line("connected viewers", timeline.viewers, PALETTE[2], width=2.5)], scene),
        chart("latency-push", "Push latency", "latency, ms",
              [Line(p, timeline.push_latency[p], c, d) for p, c, d in PERCENTILES], scene),
    ]  # fmt: skip
    for kind in ordered(timeline.latency):
        series = timeline.latency[kind]
        key = "latency-" + re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
        lines = [Line(p, series[p], c, d) for p, c, d in PERCENTILES]
        figures.append(chart(key, f"{kind} latency", "latency, ms", lines, scene))
    return f'<div class="charts">{"".join(figures)}</div>'


# ---- sections ---------------------------------------------------------------------------------


def verdict_section(result: dict[str, Any]) -> str:
    ok = result.get("ok")
    problems = [str(p) for p in _list(result.get("problems"))]
    failing = [str(s.get("slo")) for s in (_dict(x) for x in _list(result.get("slos")))
               if s.get("ok") is False]  # fmt: skip
    unsaid = [slo for slo in failing if not any(slo in p for p in problems)]
    reasons = problems + [f"SLO {slo} missed" for slo in unsaid]
    if ok is True:
        cls, word = "pass", "✓ PASS"
        held = "every audit check and SLO held" if "slos" in result else "every audit check held"
        detail = f"<p>Good: {held}, failures within the limit.</p>"
    elif ok is False:
        cls, word = "fail", "✗ FAIL"
        detail = ""
    else:
        cls, word, detail = "unknown", "? NO VERDICT", "<p>This result has no <code>ok</code>.</p>"
    items = "".join(f"<li>{escape(r)}</li>" for r in reasons)
    listing = f"<ul id='reasons'>{items}</ul>" if items else ""
    return (f'<section id="verdict" class="verdict {cls}" data-ok="{str(ok).lower()}">'
            f'<div class="word">{word}</div>{detail}{listing}</section>')  # fmt: skip


def target_section(result: dict[str, Any]) -> str:
    host = result.get("host") or result.get("base_url") or result.get("target")
    spawn = _num(result.get("spawn_rate"))
    seed = result.get("seed", "__missing__")
    rows = [
        ("Host", str(host) if host else "not recorded (a local engine unless --host was given)"),
        ("Room", str(result.get("room", "—"))),
        ("Scenario", str(result.get("scenario", "—"))),
        ("Users", count(result.get("users"))
         + (f" at {compact(spawn)}/s" if spawn is not None else "")),
        ("Duration", seconds(result.get("duration_s"))),
        ("Generator", str(result.get("generator", "—"))
         + (f", {count(n)} process{'es' if n != 1 else ''}"
            if (n := _num(result.get("processes"))) is not None else "")),
        ("Seed", "not recorded (older run)" if seed == "__missing__"
         else "none (random)" if seed is None else str(seed)),
    ]  # fmt: skip
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="target" id="target">{items}</dl>'


def slowest(by_type: dict[str, Any]) -> list[tuple[str, str]]:
    """The slowest request kind's p99, as a card."""
    rows = [(k, _num(_dict(v).get("p99"))) for k, v in by_type.items() if not k.startswith("PUSH")]
    timed = [(k, v) for k, v in rows if v is not None]
    if not timed:
        return [("Slowest p99", "—")]
    kind, value = max(timed, key=lambda item: item[1])
    return [(f"Slowest p99: {kind}", ms(value))]


def cards(result: dict[str, Any]) -> str:
    ratio = _num(result.get("failure_ratio"))
    push = _dict(result.get("push_latency_ms"))
    joined = result.get("viewers_joined")
    figures = [
        ("Requests", count(result.get("requests"))),
        ("Failures", count(result.get("failures"))
         + (f" ({ratio * 100:.2f}%)" if ratio is not None else "")),
        ("Viewers joined", f"{count(joined)} of {count(result.get('users'))}"),
        *slowest(_dict(result.get("by_type"))),
        ("Push p99", ms(push.get("p99"))),
        ("Oversell", count(result.get("oversell"))),
        ("Coupons used twice", count(result.get("double_used_coupons"))),
        ("Engine CPU, % of a core", f"{compact(v)}%"
         if (v := _num(result.get("engine_cpu_percent"))) is not None else "—"),
        ("Generator CPU, % of a core", f"{compact(v)}%"
         if (v := _num(result.get("generator_cpu_percent"))) is not None else "—"),
    ]  # fmt: skip
    body = "".join(f'<div class="card"><div class="label">{escape(k)}</div>'
                   f'<div class="value">{escape(v)}</div></div>' for k, v in figures)  # fmt: skip
    return f'<section class="cards" aria-label="Headline figures">{body}</section>'


SLO_FORM = re.compile(r"^\s*(?P<what>.+?)\s*(?P<op><=|>=|<|>|==|=)\s*(?P<limit>.+?)\s*$")


def slos_section(result: dict[str, Any]) -> str:
    if "slos" not in result:
        return missing("SLOs", "slos")
    rows = []
    for slo in (_dict(s) for s in _list(result.get("slos"))):
        text = str(slo.get("slo", ""))
        form = SLO_FORM.match(text)
        what, limit = (form["what"], f"{form['op']} {form['limit']}") if form else (text, "—")
        rows.append([escape(what), escape(limit),
                     escape(measured(slo.get("value"), str(slo.get("unit", "")))),
                     mark(slo.get("ok"))])  # fmt: skip
    return table("slos", ["SLO", "Threshold", "Measured", "Result"], rows, {2}, raw=True)


def audit_section(result: dict[str, Any]) -> str:
    audit = _dict(result.get("audit"))
    checks = [_dict(c) for c in _list(audit.get("checks"))]
    if not checks:
        return '<p class="missing">No audit checks in this result.</p>'
    rows = [[escape(str(c.get("name", ""))), escape(str(c.get("detail", ""))), mark(c.get("ok"))]
            for c in checks]  # fmt: skip
    return table("audit", ["Check", "Detail", "Result"], rows, set(), raw=True)


def phases_section(result: dict[str, Any]) -> str:
    if "phases" not in result:
        return missing("Phases", "phases")
    rows, classes = [], []
    for phase in (_dict(p) for p in _list(result.get("phases"))):
        requests, failures = _dict(phase.get("requests")), _dict(phase.get("failures"))
        latency = _dict(phase.get("latency_ms"))
        kinds = sorted(set(requests) | set(failures) | set(latency)) or ["—"]
        span = f"{seconds(phase.get('start_s'))} to {seconds(phase.get('end_s'))}"
        for i, kind in enumerate(kinds):
            p = _dict(latency.get(kind))
            rows.append([str(phase.get("name", "")) if i == 0 else "", span if i == 0 else "",
                         kind, count(requests.get(kind, 0)), count(failures.get(kind, 0)),
                         ms(p.get("p50")), ms(p.get("p95")), ms(p.get("p99"))])  # fmt: skip
            classes.append("phase-start" if i == 0 else "")
    return table("phases", ["Phase", "Time", "Kind", "Requests", "Failures", "p50", "p95", "p99"],
                 rows, {3, 4, 5, 6, 7}, row_class=classes)  # fmt: skip


def totals_section(result: dict[str, Any]) -> str:
    by_type = sorted((k, _dict(v)) for k, v in _dict(result.get("by_type")).items())
    rows = [[name, count(r.get("count")), count(r.get("failures")), ms(r.get("p50")),
             ms(r.get("p95")), ms(r.get("p99"))] for name, r in by_type]  # fmt: skip
    return table("by-type", ["Kind", "Count", "Failures", "p50", "p95", "p99"], rows,
                 {1, 2, 3, 4, 5})  # fmt: skip


def answers_section(result: dict[str, Any]) -> str:
    statuses = [[category, status, count(n)]
                for category, counts in sorted(_dict(result.get("statuses")).items())
                for status, n in sorted(_dict(counts).items())]  # fmt: skip
    errors = [[name, code, count(n)] for name, codes in sorted(_dict(result.get("errors")).items())
              for code, n in sorted(_dict(codes).items())]  # fmt: skip
    parts = ["<h3>Answers</h3>", table("statuses", ["Category", "Status", "Count"], statuses, {2}),
             "<h3>Failures by code</h3>",
             table("errors", ["Kind", "Code", "Count"], errors, {2})]  # fmt: skip
    parts.append("<h3>Close codes</h3>")
    if "close_codes" in result:
        codes = [[str(code), count(n)] for code, n in sorted(_dict(result["close_codes"]).items())]
        parts.append(table("close-codes", ["Close code", "Connections"], codes, {1}))
    else:
        parts.append(missing("Close codes", "close_codes"))
    return "".join(parts)


def events_section(events: list[Event], source: str) -> str:
    if not events:
        return ('<p class="missing" data-missing="events">No events in this run\'s result.</p>'
                if source == "events" else missing("The show's events", "events"))  # fmt: skip
    note = ("" if source == "events" else
            '<p class="missing" data-missing="events">No <code>events</code> in this result: '
            "these are the host steps it played (<code>show</code>).</p>")  # fmt: skip
    items = "".join(f'<li data-event="{e.number}"><span class="badge">{e.number}</span>'
                    f'<span class="at">{escape(seconds(e.t))}</span>'
                    f"<span>{escape(e.label)}</span></li>" for e in events)  # fmt: skip
    return f'{note}<ol class="events" id="events">{items}</ol>'


def files_section(result: dict[str, Any]) -> str:
    links = []
    for key, label in (("show_report_html", "The show's post-live report"),
                       ("report_html", "The generator's own report")):  # fmt: skip
        value = result.get(key)
        if isinstance(value, str) and value:
            href = value
            if Path(value).is_absolute():
                href = Path(value).as_uri()
            links.append(f'<li><a href="{escape(href)}">{escape(label)}</a> '
                         f"<code>{escape(value)}</code></li>")  # fmt: skip
    return f"<ul>{''.join(links)}</ul>" if links else ""


def render(result: dict[str, Any]) -> str:
    """The run's whole report page."""
    result = _dict(result)
    absent = [key for key in NEW_KEYS if key not in result]
    events, source = events_of(result)
    phases = phases_of(result)
    scenario, room = str(result.get("scenario", "run")), str(result.get("room", ""))
    title = f"Load test: {scenario}" + (f" in {room}" if room else "")
    notice = ""
    if absent:
        names = ", ".join(f"<code>{escape(k)}</code>" for k in absent)
        notice = (f'<p class="notice" id="missing-keys">This run\'s result has no {names} '
                  "(recorded by an older livecart, or not measured): the sections that need "
                  "them say so.</p>")  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<header><h1>{escape(title)}</h1></header>{verdict_section(result)}{notice}"
        f"{cards(result)}"
        f"<h2>Target</h2>{target_section(result)}"
        f"<h2>SLOs</h2>{slos_section(result)}"
        f"<h2>Audit</h2>{audit_section(result)}"
        f"<h2>Over time</h2>{charts(result, events, phases)}"
        f"<h2>The show's events</h2>{events_section(events, source)}"
        f"<h2>Phases</h2>{phases_section(result)}"
        f"<h2>Totals by kind</h2>{totals_section(result)}"
        f"{answers_section(result)}"
        f"<h2>Files</h2>{files_section(result)}"
        "<footer>Generated by livecart loadtest. Latencies are nearest-rank percentiles; "
        "push latency is receipt time minus the server's timestamp.</footer>"
        "</main></body></html>\n"
    )


def save(out: Path, result: dict[str, Any]) -> Path:
    """Write the page as FILE_NAME in `out`; its path."""
    path = out / FILE_NAME
    path.write_text(render(result), encoding="utf-8")
    return path
