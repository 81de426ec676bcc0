// The live dashboard (GET .../dashboard, host and moderator): audience, chat pace, the
// funnel from viewers to paid orders, GMV and rates, and per-product numbers, polled every
// POLL_MS while signed in (one aggregated request, whether or not the view is open, since
// other panels use some of its figures). The two charts (online viewers, net GMV) are drawn
// from the engine's per-minute rows (`minutes`, the whole show so far), with the show's
// markers (pins, flash sales, coupon drops, giveaways, auctions) on the online chart.
// The post-live report and its exports are fetched with the console's token and handed to
// the browser as Blob URLs (a plain link would carry no token). Inline SVG; no libraries.

import { act, api, apiBlob } from "./api.js";
import { $, duration, el, money, poller } from "./util.js";
import { fullView as ordersView } from "./orders.js";
import { clockTime, count, label, t } from "./i18n.js";

const POLL_MS = 3000;
const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 480, height: 120, pad: 4 };
const FUNNEL = ["viewers", "product_clicks", "grab_attempts", "reservations", "orders", "paid"];
const EXPORTS = [
  ["summary", "/report/summary.json", "summary.json"],
  ["metrics", "/report/metrics.csv", "metrics.csv"],
  ["orders", "/report/orders.csv", "orders.csv"],
];
const REVOKE_AFTER_MS = 60_000; // the tab or the download has the blob by then

const polling = poller(() => load(), POLL_MS);
let room = null;
let failedOnce = false;
let last = null;

export function init() {
  $("#dashboard-toggle").addEventListener("click", () => show(!isOpen()));
  $("#dash-report").addEventListener("click", (ev) => openReport(ev.currentTarget));
  for (const [name, path, file] of EXPORTS) {
    const button = $(`#dash-export-${name}`);
    button.addEventListener("click", () => saveExport(button, path, file));
  }
}

export function reset(welcome) {
  if (welcome.room.id !== room) {
    room = welcome.room.id;
    last = null;
  }
  polling.start();
}

export function refresh() {
  load();
}

export function entry() {}
export function tick() {}
export function second() {}

/** Stop polling (signed out) and close the view. */
export function stop() {
  polling.stop();
  show(false);
}

function isOpen() {
  return document.body.dataset.view === "dashboard";
}

function show(open) {
  if (open) ordersView(false); // one view at a time: the dashboard's button leads back
  if (open) document.body.dataset.view = "dashboard";
  else delete document.body.dataset.view;
  const toggle = $("#dashboard-toggle");
  toggle.setAttribute("aria-pressed", String(open));
  toggle.textContent = open ? t("dashboard.back") : t("dashboard.toggle");
  if (open && last) render(last);
}

async function load() {
  const work = () => api("GET", "/dashboard");
  const data = failedOnce
    ? await work().catch(() => undefined) // reported once already; keep polling quietly
    : await act(t("dashboard.load"), work, null, { quiet: true });
  failedOnce = data === undefined;
  if (!data || !polling.running || data.room !== room) return; // signed out meanwhile
  last = data;
  render(data);
  // Other panels use some of these figures (the coupon cards' used counts).
  document.dispatchEvent(new CustomEvent("livecart:dashboard", { detail: data }));
}

// ---- numbers ------------------------------------------------------------------------------

const int = (n) => count(Number(n || 0));
const percent = (rate) => `${(Number(rate || 0) * 100).toFixed(2)}%`;
/** A rate as a percentage, or "—" when its denominator is 0 (docs/metrics.md: the engine
 * answers 0 then, which would read as "nobody converted"). */
const rateOf = (rate, denominator) => (Number(denominator || 0) > 0 ? percent(rate) : "—");

function moneyText(perCurrency) {
  const parts = Object.entries(perCurrency || {}).map(([c, minor]) => money(minor, c));
  return parts.length ? parts.join(" · ") : "—";
}

