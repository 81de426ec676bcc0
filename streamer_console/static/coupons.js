// Coupons: templates (GET/POST .../coupons/templates), dropping a template now or after a
// countdown (POST .../templates/{t}/drops), and live claimed counts per drop from
// welcome.drops, coupon_dropped entries and ticks' `drops`; used counts per drop from the
// dashboard's polls (the "livecart:dashboard" event).

import { act, api } from "./api.js";
import { $, amountOf, duration, el, intOf, money, serverNow } from "./util.js";
import { label, t, t as tr } from "./i18n.js";

let templates = [];
const drops = new Map();
const cards = new Map();

export function init() {
  $("#template-form").addEventListener("submit", createTemplate);
  $("#template-kind").addEventListener("change", kindFields);
  kindFields();
  document.addEventListener("livecart:dashboard", (event) => usage(/** @type {CustomEvent} */ (event).detail.coupon_drops));
}

/** Coupons of each drop used by paid orders (and locked to unpaid ones). */
function usage(perDrop) {
  for (const [id, card] of cards) {
    const n = perDrop?.[id];
    const text = n ? t("coupons.used", { used: n.used }) + (n.locked ? t("coupons.locked", { locked: n.locked }) : "") : "";
    card.querySelector(".used").textContent = text;
  }
}

export async function reset(welcome, role) {
  drops.clear();
  cards.clear();
  $("#drops").replaceChildren();
  for (const card of welcome.drops) put(card);
  if (role !== "host") return;
  const load = () => api("GET", "/coupons/templates");
  const data = await act(t("coupons.load"), load, null, { quiet: true });
  if (data) {
    templates = data.templates;
    renderTemplates();
  }
}

/** After a resume: the drop counters as the welcome has them (ticks only carry changes). */
export function refresh(welcome) {
  for (const card of welcome.drops) put({ ...drops.get(card.id), ...card });
}

export function entry(e) {
  if (e.kind === "coupon_dropped" && !drops.has(e.ref)) {
    put({ ...e, id: e.ref, remaining: e.quantity, claimed: 0,
      state: e.server_time < e.opens_at ? "scheduled" : "live" });
  }
}

export function tick(message) {
  for (const [id, counters] of Object.entries(message.drops || {})) {
    if (drops.has(id)) put({ ...drops.get(id), ...counters });
  }
}

export function second() {
  for (const [id, drop] of drops) updateClock(cards.get(id), drop);
}

// ---- templates ------------------------------------------------------------------------------

function terms(template) {
  // A template has `kind`; a drop card (and its coupon_dropped entry, whose own `kind` is
  // the entry's) has `coupon_kind`.
  const kind = template.coupon_kind || template.kind;
  let off = tr("coupons.freeShipping");
  if (kind === "amount_off") off = tr("coupons.amountOffText", { amount: money(template.amount, template.currency) });
  if (kind === "percent_off") {
    off = tr("coupons.percentOffText", { percent: template.percent })
      + (template.cap ? tr("coupons.cap", { cap: money(template.cap, template.currency) }) : "");
  }
  const min = template.min_spend ? tr("coupons.over", { amount: money(template.min_spend, template.currency) }) : "";
  return `${off}${min}`;
}

function templateRow(template) {
  const quantity = el("input", { class: "drop-quantity", type: "number", min: 1, value: 50,
    "aria-label": tr("coupons.qtyLabel", { title: template.title }) });
  const countdown = el("input", { class: "drop-countdown", type: "number", min: 0, value: 0,
    "aria-label": tr("coupons.countdownLabel") });
  const left = template.total - (template.issued || 0);
  return el(
    "li",
    { class: "template", dataset: { id: template.id } },
    el("div", {}, el("strong", {}, template.title), " ",
      el("span", { class: "meta" },
        tr("coupons.templateMeta", { id: template.id, terms: terms(template), left, total: template.total, limit: template.per_user_limit }))),
    el("form", { class: "drop-form", onsubmit: (ev) => dropNow(ev, template, quantity, countdown) },
      el("label", {}, tr("coupons.qty"), " ", quantity),
      el("label", {}, tr("form.countdownS"), " ", countdown),
      el("button", { type: "submit", class: "primary drop" }, tr("coupons.drop"))),
  );
}

