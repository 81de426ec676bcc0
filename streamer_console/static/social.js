// Social selling: group buys (POST .../group-buys: SKU, group price, team size, window, units,
// per-user limit; a card per deal with its teams, their states and "N more needed"), the
// reminder subscribers and the top sharers with the GMV they brought (host only). While the
// Social tab is shown, GET .../group-buys (deals with their teams), .../reminders and
// .../referrals are polled every POLL_MS (counts and sharers are not in ticks); a team_*
// entry in a tick reloads its deal (GET .../group-buys/{gb}) at once, whichever tab is shown.

import { act, api } from "./api.js";
import { fillSkuSelect, skuIndex } from "./sales.js";
import { $, amountOf, duration, el, intOf, money, poller, serverNow } from "./util.js";
import { label, t, t as tr } from "./i18n.js";

const POLL_MS = 3000;
const SHOWN = 10; // the newest deals on screen

const deals = new Map();
const cards = new Map();
let role = null;
const polling = poller(() => load(), POLL_MS);

export function init() {
  $("#groupbuy-form").addEventListener("submit", open);
  document.addEventListener("products-changed", () => fillSkuSelect($("#gb-sku")));
  document.addEventListener("livecart:tab", (event) => {
    if (/** @type {CustomEvent} */ (event).detail === "social" && role === "host") polling.start();
    else polling.stop();
  });
}

export async function reset(welcome, newRole) {
  role = newRole;
  deals.clear();
  cards.clear();
  $("#groupbuys").replaceChildren();
  if (role === "host" && !$("#tab-social").hidden) polling.start();
  else polling.stop();
}

export function refresh() {
  if (polling.running) load();
}

export function entry(e) {
  if (role === "host" && e.kind.startsWith("team_")) loadDeal(e.groupbuy);
}

export function tick() {}

export function second() {
  for (const [id, d] of deals) updateClocks(cards.get(id), d);
}

/** Stop polling (signed out). */
export function stop() {
  polling.stop();
}

async function load() {
  const data = await act(t("gb.load"), () => api("GET", "/group-buys"), null, { quiet: true });
  if (!data) {
    polling.stop();
    return;
  }
  for (const d of data.group_buys.slice(-SHOWN)) put(d);
  await Promise.all([reminders(), sharers()]);
}

async function loadDeal(id) {
  const d = await act(t("gb.loadOne", { id }), () => api("GET", `/group-buys/${id}`), null,
    { quiet: true });
  if (d) put(d);
}

// ---- cards ----------------------------------------------------------------------------------

function put(d) {
  deals.set(d.id, d);
  let card = cards.get(d.id);
  if (!card) {
    card = el("article", { class: "groupbuy", dataset: { id: d.id } },
      el("header", {}, el("strong", { class: "title" }), el("span", { class: "meta n-teams" })),
      el("div", { class: "terms" }),
      el("ul", { class: "teams" }));
    cards.set(d.id, card);
    $("#groupbuys").prepend(card);
  }
  const cur = d.currency || "USD";
  card.querySelector(".title").textContent = `${d.sku}${d.title ? ` — ${d.title}` : ""}`;
  card.querySelector(".terms").textContent = t("gb.terms", { id: d.id, price: money(d.group_price, cur),
    size: d.team_size, window: duration(d.window_s * 1000), available: d.available, units: d.units,
    limit: d.per_user_limit });
  const teams = d.teams || [];
  const forming = teams.filter((t) => t.state === "forming").length;
  const done = teams.filter((t) => t.state === "completed").length;
  card.querySelector(".n-teams").textContent =
    t("gb.teams", { count: teams.length, forming, done });
  card.querySelector(".teams").replaceChildren(...teams.map((t) =>
    el("li", { class: "team", dataset: { id: t.id, state: t.state } },
      el("strong", {}, t.id), " ", el("span", { class: "badge team-state" }, label("gb.state", t.state)), " ",
      el("span", { class: "members" }, t.roster.map((m) => m.name).join(", ") || "—"), " ",
      el("span", { class: "needed" }, t.state === "forming" ? tr("gb.needed", { n: t.needed }) : ""), " ",
      el("span", { class: "clock" }))));
  updateClocks(card, d);
  const open = [...deals.values()].flatMap((x) => x.teams || []).filter((t) => t.state === "forming");
  $("#tab-count-social").textContent = open.length ? String(open.length) : "";
}

