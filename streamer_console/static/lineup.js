// Run-of-show: the room's products in show order (GET .../products), reordering by
// buttons, Alt+arrows or drag and drop (PUT .../lineup), "present now" (PUT .../pinned-product), next/previous shortcuts, and a
// product create form (POST .../products). Kept live by product_* and lineup_changed entries.

import { act, api } from "./api.js";
import * as images from "./images.js";
import {
  $, actionButton, amountHint, amountOf, el, fieldError, money, showRefusal, toMajorText, typingIn,
} from "./util.js";
import { t } from "./i18n.js";

let products = [];
let pinned = null;
let role = null;
let loading = 0;
let requested = null; // the product a pending "present" asks for: next/previous step from it

export const allProducts = () => products;

function changed() {
  render();
  document.dispatchEvent(new CustomEvent("products-changed"));
}

export function init() {
  $("#product-form").addEventListener("submit", saveProduct);
  $("#product-cancel").addEventListener("click", () => editProduct(null));
  $("#add-sku").addEventListener("click", () => $("#sku-rows").append(skuRow()));
  $("#sku-rows").append(skuRow());
  images.init();
  images.showInForm(null);
  document.addEventListener("keydown", shortcut);
}

export async function reset(welcome, newRole) {
  role = newRole;
  pinned = welcome.room.pinned_product;
  const ticket = ++loading;
  const data = await act(t("lineup.load"), () => api("GET", "/products"), null, { quiet: true });
  if (data && ticket === loading) {
    products = data.products;
    changed();
  }
}

export function entry(e) {
  if (e.kind === "product_updated" || e.kind === "product_pinned") {
    const product = { id: e.ref, title: e.title, description: e.description, images: e.images,
      currency: e.currency, skus: e.skus };
    const index = products.findIndex((p) => p.id === e.ref);
    if (index >= 0) products[index] = { ...products[index], ...product };
    else products.push({ ...product, impressions: 0 });
    if (e.kind === "product_pinned") pinned = e.ref;
    changed();
  } else if (e.kind === "product_unpinned") {
    pinned = null;
    render();
  } else if (e.kind === "lineup_changed") {
    reorderTo(e.products);
  }
}

export function tick() {}
export function refresh() {}
export function second() {}

function reorderTo(ids) {
  const byId = new Map(products.map((p) => [p.id, p]));
  const ordered = ids.map((id) => byId.get(id)).filter(Boolean);
  products = [...ordered, ...products.filter((p) => !ids.includes(p.id))];
  changed();
}

// ---- rendering ------------------------------------------------------------------------------

function priceRange(product) {
  const prices = product.skus.map((s) => s.list_price);
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  const text = money(low, product.currency);
  return low === high ? text : `${text} – ${money(high, product.currency)}`;
}

function row(product, index) {
  const isHost = role === "host";
  const live = product.id === pinned;
  const item = el(
    "li",
    { class: live ? "product pinned" : "product", tabindex: 0, dataset: { id: product.id } },
    el("span", { class: "pos" }, String(index + 1)),
    images.thumb(product.images?.[0]),
    el(
      "div",
      { class: "product-info" },
      el("strong", { class: "title" }, product.title),
      el("span", { class: "meta" },
        t("lineup.meta", { id: product.id, skus: product.skus.length, price: priceRange(product) })),
      live ? el("span", { class: "badge live" }, t("lineup.onScreen")) : null,
    ),
    isHost
      ? el(
          "div",
          { class: "row-actions" },
          el("span", { class: "move" }, // ▲ over ▼: the title keeps the row's width
            actionButton("▲", "up", (b) => move(product.id, -1, b), { title: t("lineup.upTitle"),
              "aria-label": t("lineup.upLabel", { title: product.title }), disabled: index === 0 }),
            actionButton("▼", "down", (b) => move(product.id, 1, b), { title: t("lineup.downTitle"),
              "aria-label": t("lineup.downLabel", { title: product.title }), disabled: index === products.length - 1 })),
          actionButton(t("lineup.edit"), "edit", () => editProduct(product),
            { "aria-label": t("lineup.editLabel", { title: product.title }) }),
          actionButton(live ? t("lineup.unpin") : t("lineup.present"), live ? "present" : "present primary",
            (b) => present(product.id, b)),
        )
      : null,
  );
  item.addEventListener("keydown", (event) => rowKey(event, product.id));
  if (isHost) draggable(item, product.id);
  return item;
}

