// Live auctions: start one on a SKU (POST .../auctions: start price, duration, mode
// anti_snipe | sudden_death, extend_s, optional increments), a card per auction with its
// current price, leader, bids, minimum next bid and clock, from auction_* entries in ticks
// and GET .../auctions every POLL_MS while one is open (for offers and as a safety net);
// close now; after the close, the winner and "offer to runner-up" (second chance, once the
// winner's hold lapsed; the engine answers winner_holds before that).

import { act, api } from "./api.js";
import { fillSkuSelect, skuIndex } from "./sales.js";
import {
  $, actionButton, amountHint, amountOf, confirmAction, duration, el, fieldError, intOf, money, poller,
  serverNow, toMinor,
} from "./util.js";
import { clockTime, label, t } from "./i18n.js";

const POLL_MS = 3000;
const SHOWN = 5; // closed auctions kept on screen

const auctions = new Map();
const cards = new Map();
let role = null;
const polling = poller(() => load(), POLL_MS);

export function init() {
  $("#auction-form").addEventListener("submit", start);
  document.addEventListener("products-changed", () => fillSkuSelect($("#au-sku")));
}

export async function reset(welcome, newRole) {
  role = newRole;
  auctions.clear();
  cards.clear();
  $("#auctions").replaceChildren();
  if (role !== "host") return;
  await load();
}

export function refresh() {
  if (role === "host") load();
}

export function entry(e) {
  const known = auctions.get(e.ref || e.auction);
  if (e.kind === "auction_opened") {
    const { kind, ts, ref, ...wire } = e;
    put({ price: e.start_price, bids: 0, leader: null, offers: [], state: "open", ...wire, id: ref });
  } else if (!known) {
    return;
  } else if (e.kind === "auction_bid") {
    put({ ...known, price: e.price, leader: e.leader, leader_name: e.leader_name, bids: e.bids,
      min_bid: e.min_bid, ends_at: e.ends_at ?? known.ends_at });
  } else if (e.kind === "auction_extended") {
    put({ ...known, ends_at: e.ends_at, extended: (known.extended || 0) + 1 });
  } else if (e.kind === "auction_closed") {
    put({ ...known, state: "closed", winner: e.winner, winner_name: e.winner_name,
      price: e.price ?? known.price, closed_at: e.ts });
  } else if (e.kind === "auction_offered") {
    const offers = [...(known.offers || []).filter((o) => o.user !== e.user),
      { user: e.user, price: e.price }];
    put({ ...known, offers });
  }
}

export function tick() {}

export function second() {
  for (const [id, a] of auctions) updateClock(cards.get(id), a);
}

/** Stop polling (signed out). */
export function stop() {
  polling.stop();
}

async function load() {
  const data = await act(t("au.load"), () => api("GET", "/auctions"), null, { quiet: true });
  if (!data) {
    polling.stop();
    return;
  }
  const list = data.auctions;
  const shown = new Set([...list.filter((a) => a.state === "open"),
    ...list.filter((a) => a.state !== "open").slice(-SHOWN)].map((a) => a.id));
  for (const a of list) if (shown.has(a.id) || auctions.has(a.id)) put(a);
  const anyOpen = list.some((a) => a.state === "open");
  if (anyOpen && !polling.running) polling.start();
  if (!anyOpen && polling.running) polling.stop();
}

// ---- cards ----------------------------------------------------------------------------------

function put(a) {
  const merged = { ...auctions.get(a.id), ...a };
  auctions.set(a.id, merged);
  let card = cards.get(a.id);
  if (!card) {
    card = el(
      "article",
      { class: "auction", dataset: { id: a.id } },
      el("header", {},
        el("strong", { class: "title" }), el("span", { class: "badge state" }),
        el("span", { class: "clock" })),
      el("div", { class: "terms" }),
      el("div", { class: "bid-line" },
        el("span", { class: "price" }), " ",
        el("span", { class: "leader" }), " · ",
        el("span", { class: "n-bids" }), t("au.bidsNext"),
        el("span", { class: "min-bid" })),
      el("div", { class: "outcome meta" }),
      el("ul", { class: "offers meta" }),
      el("div", { class: "sale-actions" },
        actionButton(t("au.closeNow"), "close danger", (b) => close(a.id, b)),
        actionButton(t("au.offer"), "offer", (b) => offer(a.id, b))),
    );
    cards.set(a.id, card);
    $("#auctions").prepend(card);
  }
  update(card, merged);
  const n = [...auctions.values()].filter((x) => x.state === "open").length;
  $("#tab-count-auctions").textContent = n ? String(n) : "";
}

