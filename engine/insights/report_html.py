"""The post-live report of one show as a self-contained HTML5 document (sans-I/O).

`render(summary, minutes, markers, seconds)` takes the data of engine/insights/show_metrics.py
and returns one string: inline CSS, charts drawn here as inline SVG, no JavaScript. Its only
requests are the products' thumbnails (their first image, lazy-loaded, in a fixed box that
stays as a placeholder if one does not load); its Content-Security-Policy allows images and
nothing else to be fetched. Every host-provided string goes through `html.escape`. A short
show (`seconds`, a SecondView) is charted per second where per-second sources exist. A rate
with nothing to divide by shows "—", not "0.00%" (as the console's live dashboard does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from engine.core.media_urls import is_media_url
from engine.insights.show_metrics import SecondView

ZERO_DECIMAL = frozenset({"JPY", "KRW"})
SYMBOLS = {"USD": "$"}
KINDS = {"pin": "#2563eb", "flash_sale": "#dc2626", "coupon_drop": "#16a34a",
         "giveaway": "#9333ea", "auction": "#ea580c"}  # fmt: skip
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 960, 300, 72, 20, 36, 40
MINUTE_MS = 60_000
SECOND_MS = 1000
MIN_SECONDS = 5  # the narrowest per-second chart
THUMB_PX = 40  # a product's thumbnail in the products table
# Nothing runs, nothing is fetched but images: the page's own (a same-origin path, or the
# engine's origin when it is served) and products' http(s) image URLs.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: http:; "
    "base-uri 'none'; form-action 'none'"
)
# x-axis steps (ms): at most 8 ticks, on whole multiples of the step.
TICK_STEPS = [s * SECOND_MS for s in (1, 2, 5, 10, 15, 30)] + [
    m * MINUTE_MS for m in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 1440)
]
CSS = """
:root{--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--card:#f9fafb;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:var(--ink);background:#fff}
main{max-width:1100px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:1.8rem;margin:0 0 4px}h2{font-size:1.2rem;margin:32px 0 12px}
.meta{color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 20px;margin:0;padding:0;
list-style:none}
.state{display:inline-block;padding:1px 10px;border-radius:999px;background:#dbeafe;color:#1e3a8a}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .label{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:1.35rem;font-weight:600;font-variant-numeric:tabular-nums}
figure{margin:0 0 24px;border:1px solid var(--line);border-radius:10px;padding:12px}
figure svg{width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:var(--muted);margin-top:4px}
.empty{padding:48px;text-align:center;color:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:.85rem;color:var(--muted);margin:8px 0 0}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;
vertical-align:-1px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left}
th{font-size:.8rem;color:var(--muted);text-transform:uppercase}td.n,th.n{text-align:right}
.tables{overflow-x:auto}
.thumb{display:block;width:40px;height:40px;border-radius:6px;overflow:hidden;
background:var(--card);border:1px solid var(--line)}
.thumb img{display:block;width:100%;height:100%;object-fit:cover}
footer{margin-top:40px;color:var(--muted);font-size:.85rem}
@media print{main{max-width:none;padding:0}figure,.card,tr{break-inside:avoid}
.state{border:1px solid #1e3a8a}}
"""


# ---- formatting -------------------------------------------------------------------------------


def money(amount: int, currency: str | None) -> str:
    """Minor units with the currency: "$1,234.50", "1,234.50 EUR", "1,234 JPY"."""
    code = (currency or "").upper()
    places = 0 if code in ZERO_DECIMAL else 2
    value = f"{abs(amount) / 10**places:,.{places}f}"
    sign = "-" if amount < 0 else ""
    if code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{value}"
    return f"{sign}{value} {code}" if code else f"{sign}{value}"


def count(value: float) -> str:
    return f"{round(value):,}"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def rate(summary: dict[str, Any], key: str, denominator: str) -> str:
    """A rate of the summary as a percentage, or "—" when its denominator is 0 (the summary
    says 0 then, which would read as "nobody converted")."""
    return percent(_float(summary, key)) if _int(summary, denominator) > 0 else "—"


def per(summary: dict[str, Any], key: str, denominator: str, currency: str | None) -> str:
    """Money per something (average order, GMV per 1,000 views), or "—" with none of it."""
    return money(_int(summary, key), currency) if _int(summary, denominator) > 0 else "—"


def compact(value: float) -> str:
    """An axis label: 950, 12.5k, 3M, 1.2B."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".removesuffix(".0") + suffix
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def duration(seconds: float) -> str:
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    return f"{hours}h {mins:02d}m {secs:02d}s" if hours else f"{mins}m {secs:02d}s"


def when(ms: int | None, pattern: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(pattern)


def _int(row: dict[str, Any], key: str) -> int:
    return int(row.get(key) or 0)


def _float(row: dict[str, Any], key: str) -> float:
    return float(row.get(key) or 0.0)


# ---- header and cards -------------------------------------------------------------------------


def header(summary: dict[str, Any]) -> str:
    items = [f"Room <b>{escape(str(summary.get('room', '')))}</b>",
             f'<span class="state">{escape(str(summary.get("state", "")))}</span>',
             f"Started {when(summary.get('started_at'))}", f"Ended {when(summary.get('ended_at'))}",
             f"Duration {duration(_int(summary, 'duration_s'))}",
             f"Generated {when(summary.get('generated_at'))}"]  # fmt: skip
    title = escape(str(summary.get("title") or "Untitled show"))
    meta = "".join(f"<li>{item}</li>" for item in items)
    return f'<header><h1>{title}</h1><ul class="meta">{meta}</ul></header>'


def figures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    cur = summary.get("currency")
    new, returning = _int(summary, "new_viewers"), _int(summary, "returning_viewers")
    return [
        ("Unique viewers", count(_int(summary, "unique_viewers"))),
        ("Peak concurrent", count(_int(summary, "peak_concurrent"))),
        ("Average watch time", duration(_float(summary, "average_watch_s"))),
        ("Comments", count(_int(summary, "comments"))),
        ("Likes", count(_int(summary, "likes"))),
        ("Orders", count(_int(summary, "orders"))),
        ("Paid orders", count(_int(summary, "paid_orders"))),
        ("GMV", money(_int(summary, "gmv"), cur)),
        ("Conversion", rate(summary, "conversion", "unique_viewers")),
        ("Click → order", rate(summary, "click_to_order_rate", "product_clicks")),
        ("Average order value", per(summary, "average_order_value", "paid_orders", cur)),
        ("GMV per 1,000 views", per(summary, "gmv_per_thousand_views", "views", cur)),
        ("Coupon redemption", rate(summary, "coupon_redemption_rate", "coupon_claims")),
        ("Referral share of GMV", rate(summary, "referral_gmv_share", "gmv")),
        ("New / returning viewers", f"{count(new)} / {count(returning)}"),
        *buyer_figures(summary),
    ]


def buyer_figures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """New and returning buyers and the repeat-buyer rate: "—" when the engine keeps no
    books (the summary's fields are null) and the rate "—" with no buyer either."""
    if summary.get("returning_buyers") is None:
        return [("New / returning buyers", "—"), ("Repeat-buyer rate", "—")]
    split = f"{count(_int(summary, 'new_buyers'))} / {count(_int(summary, 'returning_buyers'))}"
    return [("New / returning buyers", split),
            ("Repeat-buyer rate", rate(summary, "repeat_buyer_rate", "paid_buyers"))]  # fmt: skip


def cards(summary: dict[str, Any]) -> str:
    body = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div></div>'
        for label, value in figures(summary)
    )
    return f'<section class="cards" aria-label="Headline figures">{body}</section>'


# ---- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]
    colour: str
    width: float = 2.0
    # Where each value is drawn (ms); None: mid-minute, for per-minute figures.
    times: list[float] | None = None


@dataclass(frozen=True)
class Plot:
    """Maps time (ms) and values onto the drawing area of a WIDTH x HEIGHT viewBox."""

    start: int
    end: int
    low: float
    high: float

    def x(self, t: float) -> float:
        span = max(1, self.end - self.start)
        clamped = min(max(t, self.start), self.end)
        return LEFT + (clamped - self.start) / span * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        span = (self.high - self.low) or 1.0
        return HEIGHT - BOTTOM - (v - self.low) / span * (HEIGHT - TOP - BOTTOM)


def nice_range(low: float, high: float, ticks: int = 4) -> tuple[float, float, float]:
    """(low', high', step): a range covering [low, high] in round steps; never empty."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0:
        high = float(ticks)
    raw = (high - low) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def y_axis(plot: Plot, step: float, label: Callable[[float], str]) -> str:
    parts, value = [], plot.low
    while value <= plot.high + step / 2:
        y = plot.y(value)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e5e7eb"/><text x="{LEFT - 8}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(label(value))}</text>')  # fmt: skip
        value += step
    return "".join(parts)


def x_axis(plot: Plot) -> str:
    span = max(SECOND_MS, plot.end - plot.start)
    every = next((s for s in TICK_STEPS if span / s <= 8), TICK_STEPS[-1])
    pattern = "%H:%M:%S" if every < MINUTE_MS else "%H:%M"
    parts, y = [], HEIGHT - BOTTOM
    for t in range(-(-plot.start // every) * every, plot.end + 1, every):
        x = plot.x(t)
        anchor = "end" if x > WIDTH - RIGHT - 30 else "middle"  # the last label stays inside
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 5}" stroke="#9ca3af"/>'
                     f'<text x="{x:.1f}" y="{y + 20}" text-anchor="{anchor}">'
                     f"{when(t, pattern)}</text>")  # fmt: skip
    axis = f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#9ca3af"/>'
    return axis + "".join(parts)


def dashed(series: Series) -> bool:
    return series.name.endswith("(minute average)")


def polyline(plot: Plot, times: list[int], series: Series) -> str:
    at = series.times if series.times is not None else [t + MINUTE_MS / 2 for t in times]
    points = [(plot.x(t), plot.y(v)) for t, v in zip(at, series.values, strict=True)]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{series.colour}"/>'
                   for x, y in points) if len(points) <= 2 else ""  # fmt: skip
    dash = ' stroke-dasharray="6 4"' if dashed(series) else ""
    return (f'<polyline fill="none" stroke="{series.colour}" stroke-width="{series.width}" '
            f'stroke-linejoin="round" data-series="{escape(series.name)}" '
            f'data-sum="{sum(series.values):g}"{dash} points="{coords}"/>{dots}')  # fmt: skip


def marker_lines(plot: Plot, markers: list[dict[str, Any]]) -> str:
    parts = []
    for marker in markers:
        kind = str(marker.get("kind", ""))
        colour = KINDS.get(kind, "#6b7280")
        x, label = plot.x(_int(marker, "t")), str(marker.get("label", ""))
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<g class="marker" data-kind="{escape(kind)}"><title>'
                     f"{escape(kind)}: {escape(label)} at {when(_int(marker, 't'))}</title>"
                     f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                     f'stroke="{colour}" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" '
                     f'y="{TOP + 4}" transform="rotate(90 {x + 4:.1f} {TOP + 4})" '
                     f'fill="{colour}">{escape(short)}</text></g>')  # fmt: skip
    return "".join(parts)


def legend(entries: Iterable[tuple[str, str]]) -> str:
    items = "".join(f'<span data-legend="{escape(name)}"><i class="swatch" '
                    f'style="background:{colour}"></i>{escape(name)}</span>'
                    for name, colour in entries)  # fmt: skip
    return f'<div class="legend">{items}</div>'


def svg(key: str, title: str, desc: str, body: str) -> str:
    return (f'<svg id="chart-{key}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-labelledby="{key}-t {key}-d" font-size="12" fill="#374151">'
            f'<title id="{key}-t">{escape(title)}</title><desc id="{key}-d">{escape(desc)}</desc>'
            f'<text x="{LEFT}" y="20" font-size="15" font-weight="600">{escape(title)}</text>'
            f"{body}</svg>")  # fmt: skip


def time_chart(key: str, title: str, minutes: list[dict[str, Any]], series: list[Series],
               *, label: Callable[[float], str] = compact,
               markers: list[dict[str, Any]] | None = None,
               span: tuple[int, int] | None = None, caption: str = "") -> str:  # fmt: skip
    """A figure with one line per series over the show's minutes (or over `span`, ms, when
    every series has its own times), or "No data yet"."""
    values = [v for s in series for v in s.values]
    if not values or (not minutes and span is None):
        empty = '<p class="empty">No data yet</p>'
        return f'<figure id="{key}"><h3>{escape(title)}</h3>{empty}</figure>'
    times = [_int(row, "minute") for row in minutes]
    low, high, step = nice_range(min(values), max(values))
    plot = Plot(*(span or (times[0], times[-1] + MINUTE_MS)), low, high)
    lines = "".join(polyline(plot, times, s) for s in series)
    body = y_axis(plot, step, label) + x_axis(plot) + lines + marker_lines(plot, markers or [])
    desc = "; ".join(f"{s.name}: max {label(max(s.values))}" for s in series if s.values)
    keys = [(s.name, s.colour) for s in series]
    if markers is not None:
        keys += [(kind.replace("_", " "), colour) for kind, colour in KINDS.items()]
    note = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure id="{key}">{svg(key, title, desc, body)}{legend(keys)}{note}</figure>'


def column(minutes: list[dict[str, Any]], key: str) -> list[float]:
    return [_float(row, key) for row in minutes]


def cumulative_gmv(minutes: list[dict[str, Any]]) -> list[float]:
    total, out = 0, []
    for row in minutes:
        total += _int(row, "gmv") - _int(row, "refunded")
        out.append(float(total))
    return out


def cumulative_gmv_line(
    minutes: list[dict[str, Any]], first_paid_at: int | None
) -> tuple[list[float], list[float]]:
    """(times, values) of the running net GMV: 0 at the first minute's start, each minute's
    total at its end, and flat at 0 until the first paid order, so the line never rises
    before money came in (a point mid-minute would start the slope up to a minute early)."""
    if not minutes:
        return [], []
    times, values, rising = [float(_int(minutes[0], "minute"))], [0.0], False
    for row, total in zip(minutes, cumulative_gmv(minutes), strict=True):
        start = _int(row, "minute")
        if not rising and total:
            rising = True
            if first_paid_at is not None and start < first_paid_at < start + MINUTE_MS:
                times.append(float(first_paid_at))
                values.append(0.0)
        times.append(float(start + MINUTE_MS))
        values.append(total)
    return times, values


def funnel_chart(summary: dict[str, Any]) -> str:
    funnel: dict[str, Any] = summary.get("funnel") or {}
    steps = ["viewers", "product_clicks", "grab_attempts", "reservations", "orders", "paid"]
    counts = [_int(funnel, step) for step in steps]
    viewers, widest, row_h = counts[0], max(*counts, 1), 36
    parts, bar_w = [], WIDTH - 200 - 180
    for i, (step, n) in enumerate(zip(steps, counts, strict=True)):
        y, w = TOP + i * row_h, n / widest * bar_w
        share = percent(n / viewers) if viewers else "—"
        parts.append(f'<text x="190" y="{y + 20}" text-anchor="end">'
                     f'{step.replace("_", " ").capitalize()}</text><rect x="200" y="{y + 4}" '
                     f'width="{w:.1f}" height="{row_h - 10}" rx="4" fill="#2563eb" '
                     f'opacity="{1 - i * 0.12:.2f}"/><text x="{200 + w + 8:.1f}" y="{y + 20}">'
                     f"{count(n)} · {share}</text>")  # fmt: skip
    desc = ", ".join(f"{s}: {count(n)}" for s, n in zip(steps, counts, strict=True))
    return f'<figure id="funnel">{svg("funnel", "Funnel", desc, "".join(parts))}</figure>'


def steps(minutes: list[dict[str, Any]], values: list[float]) -> tuple[list[float], list[float]]:
    """A per-minute figure as a step line (flat across each minute) for a per-second axis."""
    times: list[float] = []
    levels: list[float] = []
    for row, value in zip(minutes, values, strict=True):
        start = _int(row, "minute")
        times += [float(start), float(start + MINUTE_MS)]
        levels += [value, value]
    return times, levels


def second_charts(summary: dict[str, Any], minutes: list[dict[str, Any]],
                  markers: list[dict[str, Any]], view: SecondView) -> str:  # fmt: skip
    """A short show: comments, reservations, orders, payments and GMV per second; online
    viewers and likes exist per minute only and are drawn flat across their minutes."""
    cur = summary.get("currency")
    places = 0 if (cur or "").upper() in ZERO_DECIMAL else 2
    # Whole seconds, at least MIN_SECONDS of them: a show of a moment still gets an axis.
    first = view.start // SECOND_MS * SECOND_MS
    span = (first, max(-(-view.end // SECOND_MS) * SECOND_MS, first + MIN_SECONDS * SECOND_MS))
    rows = view.rows
    mid = [float(_int(r, "second") + SECOND_MS / 2) for r in rows]

    def per_second(name: str, column: str, colour: str) -> Series:
        return Series(name, [float(_int(r, column)) for r in rows], colour, times=mid)

    def covered(row: dict[str, Any]) -> float:
        start = _int(row, "minute")
        inside = min(start + MINUTE_MS, view.end) - max(start, view.start)
        return max(1.0, inside / SECOND_MS)

    online: list[Series] = []
    for name, key, colour, width in (("Online (average)", "online_avg", "#2563eb", 2.5),
                                     ("Online (max)", "online_max", "#93c5fd", 1.5)):  # fmt: skip
        at, level = steps(minutes, column(minutes, key))
        online.append(Series(name, level, colour, width, times=at))
    likes_at, likes = steps(minutes, [_float(r, "likes") / covered(r) for r in minutes])
    total, running, at = 0.0, [0.0], [float(first)]
    for row in rows:
        total += _int(row, "gmv")
        running.append(total)
        at.append(float(_int(row, "second") + SECOND_MS))
    gmv = [Series(f"GMV ({cur or 'net'})", running, "#16a34a", 2.5, times=at)]
    activity = [per_second("Comments / s", "comments", "#0d9488"),
                Series("Likes / s (minute average)", likes, "#db2777", times=likes_at)]  # fmt: skip
    commerce = [per_second("Reservations / s", "reservations", "#2563eb"),
                per_second("Orders / s", "orders", "#ea580c"),
                per_second("Paid orders / s", "paid_orders", "#16a34a")]  # fmt: skip
    gone = ""
    if view.comments_from is not None:
        gone = (
            f" The room log keeps only its latest entries: comments before "
            f"{when(view.comments_from, '%H:%M:%S')} are not in it, so not charted."
        )
    return "".join([
        time_chart("online", "Online viewers", minutes, online, markers=markers, span=span,
                   caption="Per minute: the engine samples online viewers per minute."),
        time_chart("gmv", "Cumulative GMV, per second", minutes, gmv, span=span,
                   label=lambda v: compact(v / 10**places)),
        time_chart("engagement", "Comments and likes per second", minutes, activity, span=span,
                   caption="Comments per second from the room log; likes are counted per "
                   "minute, drawn as that minute's average per second." + gone),
        time_chart("commerce", "Reservations, orders and payments per second", minutes,
                   commerce, span=span, markers=markers),
        funnel_chart(summary),
    ])  # fmt: skip


def charts(summary: dict[str, Any], minutes: list[dict[str, Any]],
           markers: list[dict[str, Any]]) -> str:  # fmt: skip
    cur = summary.get("currency")
    places = 0 if (cur or "").upper() in ZERO_DECIMAL else 2
    online = [Series("Online (average)", column(minutes, "online_avg"), "#2563eb", 2.5),
              Series("Online (max)", column(minutes, "online_max"), "#93c5fd", 1.5)]  # fmt: skip
    rates = [Series("Comments / min", column(minutes, "comments"), "#0d9488"),
             Series("Likes / min", column(minutes, "likes"), "#db2777")]  # fmt: skip
    at, running = cumulative_gmv_line(minutes, summary.get("first_paid_at"))
    gmv = [Series(f"GMV ({cur or 'net'})", running, "#16a34a", 2.5, times=at)]
    return "".join([
        time_chart("online", "Online viewers", minutes, online, markers=markers),
        time_chart("gmv", "Cumulative GMV", minutes, gmv, label=lambda v: compact(v / 10**places)),
        time_chart("engagement", "Comments and likes per minute", minutes, rates),
        funnel_chart(summary),
    ])  # fmt: skip


# ---- tables -----------------------------------------------------------------------------------


def table(key: str, heads: list[str], rows: list[list[str]], numeric: set[int],
          markup: frozenset[int] = frozenset()) -> str:  # fmt: skip
    """A table; cells are text (escaped here) except the columns in `markup`, built here."""

    def cell(tag: str, i: int, text: str) -> str:
        return f'<{tag} class="n">{text}</{tag}>' if i in numeric else f"<{tag}>{text}</{tag}>"

    def value(i: int, text: str) -> str:
        return text if i in markup else escape(text)

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(heads))
    body = "".join("<tr>" + "".join(cell("td", i, value(i, v)) for i, v in enumerate(row))
                   + "</tr>" for row in rows) or \
        f'<tr><td colspan="{len(heads)}">None</td></tr>'  # fmt: skip
    return f'<div class="tables"><table id="{key}"><thead><tr>{head}</tr></thead>' \
           f"<tbody>{body}</tbody></table></div>"  # fmt: skip


def flash_sales_table(summary: dict[str, Any]) -> str:
    rows = [[f"{sale.get('sku') or ''} — {sale.get('title') or ''}", count(_int(sale, "allotment")),
             count(_int(sale, "sold")), str(sale.get("sell_through") or "—")]
            for sale in summary.get("flash_sales") or []]  # fmt: skip
    return table("flash-sales", ["SKU / title", "Allotment", "Sold", "Sell-through"], rows, {1, 2})


def thumbnail(url: object, origin: str | None) -> str:
    """A product's first image in a fixed box (the box alone, a placeholder, without one or
    if it does not load), lazy-loaded; `alt` is empty, the title is in the next cell. A
    same-origin path is made whole with `origin` when the page is served: the console opens
    it as a `blob:` page, where a bare path does not resolve."""
    if not is_media_url(url):  # checked when the product was saved; a page never trusts it
        return '<span class="thumb"></span>'
    src = f"{origin}{url}" if origin and str(url).startswith("/") else str(url)
    return (f'<span class="thumb"><img src="{escape(src)}" alt="" loading="lazy" '
            f'decoding="async" width="{THUMB_PX}" height="{THUMB_PX}"></span>')  # fmt: skip


def products_table(summary: dict[str, Any], origin: str | None = None) -> str:
    cur, fields = summary.get("currency"), ["impressions", "clicks", "grab_attempts",
                                            "reservations", "orders", "units_sold"]  # fmt: skip
    rows = [[str(p.get("id", "")), thumbnail(p.get("image"), origin), str(p.get("title", ""))]
            + [count(_int(p, f)) for f in fields] + [money(_int(p, "gmv"), cur)]
            for p in summary.get("products") or []]  # fmt: skip
    heads = ["ID", "Image", "Title", "Impressions", "Clicks", "Grab attempts", "Reservations",
             "Orders", "Units sold", "GMV"]  # fmt: skip
    return table("products", heads, rows, set(range(3, 10)), markup=frozenset({1}))


def markers_table(summary: dict[str, Any], markers: list[dict[str, Any]]) -> str:
    start = summary.get("started_at")
    rows = [[when(_int(m, "t")), duration((_int(m, "t") - start) / 1000) if start else "—",
             str(m.get("kind", "")).replace("_", " "), str(m.get("label", ""))]
            for m in markers]  # fmt: skip
    return table("markers", ["Time", "Into the show", "Kind", "Label"], rows, set())


def render(summary: dict[str, Any], minutes: list[dict[str, Any]],
           markers: list[dict[str, Any]], seconds: SecondView | None = None, *,
           origin: str | None = None) -> str:  # fmt: skip
    """The whole report.html for one show; per second where it can be when `seconds`;
    same-origin image paths made whole with `origin` (the engine's, when it serves it)."""
    drawn = (second_charts(summary, minutes, markers, seconds) if seconds is not None
             else charts(summary, minutes, markers))  # fmt: skip
    title = escape(f"{summary.get('title') or 'Untitled show'} — post-live report")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body><main>"
        f"{header(summary)}<h2>Headline figures</h2>{cards(summary)}"
        f"<h2>Charts</h2>{drawn}"
        f"<h2>Flash sales</h2>{flash_sales_table(summary)}"
        f"<h2>Products</h2>{products_table(summary, origin)}"
        f"<h2>Markers</h2>{markers_table(summary, markers)}"
        f"<footer>Generated {when(summary.get('generated_at'))} by livecart.</footer>"
        "</main></body></html>\n"
    )