/** Drag a row onto another to move it there (hosts; buttons and Alt+↑↓ do the same). */
function draggable(item, id) {
  item.draggable = true;
  item.addEventListener("dragstart", (event) => {
    event.dataTransfer.setData("text/x-livecart-product", id);
    event.dataTransfer.effectAllowed = "move";
    item.classList.add("dragging");
  });
  item.addEventListener("dragend", () => item.classList.remove("dragging"));
  item.addEventListener("dragover", (event) => {
    if (!event.dataTransfer.types.includes("text/x-livecart-product")) return;
    event.preventDefault();
    item.classList.add("drop-target");
  });
  item.addEventListener("dragleave", () => item.classList.remove("drop-target"));
  item.addEventListener("drop", (event) => {
    event.preventDefault();
    item.classList.remove("drop-target");
    const dragged = event.dataTransfer.getData("text/x-livecart-product");
    const ids = products.map((p) => p.id);
    const delta = ids.indexOf(id) - ids.indexOf(dragged);
    if (dragged && delta !== 0) move(dragged, delta);
  });
}

function render() {
  const list = $("#lineup");
  const focused = /** @type {HTMLElement | null} */ (document.activeElement && document.activeElement.closest("#lineup li"));
  const focusId = focused && focused.dataset.id;
  list.replaceChildren(...products.map(row));
  $("#lineup-empty").hidden = products.length > 0;
  if (focusId) {
    const again = list.querySelector(`li[data-id="${focusId}"]`);
    if (again) again.focus();
  }
}

// ---- actions --------------------------------------------------------------------------------

/** Move product `id` by `delta` places and save the whole order. */
async function move(id, delta, button) {
  const ids = products.map((p) => p.id);
  const from = ids.indexOf(id);
  const to = from + delta;
  if (from < 0 || to < 0 || to >= ids.length) return;
  ids.splice(to, 0, ids.splice(from, 1)[0]);
  const done = await act(t("lineup.move", { id, n: to + 1 }), () => api("PUT", "/lineup", { products: ids }), button);
  if (done) reorderTo(done.products);
}

let presenting = Promise.resolve(); // presents run one at a time, in the order asked for

/** Present `id` (or unpin it if it is the live one). Calls queue behind each other, so
 * "[" "[" pressed fast lands two products back, whatever order the requests would finish in. */
function present(id, button) {
  requested = id;
  const run = presenting.then(() => presentNow(id, button));
  presenting = run.catch(() => {});
  return run;
}

async function presentNow(id, button) {
  if (id === pinned) {
    const done = await act(t("lineup.unpinAct", { id }), () => api("DELETE", "/pinned-product"), button);
    if (requested === id) requested = null;
    if (done) {
      pinned = null;
      render();
    }
    return;
  }
  const done = await act(t("lineup.presentAct", { id }), () => api("PUT", "/pinned-product", { product_id: id }), button);
  if (requested === id) requested = null;
  if (done) {
    pinned = done.pinned_product;
    render();
  }
}

/** Present the next (+1) or previous (-1) product of the lineup. */
function step(delta) {
  if (role !== "host" || products.length === 0) return;
  const from = requested || pinned;
  const index = products.findIndex((p) => p.id === from);
  const next = index < 0 ? (delta > 0 ? 0 : products.length - 1) : index + delta;
  if (next < 0 || next >= products.length) return;
  present(products[next].id);
}

function rowKey(event, id) {
  if (role !== "host") return;
  if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    move(id, event.key === "ArrowUp" ? -1 : 1);
  } else if (event.key === "Enter" && event.target === event.currentTarget) {
    event.preventDefault();
    present(id);
  }
}

