// Interactive selling on the viewer's page (issue 8): the giveaway card (countdown, enter or
// "comment the keyword", entered, the result and "you won" with checkout for a product
// prize), the auction card (price, leader, minimum bid, bid / custom bid with a proxy max,
// server-clock countdown, outbid and won, checkout of the won lot) and comment-to-buy's
// private replies as toasts (sold out: join the waitlist). Nothing shows while none is on.
import { $, el, lost, money } from "./util.js";

let C = null; // {viewer, room, token, api, now, hold, user(), sale(id), store}
const G = { list: new Map(), shown: null };
const A = { list: new Map(), shown: null };
const RESULT_MS = 60_000; // a closed giveaway or auction stays on screen this long

export function setup(ctx) {
  C = ctx;
  $("#gw-enter").addEventListener("click", enter);
  $("#au-bid").addEventListener("click", () => bid(A.list.get(A.shown)?.min_bid));
  $("#au-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const a = A.list.get(A.shown);
    const amount = minor($("#au-amount").value);
    const max = minor($("#au-max").value);
    bid(amount, Number.isFinite(max) ? max : undefined, a);
  });
  for (const b of [$("#gw-checkout"), $("#au-checkout")]) {
    b.addEventListener("click", () => $("#open-checkout").click());
  }
}

const minor = (text) => (String(text).trim() ? Math.round(Number(text) * 100) : NaN);

/** After a welcome: the open giveaways and auctions it carries (no API round trip: a
 * join storm must not become a read storm). */
export function welcome(w) {
  const keep = (old, x) => ({ ...old, ...x, keyword: x.keyword ?? old?.keyword }); // the entry has it
  for (const x of w.giveaways || []) G.list.set(x.id, keep(G.list.get(x.id), x));
  for (const x of w.auctions || []) A.list.set(x.id, { ...A.list.get(x.id), ...x });
  pickGiveaway(); pickAuction();
  render();
}

export function entry(e) {
  const k = e.kind;
  if (k === "giveaway_opened") {
    G.list.set(e.ref, { ...e, id: e.ref, winners_count: e.winners, state: "open", winners: null });
    G.shown = e.ref;
  } else if (k === "giveaway_closed" && G.list.has(e.ref)) {
    Object.assign(G.list.get(e.ref), { state: "closed", winners: e.winners, seed: e.seed,
      closed_at: e.closed_at, entrants_count: e.entrants });
  } else if (k === "auction_opened") {
    const { kind, ts, ref, ...wire } = e;
    A.list.set(ref, { price: e.start_price, bids: 0, leader: null, state: "open", ...wire, id: ref });
    A.shown = ref;
  } else if (k.startsWith("auction_") && A.list.has(e.ref || e.auction)) {
    const a = A.list.get(e.ref || e.auction);
    if (k === "auction_bid") {
      const wasMine = a.leader === C.user();
      Object.assign(a, { price: e.price, leader: e.leader, leader_name: e.leader_name,
        bids: e.bids, min_bid: e.min_bid, ends_at: e.ends_at ?? a.ends_at });
      if (wasMine && e.leader !== C.user()) a.note = `Outbid: now ${money(e.price, a.currency)}`;
      if (e.leader === C.user()) a.note = "You're the highest bidder";
    } else if (k === "auction_extended") {
      a.ends_at = e.ends_at;
      a.note = a.note || "Late bid: time extended";
    } else if (k === "auction_closed") {
      Object.assign(a, { state: "closed", winner: e.winner, winner_name: e.winner_name,
        price: e.price ?? a.price, closed_at: C.now() });
    }
  } else {
    return;
  }
  render();
}

/** Private notices addressed to this viewer. */
export function notice(f) {
  if (f.kind === "giveaway_won") {
    const g = G.list.get(f.giveaway) || { id: f.giveaway, title: f.title, prize: f.prize };
    g.won = f;
    G.list.set(g.id, g);
    G.shown = g.id;
    if (f.reservation) C.hold({ reservation: f.reservation, sale: f.sale, quantity: 1,
      expires_at: f.expires_at, price: f.price ?? 0, currency: f.currency || "USD",
      title: `${f.prize || f.title} (prize)` });
    render();
  } else if (f.kind === "giveaway_entered") { // entered by commenting the keyword
    C.store.set(`entered.${f.giveaway}`, true);
    render();
  } else if (f.kind === "giveaway_entry_refused" && f.giveaway === G.shown) {
    $("#gw-status").dataset.error = "1";
    $("#gw-status").textContent = f.message;
  } else if (f.kind === "auction_outbid" && A.list.has(f.auction)) {
    const a = A.list.get(f.auction);
    Object.assign(a, { price: f.price, min_bid: f.min_bid,
      note: `You were outbid: now ${money(f.price, a.currency)}` });
    render();
  } else if (f.kind === "auction_won" || f.kind === "auction_offer") {
    const a = A.list.get(f.auction) || { id: f.auction, title: f.auction, currency: f.currency };
    A.list.set(a.id, a);
    A.shown = a.id;
    a.won = f;
    a.note = f.kind === "auction_won" ? `You won at ${money(f.price, f.currency)}!`
      : `Second chance: it's yours at ${money(f.price, f.currency)}`;
    C.hold({ reservation: f.reservation, sale: f.sale, quantity: 1, expires_at: f.expires_at,
      price: f.price, currency: f.currency, title: a.title });
    render();
  } else if (f.kind === "comment_buy") {
    commentBuy(f);
  }
}


