// Flash sales: launch on a SKU (POST .../sales), one card per sale with a live stock bar
// (available / reserved / sold, from ticks' `stock`), its countdown or time left, and stop
// / extend / top up. Sales come from welcome.sales, sale_* entries and HTTP answers.

import { act, api } from "./api.js";
import { thumb } from "./images.js";
import { allProducts } from "./lineup.js";
import {
  $, actionButton, confirmAction, duration, el, intOf, money, serverNow, toMajorText, amountOf,
} from "./util.js";
import { label, t } from "./i18n.js";

const sales = new Map();
const cards = new Map();

export function init() {
  $("#sale-form").addEventListener("submit", launch);
  $("#sale-sku").addEventListener("change", suggestPrice);
  document.addEventListener("products-changed", skuOptions);
  document.addEventListener("products-changed", showPictures);
}

const ENDED_SHOWN = 5; // the welcome lists running sales; show the last few ended ones too

export async function reset(welcome, role) {
  sales.clear();
  cards.clear();
  $("#sales").replaceChildren();
  for (const sale of welcome.sales) put(sale);
  if (role !== "host") return;
  const load = () => api("GET", "/sales");
  const data = await act(t("sales.load"), load, null, { quiet: true });
  if (!data) return;
  const ended = data.sales.filter((s) => s.state === "ended" && !sales.has(s.id));
  for (const sale of ended.slice(-ENDED_SHOWN)) put(sale, { below: true });
}

/** After a resume: the stock counters as the welcome has them (ticks only carry changes). */
export function refresh(welcome) {
  for (const sale of welcome.sales) put({ ...sales.get(sale.id), ...sale });
}

export function entry(e) {
  if (e.kind === "sale_announced") {
    if (!sales.has(e.ref)) {
      put({
        id: e.ref, sku: e.sku, product: e.product, title: e.title, price: e.price,
        currency: e.currency, limit: e.limit, hold_ms: e.hold_ms, allotment: e.allotment,
        topups: 0, starts_at: e.starts_at, ends_at: e.ends_at, available: e.allotment,
        reserved: 0, sold: 0, units: e.allotment,
        state: e.server_time < e.starts_at ? "scheduled" : "live",
      });
    }
  } else if (e.kind === "sale_updated" && sales.has(e.ref)) {
    put({ ...sales.get(e.ref), ends_at: e.ends_at, units: e.units });
  } else if (e.kind === "sale_ended" && sales.has(e.ref)) {
    put({ ...sales.get(e.ref), ends_at: e.ends_at, state: "ended" });
  }
}

export function tick(message) {
  for (const [id, counters] of Object.entries(message.stock || {})) {
    if (sales.has(id)) put({ ...sales.get(id), ...counters });
  }
}

export function second() {
  for (const [id, sale] of sales) updateClock(cards.get(id), sale);
}

// ---- cards ----------------------------------------------------------------------------------

/** Show or update a sale's card (new cards go on top; `below` for older, ended ones). */
function put(sale, { below = false } = {}) {
  sales.set(sale.id, sale);
  let card = cards.get(sale.id);
  if (!card) {
    card = saleCard(sale);
    cards.set(sale.id, card);
    if (below) $("#sales").append(card);
    else $("#sales").prepend(card);
  }
  update(card, sale);
}

/** The URL of the first picture of the sale's product ("" for none). */
const pictureOf = (sale) => allProducts().find((p) => p.id === sale.product)?.images?.[0] || "";

/** The sale's product's first picture (products load beside the sales: see showPictures). */
function picture(url) {
  return el("span", { class: "picture", dataset: { url } }, thumb(url));
}

function showPictures() {
  for (const box of document.querySelectorAll("#sales .sale .picture")) {
    if (!(box instanceof HTMLElement)) continue;
    const sale = sales.get(/** @type {HTMLElement} */ (box.closest(".sale")).dataset.id);
    const url = sale ? pictureOf(sale) : box.dataset.url;
    if (url !== box.dataset.url) box.replaceWith(picture(url));
  }
}

function saleCard(sale) {
  const extendBy = el("input", { class: "extend-s", type: "number", min: 1, value: 60,
    "aria-label": t("sales.secondsToAdd") });
  const topUpBy = el("input", { class: "topup-units", type: "number", min: 1, value: 10,
    "aria-label": t("sales.unitsToAdd") });
  return el(
    "article",
    { class: "sale", dataset: { id: sale.id } },
    el("header", {},
      picture(pictureOf(sale)),
      el("strong", { class: "title" }, sale.title),
      el("span", { class: "badge state" }),
      el("span", { class: "clock" })),
    el("div", { class: "terms" },
      t("sales.terms", { id: sale.id, sku: sale.sku, price: money(sale.price, sale.currency), limit: sale.limit })),
    el("div", { class: "stockbar", role: "img" },
      el("span", { class: "seg available" }),
      el("span", { class: "seg reserved" }),
      el("span", { class: "seg sold" })),
    el("div", { class: "stock-text" },
      el("span", { class: "n-available" }), t("sales.available"),
      el("span", { class: "n-reserved" }), t("sales.reserved"),
      el("span", { class: "n-sold" }), t("sales.soldOf"),
      el("span", { class: "n-units" }),
      el("span", { class: "waitlist" })),
    el("div", { class: "sale-actions" },
      actionButton(t("sales.stop"), "stop danger", (b) => stop(sale.id, b)),
      el("span", { class: "group" }, extendBy,
        actionButton(t("sales.extend"), "extend", (b) => extend(sale.id, extendBy, b))),
      el("span", { class: "group" }, topUpBy,
        actionButton(t("sales.topUp"), "topup", (b) => topUp(sale.id, topUpBy, b)))),
  );
}