function render(data) {
  const figures = {
    online: int(data.online),
    peak: int(data.peak),
    unique: int(data.unique),
    views: int(data.views),
    likes: int(data.likes),
    shares: int(data.shares),
    comments: int(data.comments_last_minute),
    clicks: int(data.clicks),
    attempts: int(data.grab_attempts),
    reservations: int(data.reservations),
    orders: int(data.orders),
    paid: int(data.paid_orders),
    buyers: int(data.paid_buyers),
    conversion: rateOf(data.conversion, data.unique),
    "click-order": rateOf(data.click_to_order_rate, data.clicks),
    redemption: rateOf(data.coupon_redemption_rate, data.coupon_claims),
    gmv: moneyText(data.gmv),
    aov: moneyText(data.average_order_value),
    "gmv-views": moneyText(data.gmv_per_thousand_views),
  };
  for (const [name, text] of Object.entries(figures)) $(`#dash-${name}`).textContent = text;
  const time = clockTime(data.server_time);
  $("#dash-updated").textContent = t("dashboard.updated", { time, seconds: POLL_MS / 1000 });
  renderFunnel(data.funnel || {});
  renderProducts(data.products);
  if (!isOpen()) return; // charts are drawn when seen
  renderCharts(data);
}

/** Horizontal bars, each step's count and its share of the viewers. */
function renderFunnel(funnel) {
  const viewers = Number(funnel.viewers || 0);
  const rows = FUNNEL.map((key) => {
    const n = Number(funnel[key] || 0);
    const share = viewers > 0 ? n / viewers : 0;
    const fill = el("span", { class: "fill" });
    fill.style.width = `${Math.min(100, share * 100)}%`;
    return el("li", { dataset: { step: key } },
      el("span", { class: "label" }, t(`dash.funnel.${key}`)),
      el("span", { class: "bar" }, fill),
      el("span", { class: "count" }, int(n)),
      el("span", { class: "share" }, viewers > 0 ? `${(share * 100).toFixed(1)}%` : "—"));
  });
  $("#dash-funnel").replaceChildren(...rows);
}

function renderProducts(products) {
  const rows = products.map((p) =>
    el("tr", { dataset: { id: p.id } },
      el("td", {}, p.id),
      el("td", { class: "title" }, p.title),
      el("td", { class: "num views" }, int(p.views)),
      el("td", { class: "num clicks" }, int(p.clicks)),
      el("td", { class: "num attempts" }, int(p.grab_attempts)),
      el("td", { class: "num reservations" }, int(p.reservations)),
      el("td", { class: "num sold" }, int(p.sold)),
      el("td", { class: "num through" }, throughText(p.sell_through_ms))),
  );
  $("#dash-products").replaceChildren(...rows);
  $("#dash-products-empty").hidden = products.length > 0;
}

/** Sell-through time: "4.2 s" under a minute, else "m:ss"; "—" when not sold out. */
function throughText(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 60_000 ? t("dash.seconds", { s: (ms / 1000).toFixed(1) }) : duration(ms);
}