export function second() {
  if (G.shown || A.shown) render();
}

// ---- giveaway ----------------------------------------------------------------------------------
function pickGiveaway() {
  const all = [...G.list.values()];
  const open = all.filter((g) => g.state === "open" && g.ends_at > C.now());
  const recent = all.filter((g) => g.won || (g.state === "closed" && C.now() - g.closed_at < RESULT_MS));
  G.shown = (open.at(-1) || recent.at(-1) || {}).id || null;
}

function renderGiveaway() {
  let g = G.list.get(G.shown);
  if (g && !g.won && g.state === "closed" && C.now() - g.closed_at > RESULT_MS) { pickGiveaway(); g = G.list.get(G.shown); }
  const card = $("#giveaway");
  card.hidden = !g;
  if (!g) return;
  $("#gw-title").textContent = `Giveaway: ${g.title}`;
  $("#gw-prize").textContent = g.prize;
  const open = g.state === "open";
  const left = g.ends_at - C.now();
  $("#gw-clock").textContent = open ? (left > 0 ? `draw in ${clock(left)}` : "drawing…") : "drawn";
  const entered = C.store.get(`entered.${g.id}`, false);
  const button = $("#gw-enter");
  const status = $("#gw-status");
  button.hidden = !open || entered || (g.rule === "keyword" && !g.keyword);
  button.disabled = !C.token;
  button.textContent = !C.token ? "Sign in to enter" : g.rule === "keyword" ? `Comment “${g.keyword}”` : "Enter";
  $("#gw-checkout").hidden = !g.won?.reservation;
  card.dataset.state = g.won ? "won" : open ? (entered ? "entered" : "open") : "closed";
  if (g.won) {
    status.textContent = g.won.reservation ? `You won ${g.won.prize || g.prize}! Check out to claim it`
      : g.won.coupon ? `You won ${g.won.prize || g.prize}: it's in My coupons` : `You won ${g.won.prize || g.prize}!`;
  } else if (!open) {
    const n = (g.winners || []).length;
    status.textContent = (g.winners || []).includes(C.user()) ? "You won!"
      : `${n} winner${n === 1 ? "" : "s"} drawn${entered ? " · not this time" : ""}`;
  } else if (entered) {
    delete status.dataset.error;
    status.textContent = "You're in ✓ Good luck!";
  } else if (status.dataset.error) {
    // the engine's refusal stays until the next try
  } else if (g.rule === "keyword") {
    status.textContent = g.keyword ? `Comment “${g.keyword}” to enter` : "Comment the host's keyword to enter";
  } else if (g.rule === "watch") {
    status.textContent = `For viewers who watched ${Math.ceil((g.min_watch_s || 0) / 60)} min`;
  } else {
    status.textContent = "";
  }
}

async function enter() {
  const g = G.list.get(G.shown);
  if (!g) return;
  delete $("#gw-status").dataset.error;
  if (g.rule === "keyword") { // entered by commenting the keyword (as typing it would)
    $("#comment-input").value = g.keyword;
    $("#comment-form").requestSubmit();
    return;
  }
  const button = $("#gw-enter");
  button.disabled = true;
  const r = await C.api(C.room, C.token, "POST", `/giveaways/${g.id}/enter`, {});
  button.disabled = false;
  const status = $("#gw-status");
  if (r.ok) { delete status.dataset.error; C.store.set(`entered.${g.id}`, true); }
  else { status.dataset.error = "1"; status.textContent = r.body.error?.message || "Could not enter"; }
  render();
}

// ---- auction -----------------------------------------------------------------------------------
function pickAuction() {
  const all = [...A.list.values()];
  const open = all.filter((a) => a.state === "open");
  const recent = all.filter((a) => a.won || (a.state !== "open" && C.now() - (a.closed_at || 0) < RESULT_MS));
  A.shown = (open.at(-1) || recent.at(-1) || {}).id || null;
}

