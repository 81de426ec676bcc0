// Orders: every order of the show (GET .../orders), newest first, with filter chips, a search
// box and, per order, the host's actions (refund in full or in part, mark fulfilled, approve a
// flagged order) and cancel while unpaid (host or moderator). On top, the review queue: the
// open orders the risk rules flagged, with Approve. Orders are not in the room's ticks, so the
// list is polled every POLL_MS while signed in; an order that lands paid flashes in.

import { act, api, apiBlob } from "./api.js";
import { toMinor } from "/sdk/index.js";
import { $, actionButton, confirmAction, el, money, poller } from "./util.js";
import { clockTime, count, label, t } from "./i18n.js";

const POLL_MS = 3000;
const FLASH_MS = 2500;
// A flagged order stays flagged when it is cancelled or expires; only open ones need a look.
const OPEN = ["pending_payment", "paid", "partially_refunded"];
const PAID = ["paid", "fulfilled", "partially_refunded"];
const REFUNDABLE = ["paid", "fulfilled", "partially_refunded"];
const FILTERS = {
  all: () => true,
  to_pay: (o) => o.state === "pending_payment",
  paid: (o) => o.state === "paid" || o.state === "fulfilled",
  flagged: (o) => o.review === "flagged",
  refunded: (o) => o.state === "refunded" || o.state === "partially_refunded",
  cancelled: (o) => o.state === "cancelled" || o.state === "expired",
};

let role = null;
let room = "";
const polling = poller(() => load(), POLL_MS);
let failedOnce = false;
let all = [];
let filter = "all";
/** order id -> state at the last load (null before the first load: nothing flashes then). */
let seen = null;
const flashing = new Map(); // order id -> time its flash ends
const openRefund = new Set(); // orders whose refund form is open

export function init() {
  $("#orders-refresh").addEventListener("click", (ev) => load(ev.currentTarget));
  $("#orders-export").addEventListener("click", (ev) => exportCsv(ev.currentTarget));
  $("#orders-expand").addEventListener("click", (ev) => fullView(ev.currentTarget.getAttribute("aria-pressed") !== "true"));
  /** @type {NodeListOf<HTMLElement>} */
  const chips = document.querySelectorAll(".order-filters .chip");
  for (const chip of chips) {
    chip.addEventListener("click", () => {
      filter = chip.dataset.filter;
      for (const other of chips) {
        other.setAttribute("aria-pressed", String(other === chip));
      }
      renderList();
    });
  }
  $("#order-search").addEventListener("input", () => renderList());
}

export function reset(welcome, newRole) {
  role = newRole;
  room = welcome?.room?.id ?? "";
  all = [];
  seen = null;
  flashing.clear();
  openRefund.clear();
  polling.start();
}

export function refresh() {
  load();
}

export function entry() {}
export function tick() {}
export function second() {}

/** Stop polling (signed out). */
export function stop() {
  polling.stop();
}

async function load(button = null) {
  const work = () => api("GET", "/orders");
  let data;
  if (button === null && failedOnce) {
    data = await work().catch(() => undefined); // reported once already; keep polling quietly
  } else {
    data = await act(t("orders.load"), work, button, { quiet: button === null });
  }
  failedOnce = data === undefined;
  if (data) show(data.orders);
}

function show(orders) {
  all = [...orders].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  const now = Date.now();
  if (seen !== null) {
    for (const order of all) {
      const before = seen.get(order.id);
      if (order.state === "paid" && before !== "paid") flashing.set(order.id, now + FLASH_MS);
    }
  }
  seen = new Map(all.map((o) => [o.id, o.state]));
  renderQueue(all.filter((o) => o.review === "flagged" && OPEN.includes(o.state)));
  renderList();
}

// ---- the review queue -----------------------------------------------------------------------

function renderQueue(orders) {
  $("#orders").replaceChildren(...orders.map(queueRow));
  $("#orders-count").textContent = orders.length ? String(orders.length) : "";
  $("#orders-empty").hidden = orders.length > 0;
}

