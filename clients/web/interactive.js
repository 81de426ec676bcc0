// Interactive selling on the viewer's page (issue 8): the giveaway card (countdown, enter or
// "comment the keyword", entered, the result and "you won" with checkout for a product
// prize), the auction card (price, leader, minimum bid, bid / custom bid with a proxy max,
// server-clock countdown, outbid and won, checkout of the won lot) and comment-to-buy's
// private replies as toasts (sold out: join the waitlist). Nothing shows while none is on.
// Every string comes from the catalogs (ix.* keys, i18n.js); money by the currency's own
// digits; bids are typed in major units ("1500" yen, "129.50" dollars).
import { currencyDigits, toMajorText, toMinor } from "/sdk/index.js";
import { count, language, t } from "./i18n.js";
import { $, clock, el, lost, money, tOr } from "./util.js";

let C = null; // {viewer, room, token, api, now, hold, user(), sale(id), store}
const G = { list: new Map(), shown: null };
const A = { list: new Map(), shown: null };
const RESULT_MS = 60_000; // a closed giveaway or auction stays on screen this long

export function setup(ctx) {
  C = ctx;
  $("#gw-enter").addEventListener("click", enter);
  $("#au-bid").addEventListener("click", () => {
    const a = A.list.get(A.shown);
    if (a) bid(a.min_bid ?? a.start_price, undefined, a);
  });
  $("#au-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const a = A.list.get(A.shown);
    if (!a) return;
    const typed = read($("#au-amount").value, a);
    const max = $("#au-max").value.trim() ? read($("#au-max").value, a, "ix.auction.badMax") : undefined;
    if (typeof typed === "string" || typeof max === "string") { // refused here: nothing is sent
      a.note = typeof typed === "string" ? typed : max;
      renderAuction();
      return;
    }
    bid(typed, max, a);
  });
  for (const b of [$("#gw-checkout"), $("#au-checkout")]) {
    b.addEventListener("click", () => $("#open-checkout").click());
  }
}

/** A typed amount in major units ("1,500", "129.50") as minor units, or why it is not one
 * (a message for the card). */
function read(text, a, badKey = "ix.auction.badAmount") {
  const c = cur(a);
  if (!String(text).trim()) return t("ix.auction.enterAmount");
  const minor = toMinor(text, c);
  if (Number.isFinite(minor)) return minor;
  const example = toMajorText(a.min_bid ?? a.start_price ?? 0, c);
  const digits = currencyDigits(c);
  return t(digits === 0 ? `${badKey}Whole` : badKey, { currency: currencyName(c), example, count: digits, digits: count(digits) });
}

