// Customers (hosts only): the shop's buyers across its shows, from the books (GET
// .../customers and .../customers/{user}, docs/api.md § Customers). A tab of the dashboard
// view ("Customers" in its heading), so it takes no room in the header: tier counts as chips
// that filter the list, the list by lifetime value, and one buyer's drill down (profile,
// RFM, orders across shows). With a tier picked, a coupon can be dropped for that tier
// only (POST .../drops with `tiers`). Loaded when opened and on Refresh, never polled: the
// figures move with paid orders, not by the second. An engine that keeps no books answers
// `ledger_disabled`: the view says so instead of an empty list.

import { ApiError, act, api } from "./api.js";
import { $, duration, el, intOf, money } from "./util.js";
import { count, label, t, timeLocale } from "./i18n.js";

const TIERS = ["champions", "loyal", "new", "promising", "needs_attention", "at_risk", "hibernating", "prospect"];
const LIMIT = 200;

const state = { room: null, tier: null, user: null, templates: [], loaded: false };

export function init() {
  $("#customers-open").addEventListener("click", () => show(!isOpen()));
  $("#cust-refresh").addEventListener("click", (ev) => load(ev.currentTarget));
  $("#cust-drop").addEventListener("submit", dropForTier);
  // The coupons panel shares its templates whenever they change (coupons.js).
  document.addEventListener("livecart:templates", (event) => {
    state.templates = /** @type {CustomEvent} */ (event).detail;
    renderTemplates();
  });
}

export function reset(welcome) {
  if (welcome.room.id === state.room) return;
  state.room = welcome.room.id;
  state.tier = null;
  state.user = null;
  state.loaded = false;
  $("#cust-rows").replaceChildren();
  $("#cust-detail").replaceChildren(el("p", { class: "meta" }, t("customers.pick")));
  if (isOpen()) load();
}

export function refresh() {}
export function entry() {}
export function tick() {}
export function second() {}

function isOpen() {
  return $("#dashboard-panel").dataset.tab === "customers";
}

/** The dashboard's figures or the customers, in the same view. */
function show(open) {
  const panel = $("#dashboard-panel");
  if (open) panel.dataset.tab = "customers";
  else delete panel.dataset.tab;
  $("#customers-view").hidden = !open;
  const button = $("#customers-open");
  button.setAttribute("aria-pressed", String(open));
  button.textContent = open ? t("customers.back") : t("customers.open");
  if (open && !state.loaded) load();
}

// ---- loading -------------------------------------------------------------------------------

function query() {
  const params = new URLSearchParams({ limit: String(LIMIT) });
  if (state.tier) params.set("tier", state.tier);
  return `/customers?${params}`;
}

/** The engine's answer, or undefined after saying why in the view (no books) or the
 * feedback bar (anything else). */
async function fetchQuietly(path, button = null) {
  try {
    return await api("GET", path);
  } catch (error) {
    if (error instanceof ApiError && error.code === "ledger_disabled") {
      noBooks();
      return undefined;
    }
    return act(t("customers.load"), () => Promise.reject(error), button);
  }
}

async function load(button = null) {
  const room = state.room;
  const data = await fetchQuietly(query(), button);
  if (!data || room !== state.room) return;
  state.loaded = true;
  $("#customers-view").dataset.books = "yes";
  renderChips(data.tiers);
  renderList(data);
  if (state.user && data.customers.some((c) => c.user === state.user)) drill(state.user);
}

function noBooks() {
  $("#customers-view").dataset.books = "no";
  $("#cust-note").textContent = t("customers.noBooks");
}

// ---- tiers and the list --------------------------------------------------------------------

const tierName = (tier) => label("customers.tier", tier);

function renderChips(counts) {
  const total = TIERS.reduce((sum, tier) => sum + Number(counts[tier] || 0), 0);
  const chip = (tier, n) => el("button", {
    type: "button", class: "chip cust-chip", "aria-pressed": String(state.tier === tier),
    dataset: { tier: tier || "all" }, onclick: () => pick(tier),
  }, el("span", {}, tier ? tierName(tier) : t("customers.all")), el("b", {}, count(n)));
  $("#cust-tiers").replaceChildren(chip(null, total), ...TIERS.map((tier) => chip(tier, Number(counts[tier] || 0))));
}

function pick(tier) {
  state.tier = tier;
  for (const chip of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("#cust-tiers .chip"))) {
    chip.setAttribute("aria-pressed", String(chip.dataset.tier === (tier || "all")));
  }
  renderTemplates();
  load();
}

function badge(tier) {
  return el("span", { class: "badge tier", dataset: { tier } }, tierName(tier));
}

/** "2 days ago", "today"; "—" for someone who never bought. */
function ago(days) {
  if (days === null || days === undefined) return "—";
  return days === 0 ? t("customers.today") : t("customers.daysAgo", { count: days, n: count(days) });
}

const rfmText = (rfm) => (rfm ? `${rfm.r}·${rfm.f}·${rfm.m}` : "—");