function queueRow(order) {
  return el(
    "li",
    { class: "order", dataset: { id: order.id } },
    el("div", {},
      el("strong", {}, money(order.pricing.total, order.currency)), " ",
      el("span", { class: "meta" }, `${order.id} · ${order.user} · ${label("order.state", order.state)}`)),
    el("div", { class: "meta" }, items(order)),
    el("div", { class: "row-actions" },
      role === "host"
        ? actionButton(t("orders.approve"), "approve primary", (b) => approve(order, b))
        : null,
      order.state === "pending_payment" // only unpaid orders can be cancelled
        ? actionButton(t("orders.cancel"), "cancel danger", (b) => cancel(order, b))
        : null),
  );
}

// ---- every order ------------------------------------------------------------------------------

const items = (order) => order.lines.map((l) => `${l.title} × ${l.quantity}`).join(", ");
const buyer = (order) => order.shipping_address?.name || order.contact?.name || "";

function matches(order, text) {
  if (!text) return true;
  const hay = [order.id, order.user, buyer(order), ...order.lines.map((l) => `${l.title} ${l.sku}`)];
  return hay.join("\n").toLowerCase().includes(text);
}

function renderList() {
  const text = $("#order-search").value.trim().toLowerCase();
  const shown = all.filter((o) => FILTERS[filter](o) && matches(o, text));
  $("#order-list").replaceChildren(...shown.map(orderRow));
  const paid = all.filter((o) => PAID.includes(o.state)).length;
  $("#order-total").textContent = all.length ? t("orders.total", { n: all.length, paid }) : "";
  const empty = $("#order-list-empty");
  empty.hidden = shown.length > 0;
  empty.textContent = all.length ? t("orders.noMatch") : t("orders.none");
}

const time = clockTime;

function orderRow(order) {
  const flashEnds = flashing.get(order.id);
  const flash = flashEnds !== undefined && flashEnds > Date.now();
  if (!flash) flashing.delete(order.id);
  const name = buyer(order);
  const coupons = order.coupons.length ? t("orders.coupon", { codes: order.coupons.join(", ") }) : "";
  const refunded = order.refunded ? t("orders.refunded", { amount: money(order.refunded, order.currency) }) : "";
  const about = [order.id, order.paid_at ? t("orders.paidAt", { time: time(order.paid_at) }) : t("orders.notPaid"), coupons, refunded]
    .filter(Boolean).join(" · ");
  return el(
    "li",
    { class: `order${flash ? " flash" : ""}`, title: about, dataset: { id: order.id, state: order.state } },
    el("div", { class: "order-head" },
      el("span", { class: "meta time" }, time(order.created_at)),
      el("span", { class: "who" }, name ? `${name} (${order.user})` : order.user),
      el("strong", { class: "total" }, money(order.pricing.total, order.currency)),
      el("span", { class: "order-state", dataset: { state: order.state } },
        label("order.state", order.state)),
      order.review === "flagged" ? el("span", { class: "order-flag", title: t("orders.flaggedTitle") }, t("orders.flagged")) : null),
    el("div", { class: "meta items", title: items(order) }, items(order)),
    el("div", { class: "order-foot" },
      el("span", { class: "meta about" }, about),
      actions(order)),
  );
}

function actions(order) {
  const host = role === "host";
  const box = el("div", { class: "row-actions" },
    host && order.review === "flagged"
      ? actionButton(t("orders.approve"), "approve primary", (b) => approve(order, b))
      : null,
    host && order.state === "paid" && order.review !== "flagged"
      ? actionButton(t("orders.markFulfilled"), "fulfill", (b) => fulfill(order, b))
      : null,
    host && REFUNDABLE.includes(order.state) && order.refunded < order.pricing.total
      ? actionButton(t("orders.refundOpen"), "refund", () => toggleRefund(order))
      : null,
    order.state === "pending_payment"
      ? actionButton(t("orders.cancel"), "cancel danger", (b) => cancel(order, b))
      : null);
  if (host && openRefund.has(order.id) && REFUNDABLE.includes(order.state)) box.append(refundForm(order));
  return box;
}

function toggleRefund(order) {
  if (openRefund.has(order.id)) openRefund.delete(order.id);
  else openRefund.add(order.id);
  renderList();
  $(`#order-list li[data-id="${order.id}"] .refund-amount`)?.focus();
}