function renderAuction() {
  let a = A.list.get(A.shown);
  if (a && !a.won && a.state !== "open" && C.now() - (a.closed_at || 0) > RESULT_MS) { pickAuction(); a = A.list.get(A.shown); }
  const card = $("#auction");
  card.hidden = !a;
  if (!a) return;
  const cur = a.currency || "USD";
  const open = a.state === "open";
  const mine = a.leader && a.leader === C.user();
  $("#au-title").textContent = `Auction: ${a.title || a.sku}`;
  const left = a.ends_at - C.now();
  $("#au-clock").textContent = open ? (left > 0 ? `ends in ${clock(left)}` : "closing…") : "closed";
  $("#au-price").textContent = money(a.price ?? a.start_price, cur);
  $("#au-leader").textContent = a.leader ? `${mine ? "you" : a.leader_name || "someone"} · ${a.bids} bid${a.bids === 1 ? "" : "s"}`
    : "no bids yet";
  const bidButton = $("#au-bid");
  bidButton.hidden = !open;
  $("#au-form").hidden = !open || !C.token;
  bidButton.disabled = !C.token || mine;
  bidButton.textContent = !C.token ? "Sign in to bid" : mine ? "You're leading" : `Bid ${money(a.min_bid ?? a.start_price, cur)}`;
  const amount = $("#au-amount");
  if (document.activeElement !== amount) amount.placeholder = ((a.min_bid ?? a.start_price) / 100).toFixed(2);
  $("#au-checkout").hidden = !a.won;
  card.dataset.state = a.won ? "won" : mine ? "leading" : open ? "open" : "closed";
  let note = a.note || "";
  if (!open && !a.won) note = a.winner === C.user() ? "You won!" : a.winner ? `Sold to ${a.winner_name || "the top bidder"} at ${money(a.price, cur)}` : "Closed without bids";
  if (a.won) note = `${a.note} Check out before the timer ends`;
  $("#au-status").textContent = note;
}

async function bid(amount, max, a = A.list.get(A.shown)) {
  if (!a || !Number.isFinite(amount)) { $("#au-status").textContent = "Enter an amount"; return; }
  $("#au-bid").disabled = true;
  const cur = a.currency || "USD";
  try {
    const x = await C.viewer.bid(a.id, amount, { max });
    Object.assign(a, { price: x.price, min_bid: x.min_bid, ends_at: x.ends_at ?? a.ends_at });
    if (x.leader) { a.leader = C.user(); a.note = `You're leading at ${money(x.price, cur)}`; }
    else a.note = `Outbid at once: someone's max is higher (now ${money(x.price, cur)})`;
  } catch (error) {
    if (lost(error)) a.note = "Connection lost, try again";
    else {
      if (error.code === "bid_too_low" && error.details.min_bid) a.min_bid = error.details.min_bid;
      a.note = error.code === "bid_too_low" ? `Bid at least ${money(a.min_bid, cur)}` : error.detail;
    }
  }
  render();
}

// ---- comment-to-buy ----------------------------------------------------------------------------
function commentBuy(f) {
  const sale = C.sale(f.sale);
  if (f.reservation) {
    C.hold({ reservation: f.reservation, sale: f.sale, quantity: f.quantity || 1, expires_at: f.expires_at,
      price: f.price ?? sale?.price ?? 0, currency: f.currency || sale?.currency || "USD", title: f.title || sale?.title });
  }
  const actions = [];
  if (f.reservation) actions.push(el("button", { className: "primary", onclick: () => $("#open-checkout").click() }, "Check out"));
  if (f.status === "sold_out" && f.sale && f.waitlist !== false) {
    const join = el("button", { className: "join" }, "Join waitlist");
    join.onclick = async () => {
      try {
        join.replaceWith(`On the waitlist: #${await C.viewer.waitlist(f.sale)}`);
      } catch (error) {
        join.replaceWith(lost(error) ? "Try again" : error.detail);
      }
    };
    actions.push(join);
  }
  toast(f.message || f.status, f.status, actions);
}

export function toast(text, status, actions = []) {
  const box = $("#toasts");
  const t = el("div", { className: "toast", role: "status", dataset: { status: status || "" } },
    el("span", {}, text), ...actions,
    el("button", { className: "x", ariaLabel: "Dismiss", onclick: () => t.remove() }, "✕"));
  box.append(t);
  while (box.childElementCount > 3) box.firstElementChild.remove();
  setTimeout(() => t.remove(), actions.length ? 20_000 : 6000);
}

// ---- shared ------------------------------------------------------------------------------------
function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function render() { renderGiveaway(); renderAuction(); }