function renderTemplates() {
  document.dispatchEvent(new CustomEvent("livecart:templates", { detail: templates }));
  $("#templates").replaceChildren(...templates.map(templateRow));
  $("#templates-empty").hidden = templates.length > 0;
}

function kindFields() {
  const kind = $("#template-kind").value;
  $("#template-amount-field").hidden = kind !== "amount_off";
  $("#template-percent-field").hidden = kind !== "percent_off";
}

async function createTemplate(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const currency = $("#template-currency").value.trim().toUpperCase();
  const body = {
    kind: $("#template-kind").value,
    title: $("#template-title").value.trim(),
    currency,
    total: intOf($("#template-total")),
  };
  if (body.kind === "amount_off") body.amount = amountOf($("#template-amount"), currency);
  if (body.kind === "percent_off") body.percent = intOf($("#template-percent"));
  const minSpend = amountOf($("#template-min"), currency, { optional: true });
  if (minSpend !== undefined) body.min_spend = minSpend;
  const bad = form.querySelector("[aria-invalid=true]");
  if (bad instanceof HTMLElement) {
    bad.focus(); // the reason is next to it; nothing is sent
    return;
  }
  const limit = intOf($("#template-limit"));
  if (limit !== undefined) body.per_user_limit = limit;
  const created = await act(t("coupons.createAct", { title: body.title }),
    () => api("POST", "/coupons/templates", body), form.querySelector("button[type=submit]"));
  if (created) {
    templates.push({ ...created, issued: 0 });
    renderTemplates();
  }
}

async function dropNow(event, t, quantityInput, countdownInput) {
  event.preventDefault();
  const body = { quantity: intOf(quantityInput) };
  const countdown = intOf(countdownInput);
  if (countdown) body.countdown_s = countdown;
  const what = countdown ? tr("coupons.dropActIn", { n: body.quantity, title: t.title, seconds: countdown })
    : tr("coupons.dropAct", { n: body.quantity, title: t.title });
  const drop = await act(what, () => api("POST", `/coupons/templates/${t.id}/drops`, body),
    event.currentTarget.querySelector("button"));
  if (drop) {
    t.issued = (t.issued || 0) + drop.quantity;
    renderTemplates();
    put({ ...t, ...drops.get(drop.id), ...drop, template: t.id, coupon_kind: t.kind });
  }
}

// ---- drops ----------------------------------------------------------------------------------

function put(drop) {
  drops.set(drop.id, drop);
  let card = cards.get(drop.id);
  if (!card) {
    card = el(
      "article",
      { class: "drop-card", dataset: { id: drop.id } },
      el("header", {}, el("strong", { class: "title" }, drop.title || drop.template),
        el("span", { class: "badge state" }), el("span", { class: "clock" })),
      el("div", { class: "terms" }, `${drop.id} · ${terms(drop)}`),
      el("div", { class: "stockbar" }, el("span", { class: "seg sold" })),
      el("div", { class: "stock-text" }, el("span", { class: "n-claimed" }), t("coupons.claimedOf"),
        el("span", { class: "n-quantity" }), " · ", el("span", { class: "n-remaining" }), t("coupons.left"),
        el("span", { class: "used" })),
    );
    cards.set(drop.id, card);
    $("#drops").prepend(card);
  }
  card.querySelector(".seg.sold").style.width = `${(100 * drop.claimed) / Math.max(1, drop.quantity)}%`;
  card.querySelector(".n-claimed").textContent = String(drop.claimed);
  card.querySelector(".n-quantity").textContent = String(drop.quantity);
  card.querySelector(".n-remaining").textContent = String(drop.remaining);
  const badge = card.querySelector(".state");
  badge.textContent = label("state", drop.state);
  badge.dataset.state = drop.state;
  card.classList.toggle("ended", drop.state === "ended");
  updateClock(card, drop);
}

function updateClock(card, drop) {
  const now = serverNow();
  let text = t("clock.closed");
  if (drop.state !== "ended" && now < drop.opens_at) text = t("clock.opensIn", { time: duration(drop.opens_at - now) });
  else if (drop.state !== "ended" && now < drop.closes_at) text = t("clock.left", { time: duration(drop.closes_at - now) });
  card.querySelector(".clock").textContent = text;
}