function currencyName(currency) {
  try {
    return new Intl.DisplayNames(language(), { type: "currency" }).of(currency) || currency;
  } catch {
    return currency;
  }
}

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
      if (wasMine && e.leader !== C.user()) a.note = t("ix.auction.outbidNow", { price: money(e.price, cur(a)) });
      if (e.leader === C.user()) a.note = t("ix.auction.highest");
    } else if (k === "auction_extended") {
      a.ends_at = e.ends_at;
      a.note = a.note || t("ix.auction.extended");
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
      title: t("ix.gw.prizeTitle", { prize: f.prize || f.title }) });
    render();
  } else if (f.kind === "giveaway_entered") { // entered by commenting the keyword
    C.store.set(`entered.${f.giveaway}`, true);
    render();
  } else if (f.kind === "giveaway_entry_refused" && f.giveaway === G.shown) {
    $("#gw-status").dataset.error = "1";
    $("#gw-status").textContent = refusal("ix.gw.err", f, f.message);
  } else if (f.kind === "auction_outbid" && A.list.has(f.auction)) {
    const a = A.list.get(f.auction);
    Object.assign(a, { price: f.price, min_bid: f.min_bid,
      note: t("ix.auction.youWereOutbid", { price: money(f.price, cur(a)) }) });
    render();
  } else if (f.kind === "auction_won" || f.kind === "auction_offer") {
    const a = A.list.get(f.auction) || { id: f.auction, title: f.auction, currency: f.currency };
    A.list.set(a.id, a);
    A.shown = a.id;
    a.won = f;
    a.note = t(f.kind === "auction_won" ? "ix.auction.wonAt" : "ix.auction.secondChance",
      { price: money(f.price, f.currency) });
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
  put("#gw-title", t("ix.gw.title", { title: g.title }));
  put("#gw-prize", g.prize ?? "");
  put("#gw-checkout", t("ix.gw.checkout"));
  const open = g.state === "open";
  const left = g.ends_at - C.now();
  put("#gw-clock", open ? (left > 0 ? t("ix.gw.drawIn", { time: clock(left) }) : t("ix.gw.drawing")) : t("ix.gw.drawn"));
  const entered = C.store.get(`entered.${g.id}`, false);
  const button = $("#gw-enter");
  const status = $("#gw-status");
  button.hidden = !open || entered || (g.rule === "keyword" && !g.keyword);
  button.disabled = !C.token;
  put("#gw-enter", !C.token ? t("ix.gw.signIn") : g.rule === "keyword" ? t("ix.gw.commentKeyword", { keyword: g.keyword })
    : t("ix.gw.enter"));
  $("#gw-checkout").hidden = !g.won?.reservation;
  card.dataset.state = g.won ? "won" : open ? (entered ? "entered" : "open") : "closed";
  if (g.won) {
    const prize = g.won.prize || g.prize;
    put("#gw-status", t(g.won.reservation ? "ix.gw.wonCheckout" : g.won.coupon ? "ix.gw.wonCoupon" : "ix.gw.wonPrize",
      { prize }));
  } else if (!open) {
    const n = (g.winners || []).length;
    const drawn = t("ix.gw.winnersDrawn", { count: n, n: count(n) });
    put("#gw-status", (g.winners || []).includes(C.user()) ? t("ix.gw.youWon")
      : entered ? t("ix.gw.notThisTime", { drawn }) : drawn);
  } else if (entered) {
    delete status.dataset.error;
    put("#gw-status", t("ix.gw.entered"));
  } else if (status.dataset.error) {
    // the engine's refusal stays until the next try
  } else if (g.rule === "keyword") {
    put("#gw-status", g.keyword ? t("ix.gw.commentToEnter", { keyword: g.keyword }) : t("ix.gw.commentHostKeyword"));
  } else if (g.rule === "watch") {
    const minutes = Math.ceil((g.min_watch_s || 0) / 60);
    put("#gw-status", t("ix.gw.watchRule", { duration: new Intl.NumberFormat(language(),
      { style: "unit", unit: "minute", unitDisplay: "short" }).format(minutes) }));
  } else {
    put("#gw-status", "");
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
  else {
    status.dataset.error = "1";
    status.textContent = refusal("ix.gw.err", r.body.error || {}, r.body.error?.message || t("ix.gw.couldNotEnter"));
  }
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
  const c = cur(a);
  const open = a.state === "open";
  const mine = a.leader && a.leader === C.user();
  put("#au-title", t("ix.auction.title", { title: a.title || a.sku }));
  const left = a.ends_at - C.now();
  put("#au-clock", open ? (left > 0 ? t("ix.auction.endsIn", { time: clock(left) }) : t("ix.auction.closing"))
    : t("ix.auction.closed"));
  put("#au-price", money(a.price ?? a.start_price, c));
  put("#au-leader", a.leader ? t("ix.auction.leader", { name: mine ? t("ix.auction.you") : a.leader_name || t("ix.auction.someone"),
    bids: t("ix.auction.bids", { count: a.bids, n: count(a.bids) }) }) : t("ix.auction.noBids"));
  const bidButton = $("#au-bid");
  bidButton.hidden = !open;
  $("#au-form").hidden = !open || !C.token;
  bidButton.disabled = !C.token || mine;
  put("#au-bid", !C.token ? t("ix.auction.signIn") : mine ? t("ix.auction.leading")
    : t("ix.auction.bid", { price: money(a.min_bid ?? a.start_price, c) }));
  const amount = $("#au-amount");
  if (document.activeElement !== amount) amount.placeholder = toMajorText(a.min_bid ?? a.start_price, c);
  amount.setAttribute("aria-label", t("ix.auction.yourBid"));
  // a whole-unit currency needs no decimal key on the phone's keypad
  amount.inputMode = $("#au-max").inputMode = currencyDigits(c) === 0 ? "numeric" : "decimal";
  $("#au-max").placeholder = t("ix.auction.maxPlaceholder");
  $("#au-max").setAttribute("aria-label", t("ix.auction.maxLabel"));
  put("#au-form button[type=submit]", t("ix.auction.submit"));
  put("#au-checkout", t("ix.auction.checkout"));
  $("#au-checkout").hidden = !a.won;
  card.dataset.state = a.won ? "won" : mine ? "leading" : open ? "open" : "closed";
  let note = a.note || "";
  if (!open && !a.won) {
    note = a.winner === C.user() ? t("ix.auction.youWon") : a.winner
      ? t("ix.auction.soldTo", { name: a.winner_name || t("ix.auction.topBidder"), price: money(a.price, c) })
      : t("ix.auction.noBidsClosed");
  }
  if (a.won) note = t("ix.auction.wonCheckout", { note: a.note });
  put("#au-status", note);
}

async function bid(amount, max, a = A.list.get(A.shown)) {
  if (!a || !Number.isFinite(amount)) { put("#au-status", t("ix.auction.enterAmount")); return; }
  $("#au-bid").disabled = true;
  const c = cur(a);
  try {
    const x = await C.viewer.bid(a.id, amount, { max });
    Object.assign(a, { price: x.price, min_bid: x.min_bid, ends_at: x.ends_at ?? a.ends_at });
    if (x.leader) { a.leader = C.user(); a.note = t("ix.auction.leadingAt", { price: money(x.price, c) }); }
    else a.note = t("ix.auction.outbidAtOnce", { price: money(x.price, c) });
  } catch (error) {
    if (lost(error)) a.note = t("ix.connectionLost");
    else {
      if (error.code === "bid_too_low" && error.details.min_bid) a.min_bid = error.details.min_bid;
      a.note = error.code === "bid_too_low" ? t("ix.auction.bidAtLeast", { price: money(a.min_bid, c) })
        : refusal("ix.auction.err", error, error.detail);
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
  if (f.reservation) {
    actions.push(el("button", { className: "primary", onclick: () => $("#open-checkout").click() }, t("ix.cb.checkout")));
  }
  if (f.status === "sold_out" && f.sale && f.waitlist !== false) {
    const join = el("button", { className: "join" }, t("ix.cb.joinWaitlist"));
    join.onclick = async () => {
      try {
        join.replaceWith(t("ix.cb.onWaitlist", { position: count(await C.viewer.waitlist(f.sale)) }));
      } catch (error) {
        join.replaceWith(lost(error) ? t("ix.tryAgain") : error.detail);
      }
    };
    actions.push(join);
  }
  toast(commentBuyText(f), f.status, actions);
}

/** The reply in the page's language when the notice carries what it needs (the grab's
 * outcomes); else the engine's own text (how to write the comment, with its options). */
function commentBuyText(f) {
  const vars = { title: f.title || "", quantity: count(f.quantity || 1), holding: count(f.holding ?? 0),
    limit: count(f.limit ?? 0) };
  if (f.status === "reserved" && f.replayed) return t("ix.cb.alreadyReserved", vars);
  if (f.status === "not_started" && f.starts_at) {
    const time = new Intl.DateTimeFormat(language(), { timeStyle: "short" }).format(new Date(f.starts_at));
    return t("ix.cb.notStartedAt", { ...vars, time });
  }
  if (["reserved", "sold_out", "limit_reached", "ended"].includes(f.status) && f.title) {
    return t(`ix.cb.${f.status}`, vars);
  }
  return f.message || f.status;
}

export function toast(text, status, actions = []) {
  const box = $("#toasts");
  const node = el("div", { className: "toast", role: "status", dataset: { status: status || "" } },
    el("span", {}, text), ...actions,
    el("button", { className: "x", ariaLabel: t("ix.dismiss"), onclick: () => node.remove() }, "✕"));
  box.append(node);
  while (box.childElementCount > 3) box.firstElementChild.remove();
  setTimeout(() => node.remove(), actions.length ? 20_000 : 6000);
}

// ---- shared ------------------------------------------------------------------------------------
const cur = (a) => a.currency || "USD";

/** The engine's refusal (`code`, `details`) in the page's language when the catalog knows
 * the code (`<prefix>.<code>`), else the engine's own text. */
function refusal(prefix, error, fallback) {
  const d = error.details || {};
  return tOr(`${prefix}.${error.code}`, { seconds: count(d.min_watch_s ?? 0) }, fallback || error.code);
}

/** Set a text only when it changes (the cards are live regions). */
function put(selector, text) {
  const node = $(selector);
  if (node && node.textContent !== text) node.textContent = text;
}

function render() { renderGiveaway(); renderAuction(); }