function refundForm(order) {
  const left = order.pricing.total - order.refunded;
  const input = el("input", {
    class: "refund-amount", inputmode: "decimal", "aria-label": t("orders.refundAmount"),
    placeholder: t("orders.refundAll", { amount: money(left, order.currency) }),
  });
  const reason = el("input", { class: "refund-reason", maxlength: 200,
    "aria-label": t("orders.refundReason"), placeholder: t("orders.refundReasonHint") });
  // Units go back on sale once: offered while no refund of the order has restocked any.
  const restockable = order.refunds.every((r) => !r.restocked);
  const restock = el("input", { class: "refund-restock", type: "checkbox" });
  return el("form", { class: "refund-form", onsubmit: (ev) => {
    ev.preventDefault();
    refund(order, { amount: input.value, reason: reason.value.trim(), restock: restock.checked },
      ev.currentTarget.querySelector("button"));
  } },
    input,
    reason,
    restockable ? el("label", { class: "meta" }, restock, " ", t("orders.restock")) : null,
    el("button", { type: "submit", class: "danger do-refund" }, t("orders.refund")));
}

async function refund(order, { amount: text, reason, restock }, button) {
  const left = order.pricing.total - order.refunded;
  const amount = text.trim() === "" ? left : toMinor(text, order.currency);
  if (!Number.isInteger(amount) || amount < 1) {
    await act(t("orders.refundAct", { id: order.id }), () => Promise.reject(new Error(t("orders.notAmount", { text }))));
    return;
  }
  const full = amount === left && order.refunded === 0;
  const units = order.lines.reduce((sum, line) => sum + line.quantity, 0);
  const question = t(full ? "orders.refundFull" : "orders.refundPart", { amount: money(amount, order.currency), id: order.id, user: order.user })
    + (restock ? ` ${t("orders.restockQuestion", { count: units, n: count(units) })}` : "");
  if (!(await confirmAction(question, t("orders.refund")))) return;
  const id = `rf-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const body = { id, amount, ...(reason ? { reason } : {}),
    ...(restock ? { restock: order.lines.map((line) => line.reservation) } : {}) };
  const done = await act(t("orders.refundMoneyAct", { amount: money(amount, order.currency), id: order.id }),
    () => api("POST", `/orders/${order.id}/refund`, body), button);
  if (done) {
    openRefund.delete(order.id);
    load();
  }
}

async function fulfill(order, button) {
  const question = t("orders.fulfilQuestion", { id: order.id, user: order.user });
  if (!(await confirmAction(question, t("orders.markFulfilled"), { danger: false }))) return;
  const done = await act(t("orders.fulfilAct", { id: order.id }), () => api("POST", `/orders/${order.id}/fulfill`), button);
  if (done) load();
}

async function approve(order, button) {
  const done = await act(t("orders.approveAct", { id: order.id }), () => api("POST", `/orders/${order.id}/approve`), button);
  if (done) load();
}

async function cancel(order, button) {
  const total = money(order.pricing.total, order.currency);
  const question = t("orders.cancelQuestion", { id: order.id, user: order.user, total });
  if (!(await confirmAction(question, t("orders.cancelOrder")))) return;
  const done = await act(t("orders.cancelAct", { id: order.id }), () => api("POST", `/orders/${order.id}/cancel`), button);
  if (done) load();
}

/** Save the room's orders CSV (GET .../report/orders.csv) as `{room}-orders.csv`. */
function exportCsv(button) {
  act(t("download", { file: "orders.csv" }), async () => {
    const blob = await apiBlob("/report/orders.csv", "text/csv");
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${room || "room"}-orders.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    return url;
  }, button);
}

/** The orders over the whole screen (a row per order, every field in full), or back to the show. */
export function fullView(open) {
  if (open) document.body.dataset.view = "orders";
  else if (document.body.dataset.view === "orders") delete document.body.dataset.view;
  const button = $("#orders-expand");
  button.setAttribute("aria-pressed", String(open));
  button.textContent = open ? t("dashboard.back") : t("orders.fullView");
}