function renderList(data) {
  const currency = data.currency;
  const rows = data.customers.map((c) =>
    el("tr", { dataset: { user: c.user }, class: c.user === state.user ? "picked" : "", tabindex: 0,
               onclick: () => drill(c.user), onkeydown: (ev) => ev.key === "Enter" && drill(c.user) },
      el("td", {}, el("span", { class: "who", title: c.user }, c.user)),
      el("td", {}, badge(c.tier)),
      el("td", { class: "num rfm" }, rfmText(c.rfm)),
      el("td", { class: "num" }, count(c.orders)),
      el("td", { class: "num ltv" }, currency && c.orders ? money(c.ltv, currency) : "—"),
      el("td", { class: "num" }, ago(c.recency_days)),
      el("td", { class: "num" }, count(c.shows_watched))));
  $("#cust-rows").replaceChildren(...rows);
  const shown = data.customers.length;
  // The shop's people, whichever tier is picked: the chips count each tier.
  const people = Object.values(data.tiers).reduce((sum, n) => sum + Number(n), 0);
  const meta = currency ? "customers.meta" : "customers.metaNoSales";
  $("#cust-meta").textContent = t(meta, { count: people, n: count(people), currency });
  $("#cust-note").textContent = data.total === 0
    ? t(state.tier ? "customers.noneInTier" : "customers.none")
    : shown < data.total ? t("customers.firstOnly", { shown: count(shown) }) : "";
}

// ---- one customer ----------------------------------------------------------------------------

function day(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleDateString(timeLocale(), { year: "numeric", month: "short", day: "numeric" });
}

function figure(name, value) {
  return el("div", {}, el("dt", {}, name), el("dd", {}, value));
}

async function drill(user) {
  state.user = user;
  for (const row of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("#cust-rows tr"))) {
    row.classList.toggle("picked", row.dataset.user === user);
  }
  const room = state.room;
  const data = await fetchQuietly(`/customers/${encodeURIComponent(user)}`);
  if (!data || room !== state.room || state.user !== user) return;
  const c = data.customer;
  const spend = Object.entries(c.spend).map(([cur, minor]) => money(minor, cur)).join(" · ") || "—";
  const orders = data.orders.map((o) =>
    el("tr", {},
      el("td", {}, el("span", { class: "title", title: o.show || o.room }, o.show || o.room)),
      el("td", {}, o.order),
      el("td", {}, label("order.state", o.state)),
      el("td", { class: "num" }, money(o.total - (o.refunded || 0), o.currency)),
      el("td", { class: "num" }, day(o.paid_at || o.created_at))));
  $("#cust-detail").replaceChildren(
    el("h3", {}, el("span", { class: "who" }, c.user), " ", badge(c.tier)),
    el("dl", { class: "cust-figures" },
      figure(t("customers.fig.rfm"), rfmText(c.rfm)),
      figure(t("customers.fig.orders"), count(c.orders)),
      figure(t("customers.fig.ltv"), data.currency && c.orders ? money(c.ltv, data.currency) : "—"),
      figure(t("customers.fig.spend"), spend),
      figure(t("customers.fig.first"), day(c.first_purchase_at)),
      figure(t("customers.fig.last"), `${day(c.last_purchase_at)}${c.orders ? ` · ${ago(c.recency_days)}` : ""}`),
      figure(t("customers.fig.shows"), t("customers.showsText", { bought: count(c.shows_bought), watched: count(c.shows_watched) })),
      figure(t("customers.fig.watch"), c.watch_ms ? duration(c.watch_ms) : "—")),
    el("h4", {}, t("customers.ordersTitle")),
    orders.length
      ? el("table", { class: "cust-orders" },
          el("thead", {}, el("tr", {},
            el("th", {}, t("customers.col.show")), el("th", {}, t("customers.col.order")),
            el("th", {}, t("customers.col.state")), el("th", { class: "num" }, t("customers.col.net")),
            el("th", { class: "num" }, t("customers.col.date")))),
          el("tbody", {}, orders))
      : el("p", { class: "meta" }, t("customers.noOrders")),
  ); // prettier-ignore
}

// ---- a coupon for one tier --------------------------------------------------------------------

function renderTemplates() {
  const form = $("#cust-drop");
  form.hidden = !state.tier || state.templates.length === 0;
  if (form.hidden) return;
  const select = $("#cust-drop-template");
  const chosen = select.value;
  select.replaceChildren(...state.templates.map((tpl) =>
    el("option", { value: tpl.id, selected: tpl.id === chosen }, `${tpl.title} (${tpl.id})`)));
  $("#cust-drop-for").textContent = t("customers.dropFor", { tier: tierName(state.tier) });
}

async function dropForTier(event) {
  event.preventDefault();
  const template = $("#cust-drop-template").value;
  const quantity = intOf($("#cust-drop-quantity"));
  if (!template || !quantity || !state.tier) return;
  const tier = state.tier;
  const button = event.currentTarget.querySelector("button[type=submit]");
  await act(t("customers.dropAct", { tier: tierName(tier) }),
    () => api("POST", `/coupons/templates/${template}/drops`, { quantity, tiers: [tier] }), button);
}
