// Giveaways (lucky bags): open one (POST .../giveaways: title, prize as a label, a product
// SKU or a coupon template, winners, duration, entry rule any / keyword / watch time, limits),
// a card per giveaway with its countdown and live entrants count (GET .../giveaways every
// POLL_MS while one is open: entries are not in ticks), close now, and the result: winners,
// the commitment published at opening, the revealed seed and sha256(seed) == commitment
// recomputed in the browser. Cards come from giveaway_opened / giveaway_closed entries too.

import { act, api } from "./api.js";
import { fillSkuSelect } from "./sales.js";
import { $, actionButton, confirmAction, duration, el, intOf, poller, serverNow } from "./util.js";
import { label, t } from "./i18n.js";

const POLL_MS = 2000;
const SHOWN = 5; // closed giveaways kept on screen

const giveaways = new Map();
const cards = new Map();
let role = null;
const polling = poller(() => load(), POLL_MS);

export function init() {
  $("#giveaway-form").addEventListener("submit", open);
  $("#gw-prize-kind").addEventListener("change", prizeFields);
  $("#gw-rule").addEventListener("change", ruleFields);
  document.addEventListener("products-changed", () => fillSkuSelect($("#gw-sku")));
  document.addEventListener("livecart:templates", (event) => templateOptions(/** @type {CustomEvent} */ (event).detail));
  prizeFields();
  ruleFields();
}

export async function reset(welcome, newRole) {
  role = newRole;
  giveaways.clear();
  cards.clear();
  $("#giveaways").replaceChildren();
  if (role !== "host") return;
  await load();
}

export function refresh() {
  if (role === "host") load();
}

export function entry(e) {
  if (e.kind === "giveaway_opened" && !giveaways.has(e.ref)) {
    put({ id: e.ref, title: e.title, prize: e.prize, winners_count: e.winners, rule: e.rule,
      keyword: e.keyword, commitment: e.commitment, created_at: e.created_at,
      ends_at: e.ends_at, state: "open", entrants_count: 0, seed: null, winners: null,
      prize_kind: e.prize_kind, min_watch_s: e.min_watch_s });
  } else if (e.kind === "giveaway_closed") {
    const known = giveaways.get(e.ref) || { id: e.ref, title: e.title, prize: e.prize };
    put({ ...known, state: "closed", seed: e.seed, commitment: e.commitment,
      winners: e.winners, entrants_count: e.entrants, closed_at: e.closed_at });
  }
}

export function tick() {}

export function second() {
  for (const [id, g] of giveaways) updateClock(cards.get(id), g);
}

/** Stop polling (signed out). */
export function stop() {
  polling.stop();
}

async function load() {
  const data = await act(t("gw.load"), () => api("GET", "/giveaways"), null, { quiet: true });
  if (!data) {
    polling.stop();
    return;
  }
  const list = data.giveaways;
  const shown = new Set([...list.filter((g) => g.state === "open"),
    ...list.filter((g) => g.state === "closed").slice(-SHOWN)].map((g) => g.id));
  for (const g of list) if (shown.has(g.id) || giveaways.has(g.id)) put(g);
  const anyOpen = list.some((g) => g.state === "open");
  if (anyOpen && !polling.running) polling.start();
  if (!anyOpen && polling.running) polling.stop();
}

// ---- cards ----------------------------------------------------------------------------------

function ruleText(g) {
  if (g.rule === "keyword") return t("gw.rule.keywordIs", { keyword: g.keyword ?? "?" });
  if (g.rule === "watch") return t("gw.rule.watched", { minutes: Math.round((g.min_watch_s || 0) / 60) });
  return label("gw.rule", g.rule);
}

function prizeText(g) {
  if (g.prize_kind === "product" && g.sku) return `${g.prize} (${g.sku})`;
  if (g.prize_kind === "coupon" && g.template) return t("gw.prizeCoupon", { prize: g.prize, template: g.template });
  return g.prize;
}

function put(g) {
  const merged = { ...giveaways.get(g.id), ...g };
  giveaways.set(g.id, merged);
  let card = cards.get(g.id);
  if (!card) {
    card = el(
      "article",
      { class: "giveaway", dataset: { id: g.id } },
      el("header", {},
        el("strong", { class: "title" }), el("span", { class: "badge state" }),
        el("span", { class: "clock" })),
      el("div", { class: "terms" }),
      el("div", { class: "stock-text" }, el("span", { class: "n-entrants" }), t("gw.entrants")),
      el("div", { class: "result", hidden: true },
        el("div", {}, t("gw.winnersIs"), el("span", { class: "winners" })),
        el("div", { class: "proof" }, t("gw.commitment"), el("code", { class: "commitment" })),
        el("div", { class: "proof" }, t("gw.seed"), el("code", { class: "seed" })),
        el("div", { class: "verify" })),
      el("div", { class: "sale-actions" },
        actionButton(t("gw.closeDraw"), "close danger", (b) => close(g.id, b))),
    );
    cards.set(g.id, card);
    $("#giveaways").prepend(card);
  }
  update(card, merged);
  $("#tab-count-giveaways").textContent = countOpen();
}

function countOpen() {
  const n = [...giveaways.values()].filter((g) => g.state === "open").length;
  return n ? String(n) : "";
}

