// The live dashboard (GET .../dashboard, host and moderator): audience, chat pace, grabs,
// orders, GMV, conversion and per-product numbers, polled every POLL_MS while signed in
// (whether or not the view is open, so the two charts cover the whole time the console has
// been open: online viewers and net GMV). Charts are inline SVG; no libraries.

import { act, api } from "./api.js";
import { $, duration, el, money, poller } from "./util.js";

const POLL_MS = 3000;
const MAX_SAMPLES = 1200; // one hour at 3 s; older samples are thinned, not dropped
const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 480, height: 120, pad: 4 };

const polling = poller(() => load(), POLL_MS);
let room = null;
let samples = []; // {t, online, gmv: {currency: minor}}
let failedOnce = false;
let last = null;

export function init() {
  $("#dashboard-toggle").addEventListener("click", () => show(!isOpen()));
  $("#dashboard-close").addEventListener("click", () => show(false));
}

export function reset(welcome) {
  if (welcome.room.id !== room) {
    room = welcome.room.id;
    samples = [];
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
  if (open) document.body.dataset.view = "dashboard";
  else delete document.body.dataset.view;
  const toggle = $("#dashboard-toggle");
  toggle.setAttribute("aria-pressed", String(open));
  toggle.textContent = open ? "Back to show" : "Dashboard";
  if (open && last) render(last);
}

async function load() {
  const work = () => api("GET", "/dashboard");
  const data = failedOnce
    ? await work().catch(() => undefined) // reported once already; keep polling quietly
    : await act("Load dashboard", work, null, { quiet: true });
  failedOnce = data === undefined;
  if (!data || !polling.running || data.room !== room) return; // signed out meanwhile
  samples.push({ t: data.server_time, online: data.online, gmv: data.gmv });
  if (samples.length > MAX_SAMPLES) samples = samples.filter((_, i) => i % 2 === 0);
  last = data;
  render(data);
  // Other panels use some of these figures (the coupon cards' used counts).
  document.dispatchEvent(new CustomEvent("livecart:dashboard", { detail: data }));
}

// ---- numbers ------------------------------------------------------------------------------

const int = (n) => Number(n || 0).toLocaleString("en");

function moneyText(perCurrency) {
  const parts = Object.entries(perCurrency || {}).map(([c, minor]) => money(minor, c));
  return parts.length ? parts.join(" · ") : "—";
}

function render(data) {
  const figures = {
    online: int(data.online),
    peak: int(data.peak),
    unique: int(data.unique),
    likes: int(data.likes),
    comments: int(data.comments_last_minute),
    attempts: int(data.grab_attempts),
    reservations: int(data.reservations),
    orders: int(data.orders),
    paid: int(data.paid_orders),
    buyers: int(data.paid_buyers),
    conversion: `${(data.conversion * 100).toFixed(2)}%`,
    gmv: moneyText(data.gmv),
    aov: moneyText(data.average_order_value),
  };
  for (const [name, text] of Object.entries(figures)) $(`#dash-${name}`).textContent = text;
  const time = new Date(data.server_time).toLocaleTimeString("en-GB");
  $("#dash-updated").textContent = `updated ${time} · every ${POLL_MS / 1000} s`;
  renderProducts(data.products);
  if (!isOpen()) return; // charts are drawn when seen
  const currency = mainCurrency();
  $("#dash-gmv-title").textContent = currency ? `Net GMV (${currency})` : "Net GMV";
  chart($("#dash-chart-online"), samples.map((s) => [s.t, s.online]), int);
  chart(
    $("#dash-chart-gmv"),
    samples.map((s) => [s.t, (s.gmv && s.gmv[currency]) || 0]),
    (v) => (currency ? money(v, currency) : "0"),
  );
}

function renderProducts(products) {
  const rows = products.map((p) =>
    el("tr", { dataset: { id: p.id } },
      el("td", {}, p.id),
      el("td", { class: "title" }, p.title),
      el("td", { class: "num views" }, int(p.views)),
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
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : duration(ms);
}

/** The currency with the most GMV in the newest sample (the GMV chart shows that one). */
function mainCurrency() {
  const gmv = samples.length ? samples[samples.length - 1].gmv : {};
  const ranked = Object.entries(gmv || {}).sort((a, b) => b[1] - a[1]);
  return ranked.length ? ranked[0][0] : null;
}

// ---- charts -------------------------------------------------------------------------------

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

/** A step line of `points` ([t, value], oldest first) in `box`, labelled with the newest
 * value and the maximum (formatted by `format`). */
function chart(box, points, format) {
  const { width, height, pad } = CHART;
  const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
                            role: "img", class: "chart-svg" }); // prettier-ignore
  const top = Math.max(0, ...points.map(([, v]) => v));
  const max = Math.max(1, top);
  const t0 = points.length ? points[0][0] : 0;
  const span = Math.max(1, (points.length ? points[points.length - 1][0] : 0) - t0);
  const x = (t) => pad + ((t - t0) / span) * (width - 2 * pad);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  node.append(svg("line", { x1: 0, x2: width, y1: y(0), y2: y(0), class: "axis" }));
  if (points.length) {
    let d = `M ${x(points[0][0])} ${y(points[0][1])}`;
    for (const [t, v] of points.slice(1)) d += ` H ${x(t)} V ${y(v)}`;
    if (points.length === 1) d += ` H ${width - pad}`;
    node.append(svg("path", { d, class: "line", "vector-effect": "non-scaling-stroke" }));
  }
  const newest = points.length ? points[points.length - 1][1] : 0;
  const since = duration(points.length > 1 ? span : 0);
  box.querySelector(".chart-plot").replaceChildren(node);
  box.querySelector(".chart-now").textContent = format(newest);
  box.querySelector(".chart-range").textContent = `max ${format(top)} · over ${since}`;
  box.dataset.points = String(points.length);
}
