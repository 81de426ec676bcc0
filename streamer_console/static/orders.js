// Orders to review: high-value orders the risk rules flagged (GET .../orders?review=flagged),
// with approve (host) and cancel while unpaid (host or moderator). Orders are not in the room's ticks, so
// the list is polled every POLL_MS while signed in.

import { act, api } from "./api.js";
import { $, actionButton, confirmAction, el, money, poller } from "./util.js";

const POLL_MS = 5000;
// A flagged order stays flagged when it is cancelled or expires; only open ones need a look.
const OPEN = ["pending_payment", "paid", "partially_refunded"];

let role = null;
const polling = poller(() => load(), POLL_MS);
let failedOnce = false;

export function init() {
  $("#orders-refresh").addEventListener("click", (ev) => load(ev.currentTarget));
}

export function reset(welcome, newRole) {
  role = newRole;
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
  const work = () => api("GET", "/orders?review=flagged");
  let data;
  if (button === null && failedOnce) {
    data = await work().catch(() => undefined); // reported once already; keep polling quietly
  } else {
    data = await act("Load orders to review", work, button, { quiet: button === null });
  }
  failedOnce = data === undefined;
  if (data) render(data.orders.filter((o) => OPEN.includes(o.state)));
}

function render(orders) {
  $("#orders").replaceChildren(...orders.map(row));
  $("#orders-count").textContent = orders.length ? String(orders.length) : "";
  $("#orders-empty").hidden = orders.length > 0;
}

function row(order) {
  const lines = order.lines.map((l) => `${l.quantity} × ${l.title}`).join(", ");
  return el(
    "li",
    { class: "order", dataset: { id: order.id } },
    el("div", {},
      el("strong", {}, money(order.pricing.total, order.currency)), " ",
      el("span", { class: "meta" }, `${order.id} · ${order.user} · ${order.state.replace("_", " ")}`)),
    el("div", { class: "meta" }, lines),
    el("div", { class: "row-actions" },
      role === "host"
        ? actionButton("Approve", "approve primary", (b) => approve(order, b))
        : null,
      order.state === "pending_payment" // only unpaid orders can be cancelled
        ? actionButton("Cancel", "cancel danger", (b) => cancel(order, b))
        : null),
  );
}

async function approve(order, button) {
  const done = await act(`Approve ${order.id}`, () => api("POST", `/orders/${order.id}/approve`), button);
  if (done) load();
}

async function cancel(order, button) {
  const total = money(order.pricing.total, order.currency);
  const question = `Cancel order ${order.id} of ${order.user} (${total})?`;
  if (!(await confirmAction(question, "Cancel order"))) return;
  const done = await act(`Cancel ${order.id}`, () => api("POST", `/orders/${order.id}/cancel`), button);
  if (done) load();
}