function updateClocks(card, d) {
  if (!card) return;
  for (const row of card.querySelectorAll(".team")) {
    const t = (d.teams || []).find((x) => x.id === row.dataset.id);
    const left = t.deadline - serverNow();
    row.querySelector(".clock").textContent = t.state === "forming" || t.state === "full"
      ? (left > 0 ? tr("clock.left", { time: duration(left) }) : tr("gb.settling")) : "";
  }
}

// ---- reminders and sharers -------------------------------------------------------------------

async function reminders() {
  const data = await act(t("social.loadReminders"), () => api("GET", "/reminders"), null, { quiet: true });
  if (!data) return;
  $("#reminder-count").textContent = String(data.subscribers);
  $("#reminder-events").textContent = data.events.map((e) =>
    `${label("social.kind", e.kind)}${e.id.startsWith("sale-") ? ` (${e.id.slice(5)})` : ""}: ${label("social.state", e.state)}` +
    (e.delivered ? t("social.sentTo", { n: e.delivered }) : "")).join(" · ");
}

/** {USD: 1250, EUR: 0} -> "USD 12.50, EUR 0.00" (net GMV per currency). */
function gmvText(gmv) {
  return Object.entries(gmv || {}).map(([cur, minor]) => money(minor, cur)).join(", ") || "—";
}

async function sharers() {
  const data = await act(t("social.loadReferrals"), () => api("GET", "/referrals?limit=20"), null,
    { quiet: true });
  if (!data) return;
  const share = Object.entries(data.referred_share).map(([cur, part]) =>
    t("social.shareOf", { part: money(data.referred_gmv[cur] || 0, cur), whole: money(data.gmv[cur], cur),
      pct: (100 * part).toFixed(1) }));
  $("#referred").textContent = t("social.referred", { count: data.referred_viewers }) +
    (share.length ? t("social.referredGmv", { gmv: share.join(", ") }) : "");
  const rows = data.sharers.map((s) => el("tr", { dataset: { user: s.user } },
    el("td", {}, s.name && s.name !== s.user ? `${s.name} (${s.user})` : s.user),
    el("td", { class: "num invites" }, String(s.invites)),
    el("td", { class: "num buyers" }, String(s.buyers ?? 0)),
    el("td", { class: "num orders" }, String(s.orders ?? 0)),
    el("td", { class: "num gmv" }, gmvText(s.gmv))));
  $("#sharers").replaceChildren(...rows);
  $("#sharers-empty").hidden = rows.length > 0;
}

// ---- actions --------------------------------------------------------------------------------

async function open(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const sku = $("#gb-sku").value;
  const found = skuIndex().get(sku);
  const body = {
    sku,
    group_price: amountOf($("#gb-price"), found ? found.product.currency : "USD", { what: t("what.price") }),
    team_size: intOf($("#gb-size")),
    window_s: intOf($("#gb-window")),
    units: intOf($("#gb-units")),
  };
  const limit = intOf($("#gb-limit"));
  if (limit !== undefined) body.per_user_limit = limit;
  if (Number.isNaN(body.group_price)) {
    $("#gb-price").focus(); // the reason is next to it; nothing is sent
    return;
  }
  const d = await act(t("gb.openAct", { sku }), () => api("POST", "/group-buys", body),
    form.querySelector("button[type=submit]"));
  if (d) {
    put(d);
    $("#groupbuy-open").open = false;
  }
}