function update(card, sale) {
  const units = Math.max(1, sale.units);
  for (const part of ["available", "reserved", "sold"]) {
    card.querySelector(`.seg.${part}`).style.width = `${(100 * sale[part]) / units}%`;
    card.querySelector(`.n-${part}`).textContent = String(sale[part]);
  }
  card.querySelector(".n-units").textContent = String(sale.units);
  card.querySelector(".stockbar").setAttribute("aria-label",
    t("sales.stockLabel", { available: sale.available, reserved: sale.reserved, sold: sale.sold, units: sale.units }));
  const waitlist = card.querySelector(".waitlist");
  // `waiting`: viewers on the sale's waitlist (sale objects and ticks' stock carry it).
  waitlist.textContent = sale.waiting ? t("sales.waitlist", { count: sale.waiting }) : "";
  const badge = card.querySelector(".state");
  badge.textContent = label("state", sale.state);
  badge.dataset.state = sale.state;
  card.classList.toggle("ended", sale.state === "ended");
  for (const button of card.querySelectorAll(".sale-actions button")) {
    if (button.dataset.state !== "pending") button.disabled = sale.state === "ended";
  }
  updateClock(card, sale);
}

function updateClock(card, sale) {
  const now = serverNow();
  let text = t("clock.ended");
  if (sale.state !== "ended" && now < sale.starts_at) text = t("clock.startsIn", { time: duration(sale.starts_at - now) });
  else if (sale.state !== "ended" && now < sale.ends_at) text = t("clock.left", { time: duration(sale.ends_at - now) });
  card.querySelector(".clock").textContent = text;
}

// ---- actions --------------------------------------------------------------------------------

async function stop(id, button) {
  if (!(await confirmAction(t("sales.stopQuestion", { id }), t("sales.stopSale")))) return;
  const sale = await act(t("sales.stopAct", { id }), () => api("POST", `/sales/${id}/stop`), button);
  if (sale) put(sale);
}

async function extend(id, input, button) {
  const seconds = intOf(input);
  const sale = await act(t("sales.extendAct", { id, seconds }),
    () => api("POST", `/sales/${id}/extend`, { seconds }), button);
  if (sale) put(sale);
}

async function topUp(id, input, button) {
  const units = intOf(input);
  const sale = await act(t("sales.topUpAct", { id, units }),
    () => api("POST", `/sales/${id}/topup`, { units }), button);
  if (sale) put(sale);
}

// ---- launch form ----------------------------------------------------------------------------

/** SKU code -> {product, sku} over the whole catalog (the run of show). */
export function skuIndex() {
  const index = new Map();
  for (const product of allProducts()) {
    for (const sku of product.skus) index.set(sku.sku, { product, sku });
  }
  return index;
}

/** Fill a SKU <select> from the catalog, keeping its choice (the giveaway and auction
 * forms use it too). */
export function fillSkuSelect(select) {
  const current = select.value;
  const options = [...skuIndex().values()].map(({ product, sku }) => {
    const attrs = Object.values(sku.attrs || {}).join(", ");
    const price = money(sku.list_price, product.currency);
    const label = `${sku.sku} — ${product.title}${attrs ? ` (${attrs})` : ""} · ${price}`;
    return el("option", { value: sku.sku }, label);
  });
  select.replaceChildren(el("option", { value: "" }, t("sku.choose")), ...options);
  select.value = current;
}

function skuOptions() {
  fillSkuSelect($("#sale-sku"));
  suggestPrice();
}

function suggestPrice() {
  const found = skuIndex().get($("#sale-sku").value);
  const price = $("#sale-price");
  price.placeholder = found ? toMajorText(found.sku.list_price, found.product.currency) : t("sales.listPrice");
}

async function launch(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const found = skuIndex().get($("#sale-sku").value);
  const body = { sku: $("#sale-sku").value, allotment: intOf($("#sale-allotment")) };
  const currency = found ? found.product.currency : "USD";
  const price = amountOf($("#sale-price"), currency, { what: t("what.price"), optional: true });
  if (Number.isNaN(price)) {
    $("#sale-price").focus(); // the reason is next to it; nothing is sent
    return;
  }
  if (price !== undefined) body.price = price;
  const optional = {
    per_user_limit: "#sale-limit",
    countdown_s: "#sale-countdown",
    duration_s: "#sale-duration",
  };
  for (const [field, selector] of Object.entries(optional)) {
    const value = intOf($(selector));
    if (value !== undefined) body[field] = value;
  }
  const sale = await act(t("sales.launchAct", { sku: body.sku || "?" }), () => api("POST", "/sales", body),
    form.querySelector("button[type=submit]"));
  if (sale) put(sale);
}
