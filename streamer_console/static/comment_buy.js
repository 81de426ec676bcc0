// Comment-to-buy: the room's settings (GET/PUT .../comment-to-buy: enabled, the buy keyword
// such as SOLD, and product keywords such as MUG -> p3) and the buys it made, live from
// `comment_buy` entries in ticks. Viewers comment e.g. "SOLD 3 2 blue"; the engine answers
// each commenter privately.

import { act, api } from "./api.js";
import { allProducts } from "./lineup.js";
import { $, el } from "./util.js";
import { t } from "./i18n.js";

const SHOWN = 20; // recent buys listed
let role = null;
let settings = null;

export function init() {
  $("#ctb-form").addEventListener("submit", save);
  $("#ctb-add").addEventListener("click", () => addRow("", ""));
  document.addEventListener("products-changed", productOptions);
}

export async function reset(welcome, newRole) {
  role = newRole;
  $("#ctb-buys").replaceChildren();
  if (role !== "host") return;
  const data = await act(t("ctb.load"), () => api("GET", "/comment-to-buy"), null,
    { quiet: true });
  if (data) show(data);
}

export function refresh() {}

export function entry(e) {
  if (e.kind !== "comment_buy") return;
  const list = $("#ctb-buys");
  const what = [e.quantity && `${e.quantity} ×`, e.title || e.sku || e.product].filter(Boolean).join(" ");
  list.prepend(el("li", { dataset: { user: e.user || "" } },
    el("strong", {}, e.name || e.user || t("ctb.someone")), t("ctb.bought", { what }),
    e.sale ? el("span", { class: "meta" }, t("au.sale", { sale: e.sale })) : null));
  while (list.children.length > SHOWN) list.lastElementChild.remove();
}

export function tick() {}
export function second() {}

function show(data) {
  settings = data;
  $("#ctb-enabled").checked = Boolean(data.enabled);
  $("#ctb-keyword").value = data.keyword || "";
  $("#ctb-rows").replaceChildren();
  for (const [keyword, product] of Object.entries(data.keywords || {})) addRow(keyword, product);
  $("#ctb-state").textContent = data.enabled
    ? t("ctb.on", { keyword: data.keyword || "SOLD" })
    : t("ctb.off");
}

function productSelect(value) {
  const select = el("select", { name: "product", "aria-label": t("ctb.productLabel") },
    el("option", { value: "" }, t("ctb.product")),
    ...allProducts().map((p) => el("option", { value: p.id }, `${p.id} — ${p.title}`)));
  select.value = value;
  return select;
}

function addRow(keyword, product) {
  const row = el("div", { class: "ctb-row inline" },
    el("input", { name: "keyword", value: keyword, placeholder: "MUG", maxlength: 40,
      "aria-label": t("ctb.keywordLabel") }),
    productSelect(product),
    el("button", { type: "button", class: "remove", "aria-label": t("ctb.remove"),
      onclick: () => row.remove() }, "✕"));
  $("#ctb-rows").append(row);
}

function productOptions() {
  for (const select of /** @type {NodeListOf<HTMLSelectElement>} */ (document.querySelectorAll("#ctb-rows select"))) {
    select.replaceWith(productSelect(select.value));
  }
}

async function save(event) {
  event.preventDefault();
  const keywords = {};
  for (const row of document.querySelectorAll("#ctb-rows .ctb-row")) {
    const keyword = /** @type {HTMLInputElement} */ (row.querySelector("[name=keyword]")).value.trim();
    const product = /** @type {HTMLSelectElement} */ (row.querySelector("[name=product]")).value;
    if (keyword && product) keywords[keyword] = product;
  }
  const body = {
    ...settings,
    enabled: $("#ctb-enabled").checked,
    keyword: $("#ctb-keyword").value.trim(),
    keywords,
  };
  const saved = await act(t("ctb.saveAct"), () => api("PUT", "/comment-to-buy", body),
    event.currentTarget.querySelector("button[type=submit]"));
  if (saved) show(saved);
}