function shortcut(event) {
  if (typingIn(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("#console").hidden || document.querySelector("dialog[open]")) return;
  if (event.key === "]" || event.key === "n") step(1);
  else if (event.key === "[" || event.key === "p") step(-1);
}

// ---- product form ---------------------------------------------------------------------------

let editing = null; // the id of the product the form edits, or null: a new product

function skuRow(sku = null, currency = "USD") {
  const attrs = sku ? Object.entries(sku.attrs || {}).map(([k, v]) => `${k}=${v}`).join(", ") : "";
  return el(
    "div",
    { class: "sku-row" },
    el("input", { name: "sku", placeholder: t("product.skuCode"), required: true, "aria-label": t("product.skuCode"),
      value: sku ? sku.sku : "" }),
    el("input", { name: "price", placeholder: t("product.price"), inputmode: "decimal", required: true,
      "aria-label": t("product.listPrice"), value: sku ? toMajorText(sku.list_price, currency) : "" }),
    el("input", { name: "attrs", placeholder: t("product.attrsPlaceholder"), "aria-label": t("product.attrs"),
      value: attrs }),
  );
}

/** Open the form on `product` to change it (PATCH), or back on a new one (null). */
function editProduct(product) {
  editing = product ? product.id : null;
  const form = $("#product-form");
  form.reset();
  if (product) {
    form.elements.namedItem("title").value = product.title;
    form.elements.namedItem("currency").value = product.currency;
    form.elements.namedItem("description").value = product.description || "";
  }
  const rows = product ? product.skus.map((s) => skuRow(s, product.currency)) : [skuRow()];
  $("#sku-rows").replaceChildren(...rows);
  images.showInForm(product?.images?.[0]);
  $("#product-editor-title").textContent = product ? t("product.editTitle", { id: product.id, title: product.title }) : t("product.new");
  $("#product-save").textContent = product ? t("product.save") : t("product.create");
  $("#product-cancel").hidden = !product;
  if (product) {
    $("#product-editor").open = true;
    form.elements.namedItem("title").focus();
  }
}

function parseAttrs(text) {
  const attrs = {};
  for (const pair of text.split(",")) {
    const [name, ...rest] = pair.split("=");
    if (name.trim() && rest.length) attrs[name.trim()] = rest.join("=").trim();
  }
  return attrs;
}

/** The engine's largest list price (engine/commerce/catalog.py MAX_PRICE), in minor units. */
const MAX_PRICE = 10 ** 12;

/** The form's input for an engine field name: "title", "skus[1].list_price", "skus[0].sku". */
function productField(form, rows, name) {
  const sku = /^skus\[(\d+)\](?:\.(\w+))?/.exec(name);
  if (sku) {
    const row = rows[Number(sku[1])];
    const column = { list_price: "price", sku: "sku", attrs: "attrs" }[sku[2] || "sku"] || "sku";
    return row ? row.querySelector(`[name=${column}]`) : null;
  }
  const input = form.elements.namedItem(name.split(".")[0]);
  return input instanceof HTMLElement ? input : null;
}

async function saveProduct(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const field = (name) => form.elements.namedItem(name).value.trim();
  const currency = field("currency").toUpperCase();
  const rows = [...form.querySelectorAll(".sku-row")];
  for (const input of form.querySelectorAll("[aria-invalid]")) fieldError(input, null);
  const skus = rows.map((r) => ({
    sku: r.querySelector("[name=sku]").value.trim(),
    list_price: amountOf(r.querySelector("[name=price]"), currency, { what: t("what.price") }),
    attrs: parseAttrs(r.querySelector("[name=attrs]").value),
  }));
  const file = images.chosenImage();
  const bad = form.querySelector("[aria-invalid=true]");
  if (bad) {
    bad.focus(); // the reason is next to it; nothing is sent
    return;
  }
  const body = { title: field("title"), currency, skus };
  const description = field("description");
  if (description || editing) body.description = description;
  const id = editing;
  // An engine refusal naming a field ("skus[1].list_price") is shown next to that field.
  const send = (method, path) => async () => {
    const pictures = await images.imagesFor(products.find((p) => p.id === id), file || null);
    if (pictures !== undefined) body.images = pictures;
    try {
      return await api(method, path, body);
    } catch (error) {
      showRefusal(error, (name) => productField(form, rows, name), (name) =>
        name.endsWith("list_price") ? t("product.priceMax", { hint: amountHint(currency, t("what.price")), max: toMajorText(MAX_PRICE, currency) }) : null);
      throw error;
    }
  };
  const saved = id
    ? await act(t("product.saveAct", { title: body.title }), send("PATCH", `/products/${id}`), $("#product-save"))
    : await act(t("product.createAct", { title: body.title }), send("POST", "/products"), $("#product-save"));
  if (saved) {
    const at = products.findIndex((p) => p.id === saved.id);
    if (at >= 0) products[at] = { ...products[at], ...saved };
    else products.push({ ...saved, impressions: 0 });
    changed();
    editProduct(null);
  }
}
