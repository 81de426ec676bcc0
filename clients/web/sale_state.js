// One flash sale as one viewer sees it: a pure function from the sale (terms and stock, as
// the engine sends them), what this viewer holds and has ordered, and the server's clock to
// a state and what the sale card shows. No DOM, no I/O: app.js renders what it returns and
// tests/test_viewer_web.py runs it in the browser. Messages are catalog keys (i18n/en.js)
// with their variables, so the same answer reads in every language.
//
//   upcoming -> live -> reserved -> ordered -> paid ✓ -> limit reached
//                    \-> sold out (waitlist) -> waitlisted (#position)
//   ended (at ends_at, or stopped)
//
// Precedence, first match wins: reserved (an open hold of mine), ordered (an unpaid order of
// mine), ended, paid (my paid units reach the limit), limit (the engine said limit_reached,
// or my units reach it), upcoming, waitlisted, sold_out, live.

/** Order states whose units are bought. */
const BOUGHT = new Set(["paid", "fulfilled", "partially_refunded"]);

/**
 * @typedef {{reservation: string, sale: string, quantity: number, expires_at: number, order?: string | null}} Hold
 * @typedef {{id: string, state: string, expires_at: number, lines: {sale: string, quantity: number}[]}} Order
 * @typedef {{holds?: Hold[], orders?: Order[], limitHit?: {limit: number, holding: number} | null,
 *   waitlist?: number | null, signedIn?: boolean, listPrice?: number | null}} Mine
 * @typedef {{key: string, vars?: Record<string, string | number>}} Message
 * @typedef {{state: string, button: Message & {action: string, disabled: boolean}, status: Message | null,
 *   clock: {key: string, at: number} | null, timer: {key: string, at: number} | null, deal: {price: number, list: number | null, percent: number,
 *   left: number, units: number, low: boolean}, bought: number, held: number}} SaleView
 */

/**
 * @param {any} sale a sale object (docs/api.md#the-sale-object), stock as of the last tick
 * @param {Mine} mine this viewer's holds (not expired), orders (GET .../orders/mine), the last
 *   grab's limit_reached answer, waitlist position, whether signed in, the list price
 * @param {number} now the server's clock (ms)
 * @returns {SaleView}
 */
export function saleView(sale, mine, now) {
  const holds = (mine.holds || []).filter((h) => h.sale === sale.id && !h.order && h.expires_at > now);
  const units = (orders, states) => orders.filter((o) => states(o.state))
    .reduce((sum, o) => sum + o.lines.filter((l) => l.sale === sale.id).reduce((n, l) => n + l.quantity, 0), 0);
  const mineOrders = (mine.orders || []).filter((o) => o.lines.some((l) => l.sale === sale.id));
  const pending = mineOrders.filter((o) => o.state === "pending_payment");
  const bought = units(mineOrders, (s) => BOUGHT.has(s));
  const held = bought + units(pending, () => true) + holds.reduce((n, h) => n + h.quantity, 0);
  const limit = sale.limit || 1;
  const atLimit = held >= limit || (mine.limitHit ? mine.limitHit.holding >= limit : false);
  const available = Math.max(0, sale.available ?? 0);
  const total = sale.units || 0;
  const list = mine.listPrice && mine.listPrice > sale.price ? mine.listPrice : null;
  const deal = {
    price: sale.price, list, percent: list ? Math.round((100 * (list - sale.price)) / list) : 0,
    left: available, units: total, low: available > 0 && available <= Math.max(1, Math.ceil(total * 0.2)),
  };
  const ended = sale.state === "ended" || now >= sale.ends_at;
  const saleClock = ended ? null : now < sale.starts_at ? { key: "sale.startsIn", at: sale.starts_at }
    : { key: "sale.endsIn", at: sale.ends_at };
  /** the sale's own clock (starts in / ends in); `timer`: my hold's or my order's deadline */
  const view = (state, button, status = null, timer = null) => ({ state, button, status, clock: saleClock, timer, deal,
    bought, held });
  const off = (key, vars) => ({ key, vars, action: "none", disabled: true });

  if (holds.length) {
    const until = Math.min(...holds.map((h) => h.expires_at));
    return view("reserved", { key: "sale.checkout", action: "checkout", disabled: false },
      { key: "sale.reserved", vars: { count: holds.reduce((n, h) => n + h.quantity, 0) } },
      { key: "sale.holdLeft", at: until });
  }
  if (pending.length) {
    const until = Math.min(...pending.map((o) => o.expires_at));
    return view("ordered", { key: "sale.pay", action: "checkout", disabled: false },
      { key: "sale.ordered", vars: { order: pending[0].id } }, { key: "sale.payWithin", at: until });
  }
  if (ended) return view("ended", off("sale.ended"), bought ? { key: "sale.paid", vars: { count: bought } } : null);
  if (bought && atLimit) {
    return view("paid", off("sale.limitButton", { limit }), { key: "sale.paid", vars: { count: bought } });
  }
  if (atLimit) {
    return view("limit", off("sale.limitButton", { limit }), { key: "sale.limit", vars: { limit } });
  }
  const paidNote = bought ? { key: "sale.paid", vars: { count: bought } } : null;
  if (sale.state === "scheduled" || now < sale.starts_at) {
    return view("upcoming", off("sale.soon"), null);
  }
  if (!mine.signedIn) {
    return view(available ? "live" : "sold_out", off("sale.signIn"), null);
  }
  if (!available || sale.state === "sold_out") {
    if (mine.waitlist) {
      return view("waitlisted", off("sale.waitlistedButton", { position: mine.waitlist }),
        { key: "sale.waitlisted", vars: { position: mine.waitlist } });
    }
    return view("sold_out", { key: "sale.joinWaitlist", action: "waitlist", disabled: false },
      paidNote);
  }
  return view("live", { key: bought ? "sale.grabMore" : "sale.grab", action: "grab", disabled: false },
    paidNote);
}