function update(card, g) {
  card.querySelector(".title").textContent = g.title;
  const winners = g.winners_count ?? g.winners?.length;
  card.querySelector(".terms").textContent =
    `${g.id} · ${prizeText(g)} · ${t("gw.winnerCount", { count: winners ?? 0, n: winners ?? "?" })} · ${ruleText(g)}`;
  card.querySelector(".n-entrants").textContent = String(g.entrants_count ?? 0);
  const badge = card.querySelector(".state");
  badge.textContent = label("gw.state", g.state);
  badge.dataset.state = g.state === "open" ? "live" : "ended";
  const closed = g.state === "closed";
  card.classList.toggle("ended", closed);
  card.querySelector("button.close").hidden = closed;
  card.querySelector(".result").hidden = !closed;
  if (closed) {
    const won = (g.winners || []).map((user) => winnerText(g, user));
    const excluded = g.excluded_count ? t("gw.skipped", { n: g.excluded_count }) : "";
    card.querySelector(".winners").textContent =
      (won.length ? won.join(", ") : t("gw.nobody")) + excluded;
    card.querySelector(".commitment").textContent = g.commitment || "";
    card.querySelector(".seed").textContent = g.seed || "";
    if (g.seed && card.dataset.verified !== g.seed) {
      card.dataset.verified = g.seed;
      verify(card, g);
    }
  }
  updateClock(card, g);
}

/** "Ana (ana) ✓ reserved": the winner's name, id and how the prize was handed over. */
function winnerText(g, user) {
  const name = g.winner_names?.[user];
  const award = g.awards?.[user];
  let given = "";
  if (award?.reservation) given = t("gw.award.reserved");
  else if (award?.coupon) given = t("gw.award.coupon");
  else if (award?.status) given = ` (${label("gw.award", award.status)})`;
  return `${name && name !== user ? `${name} (${user})` : user}${given}`;
}

function updateClock(card, g) {
  if (!card) return;
  const left = g.ends_at - serverNow();
  const text = g.state === "closed" ? t("gw.drawn") : left > 0 ? t("clock.left", { time: duration(left) }) : t("gw.drawing");
  card.querySelector(".clock").textContent = text;
}

/** sha256(seed) == commitment, in the browser (crypto.subtle needs a secure context:
 * https or localhost). The draw itself is checked by `livecart giveaway verify`. */
async function verify(card, g) {
  const out = card.querySelector(".verify");
  if (!globalThis.crypto?.subtle) {
    out.textContent = t("gw.cannotVerify");
    return;
  }
  const bytes = new Uint8Array(g.seed.match(/../g).map((h) => parseInt(h, 16)));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  const ok = hex === g.commitment;
  out.dataset.ok = String(ok);
  out.textContent = ok
    ? t("gw.verified")
    : t("gw.notVerified");
}

// ---- actions --------------------------------------------------------------------------------

async function close(id, button) {
  if (!(await confirmAction(t("gw.closeQuestion", { id }), t("gw.drawNow")))) return;
  const g = await act(t("gw.closeAct", { id }), () => api("POST", `/giveaways/${id}/close`), button);
  if (g) put(g);
}

function prizeFields() {
  const kind = $("#gw-prize-kind").value;
  $("#gw-sku").hidden = kind !== "product";
  $("#gw-template").hidden = kind !== "coupon";
  if (kind === "coupon" && $("#gw-template").options.length <= 1) loadTemplates();
}

function ruleFields() {
  const rule = $("#gw-rule").value;
  $("#gw-keyword").hidden = rule !== "keyword";
  $("#gw-watch-field").hidden = rule !== "watch";
}

async function loadTemplates() {
  const data = await act(t("coupons.load"), () => api("GET", "/coupons/templates"), null,
    { quiet: true });
  if (data) templateOptions(data.templates);
}

function templateOptions(templates) {
  const select = $("#gw-template");
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, t("gw.chooseCoupon")),
    ...templates.map((t) => el("option", { value: t.id }, `${t.id} — ${t.title}`)));
  select.value = current;
}

async function open(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = {
    title: $("#gw-title").value.trim(),
    prize: $("#gw-prize").value.trim(),
    winners: intOf($("#gw-winners")),
    duration_s: intOf($("#gw-duration")),
    rule: $("#gw-rule").value,
  };
  const kind = $("#gw-prize-kind").value;
  if (kind !== "label") body.prize_kind = kind;
  if (kind === "product") body.sku = $("#gw-sku").value;
  if (kind === "coupon") body.template = $("#gw-template").value;
  if (body.rule === "keyword") body.keyword = $("#gw-keyword").value.trim();
  if (body.rule === "watch") body.min_watch_s = (intOf($("#gw-watch")) ?? 0) * 60;
  if ($("#gw-one-win").checked) body.one_win_per_show = true;
  const exclude = intOf($("#gw-exclude"));
  if (exclude) body.exclude_recent_winners = exclude;
  const g = await act(t("gw.openAct", { title: body.title }), () => api("POST", "/giveaways", body),
    form.querySelector("button[type=submit]"));
  if (g) {
    put(g);
    $("#giveaway-open").open = false;
    if (!polling.running) polling.start();
  }
}