/** The currency with the most net GMV, ties alphabetical (the engine's minutes use that one). */
function mainCurrency(gmv) {
  const ranked = Object.entries(gmv || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return ranked.length ? ranked[0][0] : null;
}

// ---- charts -------------------------------------------------------------------------------

/** Online viewers (each minute's average) and net GMV (cumulative paid minus refunded, per
 * minute) from `minutes`; with no minutes yet, one point of the live figures. */
function renderCharts(data) {
  const minutes = Array.isArray(data.minutes) ? data.minutes : [];
  const currency = mainCurrency(data.gmv);
  const now = data.server_time;
  $("#dash-gmv-title").textContent = currency ? t("dash.gmvChartIn", { currency }) : t("dash.gmvChart");
  let online;
  let gmv;
  if (minutes.length) {
    online = minutes.map((m) => [m.minute, Number(m.online_avg || 0)]);
    let total = 0;
    gmv = minutes.map((m) => {
      total += Number(m.gmv || 0) - Number(m.refunded || 0);
      return [m.minute, total];
    });
  } else {
    online = [[now, Number(data.online || 0)]];
    gmv = [[now, currency ? Number(data.gmv[currency]) : 0]];
  }
  const fromMinutes = minutes.length > 0;
  const end = Math.max(now, online[online.length - 1][0]);
  const markers = fromMinutes && Array.isArray(data.markers) ? data.markers : [];
  // Viewers are whole people: the per-minute average is drawn as is, its maximum read rounded.
  const viewers = (v) => int(Math.round(v));
  chart($("#dash-chart-online"), online, { end, fromMinutes, markers, format: viewers,
                                           now: int(data.online) }); // prettier-ignore
  const moneyOf = (v) => (currency ? money(v, currency) : "0");
  chart($("#dash-chart-gmv"), gmv, { end, fromMinutes, format: moneyOf,
                                     now: currency ? money(data.gmv[currency], currency) : "—" }); // prettier-ignore
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

/** A step line of `points` ([t, value], oldest first; each value holds until the next point,
 * the last one until `end`) in `box`, with `markers` as vertical lines, labelled with `now`
 * and the maximum (formatted by `format`). */
function chart(box, points, { end, fromMinutes, markers = [], format, now }) {
  const { width, height, pad } = CHART;
  const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
                            role: "img", class: "chart-svg" }); // prettier-ignore
  const top = Math.max(0, ...points.map(([, v]) => v));
  const max = Math.max(1, top);
  const t0 = points[0][0];
  const span = end - t0;
  const x = (t) => (span > 0 ? pad + ((Math.min(end, Math.max(t0, t)) - t0) / span) * (width - 2 * pad) : pad);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  node.append(svg("line", { x1: 0, x2: width, y1: y(0), y2: y(0), class: "axis" }));
  let d = `M ${x(t0)} ${y(points[0][1])}`;
  for (const [t, v] of points.slice(1)) d += ` H ${x(t)} V ${y(v)}`;
  d += ` H ${span > 0 ? x(end) : width - pad}`;
  node.append(svg("path", { d, class: "line", "vector-effect": "non-scaling-stroke" }));
  for (const marker of markers) {
    const at = x(marker.t);
    const kind = label("dash.marker", marker.kind);
    const when = clockTime(marker.t);
    const title = svg("title", {});
    title.textContent = `${when} · ${kind}${marker.label ? `: ${marker.label}` : ""}`;
    const line = { x1: at, x2: at, y1: 0, y2: height, "vector-effect": "non-scaling-stroke" };
    node.append(svg("g", { class: "marker", "data-kind": marker.kind }, title,
                    svg("line", { ...line, class: "marker-line" }),
                    svg("line", { ...line, class: "marker-hit" }))); // prettier-ignore
  }
  box.querySelector(".chart-plot").replaceChildren(node);
  box.querySelector(".chart-now").textContent = now;
  box.querySelector(".chart-range").textContent = fromMinutes
    ? t("dash.range", { max: format(top), span: duration(span) })
    : t("dash.noMinutes");
  box.dataset.points = String(fromMinutes ? points.length : 0);
  box.dataset.last = String(points[points.length - 1][1]);
  box.dataset.markers = String(markers.length);
}

// ---- post-live report -----------------------------------------------------------------------

function blobUrl(blob) {
  const url = URL.createObjectURL(blob);
  setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER_MS);
  return url;
}

/** Open the report in a new tab. The tab is opened now, while the click still counts as the
 * user's (popup blockers), and pointed at the report once it has arrived. */
function openReport(button) {
  const tab = window.open("", "_blank");
  if (tab) {
    tab.opener = null;
    tab.document.title = t("dashboard.report");
    tab.document.body.textContent = t("dashboard.reportLoading");
  }
  act(t("dashboard.openReport"), async () => {
    try {
      const url = blobUrl(await apiBlob("/report", "text/html;charset=utf-8"));
      if (!tab) throw new Error(t("dashboard.popupBlocked"));
      tab.location.replace(url);
      return url;
    } catch (error) {
      if (tab) tab.close();
      throw error;
    }
  }, button);
}

/** Save one of the report's exports under `{room}-{file}`. */
function saveExport(button, path, file) {
  act(t("download", { file }), async () => {
    const url = blobUrl(await apiBlob(path, "application/octet-stream"));
    const link = el("a", { href: url, download: `${room}-${file}`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    return url;
  }, button);
}