function update(card, a) {
  const currency = a.currency || "USD";
  card.querySelector(".title").textContent = a.title || a.sku;
  const extend = a.mode === "anti_snipe" ? t("au.extendLate", { s: a.extend_s }) : "";
  card.querySelector(".terms").textContent =
    t("au.terms", { id: a.id, sku: a.sku, price: money(a.start_price, currency), mode: label("au.mode", a.mode) }) + extend;
  card.querySelector(".price").textContent = money(a.price ?? a.start_price, currency);
  card.querySelector(".leader").textContent = a.leader ? t("au.by", { name: a.leader_name || a.leader }) : t("au.noBids");
  card.querySelector(".n-bids").textContent = String(a.bids ?? 0);
  card.querySelector(".min-bid").textContent = money(a.min_bid ?? a.start_price, currency);
  const open = a.state === "open";
  const badge = card.querySelector(".state");
  badge.textContent = label("au.state", a.state);
  badge.dataset.state = open ? "live" : "ended";
  card.classList.toggle("ended", !open);
  card.querySelector("button.close").hidden = !open;
  const offerButton = card.querySelector("button.offer");
  offerButton.hidden = open || !a.winner;
  card.querySelector(".outcome").textContent = open
    ? ""
    : a.winner
      ? t("au.wonBy", { name: a.winner_name || a.winner, price: money(a.price, currency) }) + (a.sale ? t("au.sale", { sale: a.sale }) : "")
      : t("au.closedNoBids");
  card.querySelector(".offers").replaceChildren(...(a.offers || []).map((o) =>
    el("li", {}, t("au.offeredTo", { user: o.user, price: money(o.price, currency) })
      + (o.expires_at ? t("au.until", { time: clockTime(o.expires_at) }) : ""))));
  updateClock(card, a);
}

function updateClock(card, a) {
  if (!card) return;
  const left = a.ends_at - serverNow();
  const text = a.state !== "open" ? t("clock.closed") : left > 0 ? t("clock.left", { time: duration(left) }) : t("au.closing");
  card.querySelector(".clock").textContent = text;
}

// ---- actions --------------------------------------------------------------------------------

async function close(id, button) {
  if (!(await confirmAction(t("au.closeQuestion", { id }), t("au.closeAuction")))) return;
  const a = await act(t("au.closeAct", { id }), () => api("POST", `/auctions/${id}/close`), button);
  if (a) put(a);
}

async function offer(id, button) {
  const a = await act(t("au.offerAct", { id }), () => api("POST", `/auctions/${id}/offer`),
    button);
  if (a) put(a);
}

/** "0:1.00, 50:2.50" (from price: step, in the currency's units) -> [[0, 100], [5000, 250]]. */
export function parseIncrements(text, currency) {
  const rows = text.split(",").map((part) => part.trim()).filter(Boolean);
  return rows.map((row) => row.split(":").map((n) => toMinor(n, currency)));
}

async function start(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const sku = $("#au-sku").value;
  const found = skuIndex().get(sku);
  const currency = found ? found.product.currency : "USD";
  const body = {
    sku,
    start_price: amountOf($("#au-start"), currency, { what: t("what.startPrice") }),
    duration_s: intOf($("#au-duration")),
    mode: $("#au-mode").value,
  };
  const extend = intOf($("#au-extend"));
  if (extend !== undefined && body.mode === "anti_snipe") body.extend_s = extend;
  const increments = $("#au-increments").value.trim();
  if (increments) body.increments = parseIncrements(increments, currency);
  const badSteps = (body.increments || []).some((pair) => pair.some(Number.isNaN));
  fieldError($("#au-increments"), badSteps ? t("au.badSteps", { hint: amountHint(currency, t("what.steps")) }) : null);
  const bad = form.querySelector("[aria-invalid=true]");
  if (bad instanceof HTMLElement) {
    bad.focus(); // the reason is next to it; nothing is sent
    return;
  }
  const a = await act(t("au.startAct", { sku: sku || "?" }), () => api("POST", "/auctions", body),
    form.querySelector("button[type=submit]"));
  if (a) {
    put(a);
    $("#auction-start").open = false;
    if (!polling.running) polling.start();
  }
}
