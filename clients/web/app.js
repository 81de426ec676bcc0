// The viewer's live room (issues 7 and 25), served at /live/{room}: a full-screen vertical
// stream with the header, danmaku, chat, the dock (pinned product, flash sale, holds) and the
// bar over it; checkout, products, orders, coupons and settings in sheets. A flash sale's
// state is one pure function (sale_state.js); money and text go through i18n.js.
// Giveaways, auctions and comment-to-buy replies are in interactive.js; group buys, sharing
// and reminders in social.js; the engine's features bring their own cards (features.js).
// No framework, no build.
import * as features from "./features.js";
import * as ix from "./interactive.js";
import * as social from "./social.js";
import { attachStream } from "./stream.js";
import { LivecartError, LivecartViewer } from "/sdk/index.js";
import { api, clock, lost, $, el } from "./util.js";
import { LANGUAGES, count, language, money, setLanguage, startLanguage, t, translate } from "./i18n.js";
import { saleView } from "./sale_state.js";

const T0 = Math.round(performance.now()); // ms since navigation start (timeOrigin)
await setLanguage(startLanguage(), { remember: false });
translate(document);

const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const store = {
  get: (k, d) => { try { return JSON.parse(localStorage.getItem(`lc.${room}.${k}`)) ?? d; } catch { return d; } },
  set: (k, v) => localStorage.setItem(`lc.${room}.${k}`, JSON.stringify(v)),
};

// A token in the fragment or query is kept on the device, then removed from the address.
const params = new URLSearchParams(location.hash.slice(1) || location.search);
const query = new URLSearchParams(location.search);
const urlToken = params.get("token") || query.get("token");
if (urlToken) {
  store.set("token", urlToken);
  query.delete("token"); // a share link's ?ref= and ?team= stay
  history.replaceState(null, "", location.pathname + (query.size ? `?${query}` : ""));
}
const TOKEN = store.get("token", null);
let device = localStorage.getItem("lc.device");
if (!device) {
  device = `dev${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`.slice(0, 32);
  localStorage.setItem("lc.device", device);
}

const S = {
  room: null, user: null, role: null, limits: {}, stats: {}, product: null,
  sales: new Map(), drops: new Map(), seen: new Set(),
  clockOffset: 0, held: store.get("held", []), order: null, orders: [], shipping: null,
  coupons: [], likesPending: 0, answers: {}, limitHit: {}, waitlist: {}, view: null,
};
const hook = {
  scriptMs: T0, firstTickMs: null, welcomeMs: null, likeFrames: 0, likesSent: 0, welcomes: 0, statuses: [],
  dropConnection: (holdMs) => viewer.drop({ holdMs }), state: S, saleView,
  get duplicates() { return viewer.duplicates; }, // replayed entries the SDK left out
  get viewer() { return viewer; },
};
/** @type {any} */ (window).__livecart = hook; // the tests' hook

const now = () => Date.now() + S.clockOffset; // the server's clock, not the phone's
/** My things on this device, per signed-in user (a shared phone keeps them apart). */
const mineKey = (k) => `${k}.${S.user}`;

// ---- realtime (the SDK: docs/sdk-js.md) --------------------------------------------------------
const viewer = new LivecartViewer({
  url: location.origin, room, ...(TOKEN ? { token: TOKEN } : { device }),
  ref: query.get("ref"), // a share link: the engine attributes first touch
});

/** An engine or SDK error code in the viewer's words (the engine's message if we have none). */
function why(code, detail) {
  const key = `err.${code}`;
  const said = t(key);
  return said === key ? detail || code || "" : said;
}

viewer.on("status", ({ status, code, reason, error }) => {
  hook.statuses.push(status);
  const conn = $("#conn");
  conn.textContent = status === "closed"
    ? t("conn.closed", { reason: why(error?.code, error?.detail || reason || String(code ?? "")) })
    : t(`conn.${status}`);
  conn.dataset.state = status;
});

// A welcome's history comes as `entry` events after it, then `state`: the page takes the
// welcome and its entries together, as one join.
let joining = null; // {welcome, entries} until that `state` event
viewer.on("welcome", (w) => {
  if (hook.welcomeMs === null) hook.welcomeMs = Math.round(performance.now());
  joining = { welcome: w, entries: [] };
});
viewer.on("entry", (e) => {
  if (joining) { joining.entries.push(e); return; }
  apply(e);
  features.entry(e);
});
viewer.on("state", () => {
  if (!joining) return;
  const { welcome, entries } = joining;
  joining = null;
  joined(welcome, entries);
});

/** A welcome; `entries`: on a resume that recovered, the missed ones, else the history. */
function joined(w, entries) {
  const resumed = hook.welcomes > 0 && w.recovered === true;
  hook.welcomes += 1;
  S.clockOffset = w.server_time - Date.now();
  S.user = w.user; S.role = w.role; S.room = w.room; S.limits = w.limits; S.stats = w.stats;
  S.product = w.product;
  if (typeof w.shipping_fee === "number") S.shipping = w.shipping_fee; // the total before ordering
  S.sales = new Map(w.sales.map((s) => [s.id, s]));
  S.held = S.held.filter((h) => !h.user || h.user === w.user);
  S.waitlist = store.get(mineKey("waitlist"), {});
  for (const d of w.drops) S.drops.set(d.id, { ...S.drops.get(d.id), ...d });
  if (resumed) {
    entries.forEach(apply);
  } else {
    S.seen.clear(); $("#comments").replaceChildren();
    entries.filter((e) => e.kind === "comment").forEach(addComment);
  }
  S.pinned = w.room.pinned;
  renderAll();
  if (TOKEN) { refreshCoupons(); refreshOrders(); }
  ix.welcome(w);
  social.welcome(w);
  features.welcome(w, resumed ? entries : []);
}

viewer.on("tick", (tk) => {
  if (hook.firstTickMs === null) hook.firstTickMs = Math.round(performance.now());
  S.clockOffset = tk.t - Date.now();
  if (tk.stats) { S.stats = tk.stats; renderStats(); }
  for (const [id, c] of Object.entries(tk.stock || {})) {
    const sale = S.sales.get(id);
    if (sale) Object.assign(sale, c);
  }
  for (const [id, c] of Object.entries(tk.drops || {})) {
    const drop = S.drops.get(id);
    if (drop) Object.assign(drop, c);
  }
  if (tk.stock) renderSale();
  if (tk.drops) renderDrop();
  features.tick(tk);
});

viewer.on("notice", (f) => {
  if (f.kind === "reservation_offered") {
    hold({ reservation: f.reservation, sale: f.sale, quantity: f.quantity,
      expires_at: f.expires_at, price: f.price, currency: f.currency });
    delete S.waitlist[f.sale]; store.set(mineKey("waitlist"), S.waitlist);
    answer(f.sale, t("grab.offered"));
  } else if (f.kind === "reservation_expired") {
    S.held = S.held.filter((h) => h.reservation !== f.reservation); saveHeld();
  } else if (f.kind === "muted") {
    showLimit(t("comment.muted"));
  } else {
    ix.notice(f);
    social.notice(f);
  }
});

// The engine's error pushes need nothing here (a ban closes the connection: the `status`
// event shows it); anything else is a bug in one of the page's handlers: let it show.
viewer.on("error", (error) => {
  if (!(error instanceof LivecartError)) reportError(error);
});

function apply(e) {
  switch (e.kind) {
    case "comment": addComment(e); break;
    case "comment_deleted":
      document.getElementById(`c-${e.ref}`)?.remove();
      if (S.pinned && S.pinned.id === e.ref) { S.pinned = null; renderPinned(); }
      break;
    case "comment_pinned": S.pinned = { id: e.ref, name: e.name, text: e.text }; renderPinned(); break;
    case "comment_unpinned": S.pinned = null; renderPinned(); break;
    case "room_state": S.room.state = e.state; renderRoom(); break;
    case "room_updated":
      Object.assign(S.room, e);
      if (e.settings) Object.assign(S.limits, e.settings);
      renderRoom(); renderLimits(); break;
    case "product_pinned": S.product = { ...e, id: e.ref }; renderProduct(); renderSale(); break;
    case "product_updated": if (S.product && S.product.id === e.ref) { S.product = { ...e, id: e.ref }; renderProduct(); } break;
    case "product_unpinned": S.product = null; renderProduct(); renderSale(); break;
    case "sale_announced":
      S.sales.set(e.ref, { ...e, id: e.ref, available: e.allotment, reserved: 0, sold: 0,
        units: e.allotment, state: e.server_time < e.starts_at ? "scheduled" : "live" });
      renderSale(); break;
    case "sale_updated": case "sale_ended": {
      const s = S.sales.get(e.ref);
      if (s) { s.ends_at = e.ends_at; s.units = e.units; if (e.kind === "sale_ended") s.state = "ended"; }
      renderSale(); break;
    }
    case "coupon_dropped":
      S.drops.set(e.ref, { ...e, kind: e.coupon_kind, id: e.ref, remaining: e.quantity, claimed: 0,
        state: e.server_time < e.opens_at ? "scheduled" : "live" });
      S.dropShown = e.ref; renderDrop(); break;
    default: ix.entry(e); social.entry(e); break;
  }
}

// ---- room, stream, stats -------------------------------------------------------------------
function renderAll() {
  renderRoom(); renderStats(); renderProduct(); renderSale(); renderHeld(); renderLimits();
  renderPinned(); renderDrop();
}

/** An image that fails to load leaves its placeholder (the .thumb box, the stage's gradient). */
function fallback(img) {
  img.onerror = () => { img.hidden = true; img.removeAttribute("src"); };
}

// The room's stream attached to #video, and how to stop it (renderRoom follows stream_url).
const stream = { url: /** @type {string | null | undefined} */ (undefined), detach: /** @type {null | (() => void)} */ (null) };

function renderRoom() {
  const r = S.room;
  $("#title").textContent = r.title;
  // The host's display name; a host who gave none (host_name is then their id) is "Host".
  const named = r.host_name && r.host_name !== r.host;
  const host = named ? r.host_name : t("room.host");
  $("#avatar").textContent = ((named ? r.host_name : r.title) || "·").trim().charAt(0).toUpperCase();
  const badge = el("span", { className: `badge ${r.state === "live" ? "live" : ""}` }, t(`room.state.${r.state}`));
  $("#host").replaceChildren(host, badge);
  document.title = `${r.title} · ${t("room.state.live")}`;
  const cover = $("#cover");
  if (r.cover_url && cover.getAttribute("src") !== r.cover_url) cover.src = r.cover_url;
  if (r.stream_url !== stream.url) {
    stream.detach?.();
    stream.url = r.stream_url;
    stream.detach = r.stream_url ? attachStream($("#video"), { url: r.stream_url, poster: r.cover_url, onState: showStream }) : null;
    if (!r.stream_url) showStream("offline");
  }
}

/** What the stage shows: the playing stream, else the cover (docs/viewer.md § The stream). */
function showStream(state) {
  const live = state !== "offline";
  $("#video").hidden = !live;
  $("#cover").hidden = live || !S.room?.cover_url;
  $("#stage").dataset.stream = state;
}
fallback($("#cover"));
fallback($("#product-img"));
fallback($("#sale-img"));

function renderStats() {
  $("#online").textContent = count(S.stats.online ?? 0);
  $("#likes").textContent = count((S.stats.likes ?? 0) + S.likesPending);
}

function renderLimits() {
  const l = S.limits;
  const input = $("#comment-input");
  input.maxLength = l.max_comment_chars || 200;
  const parts = [t("limits.chars", { n: l.max_comment_chars })];
  if (l.slow_mode_ms) parts.push(t("limits.slow", { n: Math.ceil(l.slow_mode_ms / 1000) }));
  if (l.comment_rate_max) {
    parts.push(t("limits.rate", { n: l.comment_rate_max, s: Math.round(l.comment_rate_window_ms / 1000) }));
  }
  $("#limits").textContent = parts.join(" · ");
  const canComment = S.role && S.role !== "anonymous";
  input.disabled = !canComment;
  input.placeholder = canComment ? t("bar.say") : t("bar.signIn");
}

function showLimit(text) { $("#limits").textContent = text; }

// ---- product and sale ----------------------------------------------------------------------
/** The list price of a sale's SKU, when the product on show is the sale's. */
function listPrice(s) {
  const p = S.product;
  if (!p || p.id !== s.product) return null;
  return p.skus.find((k) => k.sku === s.sku)?.list_price ?? null;
}

function renderProduct() {
  const p = S.product;
  const s0 = currentSale();
  $("#product").hidden = !p || Boolean(s0 && s0.product === p.id);
  if (!p) return;
  $("#product-title").textContent = p.title;
  const low = Math.min(...p.skus.map((s) => s.list_price));
  const s = currentSale();
  const price = $("#product-price");
  if (s && s.product === p.id && s.state !== "ended" && s.price < low) {
    price.replaceChildren(money(s.price, s.currency), el("s", { className: "list" }, money(low, p.currency)),
      el("span", { className: "off" }, t("deal.off", { n: Math.round((100 * (low - s.price)) / low) })));
  } else {
    price.textContent = money(low, p.currency);
  }
  const img = $("#product-img");
  img.hidden = !p.images?.length;
  if (p.images?.length && img.getAttribute("src") !== p.images[0]) { img.src = p.images[0]; img.alt = ""; }
}

function currentSale() {
  const open = [...S.sales.values()].filter((s) => s.state !== "ended" || S.shownSale === s.id);
  return open.find((s) => S.product && s.product === S.product.id && s.state !== "ended")
    || open.find((s) => s.state !== "ended") || open[0] || null;
}

function mineFor(s) {
  return { holds: S.held, orders: S.orders, limitHit: S.limitHit[s.id] || null, waitlist: S.waitlist[s.id] || null,
    signedIn: Boolean(TOKEN), listPrice: listPrice(s) };
}

/** A one-off answer under the sale (an error, an offer), until the sale's state changes. */
function answer(saleId, text) { S.answers[saleId] = { text, state: S.view?.state }; renderSale(); }

function renderSale() {
  const s = currentSale();
  const card = $("#sale");
  card.hidden = !s;
  if (!s) { S.view = null; $("#sheet-state").textContent = ""; $("#product").hidden = !S.product; return; }
  S.shownSale = s.id;
  const v = saleView(s, mineFor(s), now());
  const changed = !S.view || S.view.state !== v.state;
  S.view = v;
  card.dataset.state = v.state;
  $("#sale-title").replaceChildren(el("span", {}, s.title), " · ", el("b", {}, money(s.price, s.currency)));
  // the sale of the product on show takes its card's place: one card, its image
  const onShow = Boolean(S.product && S.product.id === s.product);
  $("#product").hidden = !S.product || onShow;
  const img = $("#sale-img");
  const src = onShow && S.product.images?.length ? S.product.images[0] : null;
  img.hidden = !src;
  if (src && img.getAttribute("src") !== src) img.src = src;
  const deal = [];
  if (v.deal.list) {
    deal.push(el("s", { className: "list" }, money(v.deal.list, s.currency)),
      el("span", { className: "off" }, t("deal.off", { n: v.deal.percent })));
  }
  if (v.state === "sold_out" || v.state === "waitlisted") deal.push(el("span", { className: "urgent" }, t("deal.soldOut")));
  else if (v.deal.low && v.state !== "ended") deal.push(el("span", { className: "urgent" }, t("deal.only", { count: v.deal.left })));
  $("#sale-deal").replaceChildren(...deal);
  card.toggleAttribute("data-low", v.deal.low);
  const bar = $("#sale-bar");
  bar.setAttribute("aria-valuemax", String(s.units));
  bar.setAttribute("aria-valuenow", String(s.available));
  /** @type {HTMLElement} */ (bar.firstElementChild).style.width = `${s.units ? (100 * s.available) / s.units : 0}%`;
  $("#sale-stock").textContent = t("sale.stock", { left: count(s.available), units: count(s.units) })
    + (s.waiting ? ` · ${t("sale.waiting", { count: s.waiting })}` : "");
  const grab = $("#grab");
  grab.dataset.sale = s.id;
  grab.dataset.action = v.button.action;
  grab.disabled = v.button.disabled || Boolean(S.busy);
  const timer = v.timer ? ` · ${t(v.timer.key, { time: clock(v.timer.at - now()) })}` : "";
  grab.textContent = t(v.button.key, v.button.vars) + timer;
  const said = S.answers[s.id];
  if (said && (changed && said.state !== v.state)) delete S.answers[s.id];
  const out = $("#grab-result");
  out.dataset.status = v.state;
  out.textContent = S.answers[s.id]?.text || (v.status ? t(v.status.key, v.status.vars) : "");
  $("#sale-clock").textContent = v.clock ? t(v.clock.key, { time: clock(v.clock.at - now()) }) : "";
  // over a sheet, the sale's state and my hold's clock stay in sight
  $("#sheet-state").textContent = `⚡ ${grab.textContent}`;
  if (changed) renderProduct();
}

function tickClock() {
  const s = currentSale();
  if (s && s.state === "scheduled" && now() >= s.starts_at) s.state = s.available ? "live" : "sold_out";
  const before = S.held.length;
  S.held = S.held.filter((h) => h.expires_at > now() || h.order);
  if (S.held.length !== before) saveHeld();
  renderSale();
  renderHeld();
  renderCheckoutClock();
  const d = S.drops.get(S.dropShown);
  if (d && d.state === "scheduled") $("#drop-state").textContent = t("drop.opensIn", { time: clock(d.opens_at - now()) });
  ix.second();
  social.second();
}
setInterval(tickClock, 250);

$("#grab").addEventListener("click", async () => {
  const grab = $("#grab");
  const sale = grab.dataset.sale;
  if (grab.dataset.action === "checkout") { openCheckout(); return; }
  if (grab.dataset.action === "waitlist") {
    try {
      S.waitlist[sale] = await viewer.waitlist(sale);
      store.set(mineKey("waitlist"), S.waitlist);
      renderSale();
    } catch (error) {
      answer(sale, lost(error) ? t("err.lost") : why(error.code, error.detail));
    }
    return;
  }
  S.busy = true;
  grab.disabled = true;
  let r;
  try {
    r = await viewer.grab(sale);
  } catch (error) {
    answer(sale, lost(error) ? t("err.lost") : why(error.code, error.detail));
    return;
  } finally {
    S.busy = false;
  }
  if (r.status === "reserved") {
    hold({ ...r, sale });
  } else if (r.status === "limit_reached") {
    S.limitHit[sale] = { limit: r.limit, holding: r.holding };
    if (TOKEN) refreshOrders(); // held or ordered on another phone: show that instead
  } else if (r.status === "sold_out") {
    const s = S.sales.get(sale);
    if (s) { s.available = r.available; s.state = "sold_out"; }
  } else if (r.status === "not_started") {
    answer(sale, t("grab.notStarted"));
  } else {
    const s = S.sales.get(sale);
    if (s) s.state = "ended";
  }
  renderSale();
});

function hold(h) {
  const sale = S.sales.get(h.sale);
  S.held = S.held.filter((x) => x.reservation !== h.reservation);
  S.held.push({ ...h, user: S.user, title: h.title || (sale ? sale.title : h.sale) });
  saveHeld();
  renderSale();
}
function saveHeld() { store.set("held", S.held); renderHeld(); }

/** Holds other than the flash sale's on the card (prizes, lots, group buys): the strip. */
function renderHeld() {
  const shown = !$("#sale").hidden && S.view?.state === "reserved" ? S.shownSale : null;
  const open = S.held.filter((h) => !h.order && h.sale !== shown);
  $("#held").hidden = open.length === 0;
  if (!open.length) return;
  $("#held-title").textContent = open.map((h) => h.title).join(", ");
  const first = Math.min(...open.map((h) => h.expires_at));
  $("#held-timer").textContent = t("held.left", { time: clock(first - now()) });
}

async function refreshOrders() {
  const [r, holds] = await Promise.all([
    api(room, TOKEN, "GET", "/orders/mine"), api(room, TOKEN, "GET", "/reservations/mine"),
  ]);
  // Units this user holds, grabbed here or on another phone: reserved here too, and checkable out.
  if (holds.ok) {
    for (const h of holds.body.reservations) {
      if (!S.held.some((x) => x.reservation === h.id)) {
        hold({ reservation: h.id, sale: h.sale, quantity: h.quantity, expires_at: h.expires_at, price: h.price ?? undefined });
      }
    }
  }
  if (!r.ok) return;
  S.orders = r.body.orders;
  // a hold that became an order (here or on another device) is no longer open
  const inOrder = new Map(S.orders.flatMap((o) => o.lines.map((l) => [l.reservation, o.id])));
  for (const h of S.held) if (inOrder.has(h.reservation)) h.order = inOrder.get(h.reservation);
  S.held = S.held.filter((h) => !h.order || S.orders.some((o) => o.id === h.order && o.state === "pending_payment"));
  saveHeld();
  renderSale();
}

// ---- coupon drops --------------------------------------------------------------------------
/** Claimed on this device, or on another one (my coupons name their drop). */
const claimed = (id) => store.get(mineKey(`claimed.${id}`), false) || S.coupons.some((c) => c.drop === id);

function renderDrop() {
  if (!S.dropShown) {
    const live = [...S.drops.values()].find((d) => (d.state === "live" || d.state === "scheduled") && !claimed(d.id));
    if (live) S.dropShown = live.id;
  }
  const d = S.drops.get(S.dropShown);
  const box = $("#drop");
  // signed in: shown once my coupons are known (a claim on another phone counts)
  box.hidden = !d || !TOKEN || !S.couponsKnown || d.state === "ended" || d.dismissed || (claimed(d.id) && !d.justClaimed);
  if (box.hidden) return;
  $("#drop-title").textContent = d.title;
  const claim = $("#claim");
  claim.dataset.drop = d.id;
  if (claimed(d.id)) { $("#drop-state").textContent = t("drop.claimed"); claim.hidden = true; return; }
  // A drop for some tiers of the shop's customers refused this viewer: no button to tap again.
  $("#drop-state").classList.toggle("says", Boolean(d.notForMe));
  if (d.notForMe) { $("#drop-state").textContent = t("drop.notForYou"); claim.hidden = true; return; }
  claim.hidden = false;
  claim.disabled = d.state !== "live";
  $("#drop-state").textContent = d.state === "sold_out" ? t("drop.allClaimed")
    : d.state === "live" ? t("drop.left", { count: d.remaining }) : "";
}

$("#claim").addEventListener("click", async () => {
  const drop = $("#claim").dataset.drop;
  let st;
  try {
    st = (await viewer.claim(drop)).status;
  } catch (error) {
    $("#drop-state").textContent = lost(error) ? t("err.lost") : why(error.code, error.detail);
    return;
  }
  const d = S.drops.get(drop);
  if (st === "claimed" || st === "limit_reached") {
    store.set(mineKey(`claimed.${drop}`), true);
    refreshCoupons();
    if (d) { // "claimed ✓" for a moment, then the ticket goes: the product stays in sight
      d.justClaimed = true;
      setTimeout(() => { d.justClaimed = false; d.dismissed = true; renderDrop(); }, 1500);
    }
  }
  if (st === "tier_not_eligible" && d) d.notForMe = true;
  if (st === "sold_out") $("#drop-state").textContent = t("drop.allClaimed");
  else renderDrop();
});
$("#drop-close").addEventListener("click", () => {
  const d = S.drops.get(S.dropShown);
  if (d) d.dismissed = true;
  renderDrop();
});

async function refreshCoupons() {
  const r = await api(room, TOKEN, "GET", "/coupons/mine");
  if (r.ok) S.coupons = r.body.coupons;
  S.couponsKnown = true;
  renderDrop();
}

// ---- comments, danmaku, likes ---------------------------------------------------------------
function addComment(e) {
  if (S.seen.has(e.id)) return; // our own comment: shown on its ack, then it comes in a tick
  S.seen.add(e.id);
  const li = el("li", { id: `c-${e.id}`, className: e.user === S.user ? "mine" : e.role === "host" ? "host" : "" },
    el("b", {}, `${e.name}`), ` ${e.text}`);
  const list = $("#comments");
  list.append(li);
  while (list.childElementCount > 200) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  if (Date.now() - S.joined > 1000 || e.user === S.user) danmaku(e);
}
S.joined = Date.now();

// Danmaku: on unless turned off in Settings (kept on the device) or the viewer asked for
// less motion; the comments fly in the stage band only, never over the header or the dock.
const motionless = matchMedia("(prefers-reduced-motion: reduce)").matches;
const danmakuOn = () => (localStorage.getItem("lc.danmaku") ?? (motionless ? "off" : "on")) === "on";
$("#app").dataset.danmaku = danmakuOn() ? "on" : "off";
let lane = 0;
function danmaku(e) {
  const box = $("#danmaku");
  if (!danmakuOn() || box.childElementCount > 12) return;
  const span = el("span", { className: e.user === S.user ? "mine" : "" }, e.text);
  span.style.top = `${4 + (lane % 4) * 16}%`;
  lane += 1;
  span.addEventListener("animationend", () => span.remove());
  box.append(span);
}

function renderPinned() {
  const p = $("#pinned");
  p.hidden = !S.pinned;
  if (S.pinned) p.textContent = `📌 ${S.pinned.name}: ${S.pinned.text}`;
}

$("#comment-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#comment-input");
  const text = input.value.trim();
  if (!text) return;
  let entry;
  try {
    entry = await viewer.comment(text);
  } catch (error) {
    if (lost(error)) { showLimit(t("comment.notSent")); return; }
    const wait = error.retryAfterMs;
    const said = why(error.code, error.detail);
    showLimit(wait ? `${said} (${t("comment.wait", { n: Math.ceil(wait / 1000) })})` : said);
    return;
  }
  if (input.value.trim() === text) input.value = ""; // not what was typed since
  renderLimits();
  addComment(entry); // the viewer's own comment is always shown, even if sampled out
});

$("#like").addEventListener("click", (event) => {
  S.likesPending += 1;
  renderStats();
  const heart = el("i", {}, "♥");
  heart.style.left = `${Math.random() * 30}px`;
  heart.addEventListener("animationend", () => heart.remove());
  $("#hearts").append(heart);
  /** @type {HTMLElement} */ (event.currentTarget).blur();
});
setInterval(() => { // taps are aggregated: one like frame per 400 ms at most
  if (!S.likesPending) return;
  const n = Math.min(S.likesPending, S.limits.max_likes_per_frame || 100);
  try {
    viewer.send({ type: "like", count: n });
  } catch (error) {
    if (lost(error)) return; // not connected: the taps wait for the next frame
    throw error;
  }
  S.likesPending -= n;
  S.stats.likes = (S.stats.likes || 0) + n;
  hook.likeFrames += 1; hook.likesSent += n;
}, 400);

// ---- sheets: products, checkout, orders, coupons, settings ---------------------------------
function openSheet(title, body) {
  $("#sheet-title").textContent = title;
  $("#sheet-body").replaceChildren(body);
  $("#sheet").hidden = false;
  $("#sheet-close").focus();
}
$("#sheet-close").addEventListener("click", () => { $("#sheet").hidden = true; });

$("#open-products").addEventListener("click", async () => {
  const r = await api(room, TOKEN, "GET", "/products");
  const list = el("ol", { className: "list" });
  for (const p of r.ok ? r.body.products : []) {
    const live = S.product && S.product.id === p.id;
    list.append(el("li", { className: live ? "live" : "" }, el("b", {}, p.title),
      ` ${money(Math.min(...p.skus.map((s) => s.list_price)), p.currency)}${live ? ` · ${t("products.onNow")}` : ""}`));
  }
  openSheet(t("products.title"), list);
});

const orderState = (state) => t(`order.state.${state}`);

$("#menu-orders").addEventListener("click", async () => {
  const list = el("ol", { className: "list", id: "orders-list" });
  openSheet(t("orders.title"), list);
  if (!TOKEN) { list.append(el("li", {}, t("orders.signIn"))); return; }
  await refreshOrders();
  for (const o of S.orders) {
    list.append(el("li", { dataset: { state: o.state } }, el("b", {}, o.id),
      ` ${o.lines.map((l) => l.title).join(", ")} · ${money(o.pricing.total, o.currency)} · ${orderState(o.state)}`));
  }
  if (!list.childElementCount) list.append(el("li", {}, t("orders.none")));
});

$("#menu-coupons").addEventListener("click", async () => {
  const list = el("ol", { className: "list", id: "coupons-list" });
  openSheet(t("coupons.title"), list);
  if (TOKEN) await refreshCoupons();
  for (const c of S.coupons) list.append(el("li", {}, el("b", {}, c.template.title), ` · ${t(`coupon.state.${c.state}`)}`));
  if (!list.childElementCount) list.append(el("li", {}, TOKEN ? t("coupons.none") : t("coupons.signIn")));
});

$("#settings").addEventListener("click", () => {
  const select = el("select", { id: "language" },
    ...Object.entries(LANGUAGES).map(([code, name]) => el("option", { value: code, selected: code === language() }, name)));
  // A new language applies on a reload: every card is drawn again in it, nothing half-translated.
  select.addEventListener("change", async () => { await setLanguage(select.value); location.reload(); });
  const toggle = el("input", { type: "checkbox", id: "danmaku-toggle", checked: danmakuOn() });
  toggle.addEventListener("change", () => {
    localStorage.setItem("lc.danmaku", toggle.checked ? "on" : "off");
    $("#app").dataset.danmaku = toggle.checked ? "on" : "off";
  });
  openSheet(t("settings.title"), el("div", { className: "settings" },
    el("label", {}, t("settings.language"), select), el("label", {}, t("settings.danmaku"), toggle)));
});

// ---- checkout: address once, the best coupon applied, Pay in reach of the thumb ------------
const ADDRESS = ["name", "line1", "city", "postal_code", "country"];
/** The shipping address and contact, remembered on this device for this user (docs/viewer.md). */
const savedAddress = () => { try { return JSON.parse(localStorage.getItem(`lc.checkout.${S.user}`)) || {}; } catch { return {}; } };
const complete = (a) => ADDRESS.every((k) => a[k]) && Boolean(a.email || a.phone);

/** What a coupon would take off (an estimate; the order's pricing is the truth). */
function estimate(c, subtotal, currency) {
  const tp = c.template;
  if (c.state !== "claimed" || tp.currency !== currency || subtotal < tp.min_spend) return -1;
  if (tp.kind === "amount_off") return Math.min(tp.amount, subtotal);
  if (tp.kind === "percent_off") return Math.min(Math.floor((subtotal * tp.percent) / 100), tp.cap ?? Infinity);
  return 0; // free shipping: the shipping
}

/** An element of a cloned template (any: the page is plain DOM code, see tsconfig.pages.json). */
const q = (root, selector) => /** @type {any} */ (root.querySelector(selector));

let checkout = null; // the open checkout: {form, lines, currency, subtotal, expected}

$("#open-checkout").addEventListener("click", () => openCheckout());

async function openCheckout() {
  const form = /** @type {HTMLFormElement} */ ($("#checkout-tpl").content.firstElementChild.cloneNode(true));
  translate(form);
  openSheet(t("checkout.title"), form);
  const lines = S.held.filter((h) => !h.order && h.expires_at > now());
  const pending = lines.length ? null : [...S.orders].reverse().find((o) => o.state === "pending_payment");
  const subtotal = lines.reduce((sum, h) => sum + h.price * h.quantity, 0);
  const currency = lines[0]?.currency || pending?.currency || "USD";
  checkout = { form, lines, currency, subtotal, expected: null };
  const items = lines.length ? lines : (pending?.lines || []).map((l) => ({ ...l, price: l.unit_price }));
  const first = items[0];
  q(form, ".item-title").textContent = items.map((h) => h.title).join(", ");
  const sale = first && S.sales.get(first.sale);
  const list = sale ? listPrice(sale) : null;
  const each = first ? money(first.price ?? 0, currency) : "";
  q(form, ".item-price").replaceChildren(`${each}${first && first.quantity > 1 ? ` × ${first.quantity}` : ""}`,
    ...(list && first.price < list ? [el("s", { className: "list" }, money(list, currency))] : []));
  const img = q(form, ".thumb img");
  if (sale && S.product && S.product.id === sale.product && S.product.images?.length) {
    fallback(img); img.hidden = false; img.src = S.product.images[0];
  }
  // the address: asked once, then a summary with Change
  const saved = savedAddress();
  for (const input of /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll("fieldset input"))) {
    input.value = saved[input.name] ?? "";
    input.addEventListener("input", () => { // remembered as typed: a reload or reconnect keeps it
      const now2 = savedAddress();
      now2[input.name] = input.value;
      localStorage.setItem(`lc.checkout.${S.user}`, JSON.stringify(now2));
    });
  }
  const returning = complete(saved);
  const summary = q(form, ".ship-summary");
  summary.hidden = !returning;
  q(form, "fieldset.address").hidden = returning;
  if (returning) {
    q(form, ".ship-text").textContent = [saved.name, saved.line1, `${saved.city} ${saved.postal_code}`,
      saved.country.toUpperCase()].join(", ") + ` · ${saved.email || saved.phone}`;
  }
  q(summary, ".change").addEventListener("click", () => {
    summary.hidden = true; q(form, "fieldset.address").hidden = false;
    q(form, "input[name=name]").focus();
  });
  // the coupon: the best of mine, already applied
  const select = /** @type {HTMLSelectElement} */ (q(form, "#coupon-select"));
  if (TOKEN) await refreshCoupons();
  let best = null;
  let bestValue = -1;
  for (const c of S.coupons) {
    const value = estimate(c, subtotal, currency);
    if (value < 0) continue;
    select.append(el("option", { value: c.id }, c.template.title));
    const worth = c.template.kind === "free_shipping" ? (S.shipping ?? 1) : value;
    if (worth > bestValue) { best = c.id; bestValue = worth; }
  }
  if (best) select.value = best;
  select.addEventListener("change", preview);
  form.addEventListener("submit", (event) => { event.preventDefault(); placeOrder(); });
  q(form, "#pay").addEventListener("click", () => payNow());
  if (pending && !lines.length) showOrder(pending);
  else preview();
  renderCheckoutClock();
}

/** The breakdown before the order, with the welcome's shipping_fee: the total is known up front. */
function preview() {
  if (!checkout || checkout.order) return;
  const { form, subtotal, currency } = checkout;
  const c = S.coupons.find((x) => x.id === /** @type {HTMLSelectElement} */ (q(form, "#coupon-select")).value);
  const free = c?.template.kind === "free_shipping";
  const discount = c && !free ? Math.max(0, estimate(c, subtotal, currency)) : 0;
  const shipping = free ? 0 : S.shipping;
  const total = shipping === null ? null : subtotal - discount + shipping;
  breakdown({ subtotal, discount, shipping, total }, currency);
  checkout.expected = total;
  // a returning buyer with a known total pays in one tap; else the order comes first
  const oneTap = total !== null && complete(savedAddress());
  q(form, "#place").hidden = oneTap;
  const pay = q(form, "#pay");
  pay.hidden = !oneTap;
  if (oneTap) pay.textContent = t("checkout.pay", { total: money(total, currency) });
}

function breakdown(p, currency) {
  const dl = $("#breakdown");
  const row = (k, v, cls = "") => [el("dt", { className: cls }, k), el("dd", { className: cls }, v)];
  dl.replaceChildren(...row(t("checkout.subtotal"), money(p.subtotal, currency)),
    ...(p.discount ? row(t("checkout.discount"), `−${money(p.discount, currency)}`, "minus") : []),
    ...row(t("checkout.shipping"), p.shipping === null ? t("checkout.shippingLater") : p.shipping === 0 ? t("checkout.free") : money(p.shipping, currency)),
    ...row(t("checkout.total"), p.total === null ? "—" : money(p.total, currency), "total"));
}

function renderCheckoutClock() {
  const out = document.getElementById("checkout-clock");
  if (!out || !checkout) return;
  const o = checkout.order;
  if (o && o.state === "pending_payment") out.textContent = t("checkout.payWithin", { time: clock(o.expires_at - now()) });
  else if (!o && checkout.lines.length) {
    out.textContent = t("held.left", { time: clock(Math.min(...checkout.lines.map((h) => h.expires_at)) - now()) });
  } else out.textContent = "";
}

function address(form) {
  const f = Object.fromEntries(new FormData(form));
  const contact = {};
  if (f.email) contact.email = String(f.email).trim();
  if (f.phone) contact.phone = String(f.phone).trim();
  return { f, contact };
}

/** POST .../orders for the held lines; the order (the engine's pricing) or null. */
async function placeOrder() {
  const { form, lines } = checkout;
  const status = $("#order-status");
  status.dataset.state = "";
  const fieldset = q(form, "fieldset.address");
  if (!fieldset.hidden && !form.reportValidity()) return null;
  const { f, contact } = address(form);
  if (!Object.keys(contact).length) {
    fieldset.hidden = false; q(form, ".ship-summary").hidden = true;
    status.textContent = t("checkout.needContact"); return null;
  }
  if (!lines.length) { status.textContent = t("checkout.nothing"); return null; }
  const key = store.get("checkoutKey", null) || viewer.newId();
  store.set("checkoutKey", key);
  const body = {
    reservations: lines.map((h) => h.reservation), coupons: f.coupon ? [f.coupon] : [],
    shipping_address: { name: f.name, line1: f.line1, city: f.city, postal_code: f.postal_code,
      country: String(f.country).toUpperCase() },
    contact, idempotency_key: key, device,
  };
  status.textContent = t("checkout.placing");
  const r = await api(room, TOKEN, "POST", "/orders", body);
  store.set("checkoutKey", null);
  if (!r.ok) { status.textContent = why(r.body.error?.code, r.body.error?.message || t("checkout.failed")); return null; }
  localStorage.setItem(`lc.checkout.${S.user}`, JSON.stringify({ ...savedAddress(), ...body.shipping_address, ...contact }));
  for (const h of S.held) if (body.reservations.includes(h.reservation)) h.order = r.body.id;
  saveHeld();
  S.orders = [...S.orders.filter((o) => o.id !== r.body.id), r.body];
  showOrder(r.body);
  renderSale();
  return r.body;
}

/** Pay: the order first when there is none yet; a total that differs from the one shown waits for a second tap. */
async function payNow() {
  if (!checkout.order) {
    const expected = checkout.expected;
    const o = await placeOrder();
    if (!o) return;
    if (o.pricing.total !== expected) { $("#order-status").textContent = t("checkout.totalChanged"); return; }
  }
  await pay();
}

function showOrder(o) {
  S.order = o;
  if (!checkout) return;
  checkout.order = o;
  breakdown(o.pricing, o.currency);
  const form = checkout.form;
  q(form, "#place").hidden = true;
  q(form, "fieldset.address").hidden = true;
  q(form, ".coupon").hidden = true;
  const pay = q(form, "#pay");
  pay.hidden = o.state !== "pending_payment";
  pay.textContent = t("checkout.pay", { total: money(o.pricing.total, o.currency) });
  const status = $("#order-status");
  status.textContent = t("checkout.orderState", { order: o.id, state: orderState(o.state) });
  status.dataset.state = o.state;
  renderCheckoutClock();
}

async function pay() {
  const o = checkout.order;
  const status = $("#order-status");
  const button = $("#pay");
  button.disabled = true;
  status.textContent = t("checkout.paying");
  try {
    const p = await api(room, TOKEN, "POST", `/orders/${o.id}/payment`);
    if (!p.ok) { status.textContent = why(p.body.error?.code, p.body.error?.message || t("checkout.payFailed")); return; }
    // The simulated provider's pay API (a real provider's hosted page would open here).
    const done = await fetch(`/psp/pay/${p.body.payment}`, { method: "POST", body: JSON.stringify({ outcome: "succeeded" }) });
    if (!done.ok) { status.textContent = t("checkout.refused"); return; }
    let latest = o;
    for (let i = 0; i < 40; i += 1) { // order status until paid
      const r = await api(room, TOKEN, "GET", `/orders/${o.id}`);
      if (r.ok) { latest = r.body; if (latest.state !== "pending_payment") break; }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    S.orders = [...S.orders.filter((x) => x.id !== latest.id), latest];
    if (latest.state === "paid") {
      S.held = S.held.filter((h) => h.order !== o.id); saveHeld();
      confirmation(latest);
    } else {
      showOrder(latest);
    }
    renderSale();
  } finally {
    button.disabled = false;
  }
}

/** The order, paid ✓: id, items, total. */
function confirmation(o) {
  checkout = null;
  const done = el("button", { type: "button", className: "primary", id: "done" }, t("confirm.done"));
  done.addEventListener("click", () => { $("#sheet").hidden = true; });
  const status = el("p", { id: "order-status", role: "status" }, t("confirm.paid"));
  status.dataset.state = o.state;
  const rows = [[t("confirm.order"), o.id], [t("confirm.items"), o.lines.map((l) => `${l.title} × ${l.quantity}`).join(", ")],
    ...(o.pricing.discount ? [[t("checkout.discount"), `−${money(o.pricing.discount, o.currency)}`]] : []),
    [t("checkout.shipping"), o.pricing.shipping ? money(o.pricing.shipping, o.currency) : t("checkout.free")],
    [t("checkout.total"), money(o.pricing.total, o.currency)]];
  openSheet(t("confirm.title"), el("div", { className: "confirm" }, el("div", { className: "tick" }, "✓"), status,
    el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])), done));
}

ix.setup({ viewer, room, token: TOKEN, api, now, hold, store, user: () => S.user, sale: (id) => S.sales.get(id) });
social.setup({ room, token: TOKEN, api, now, hold, store, toast: ix.toast, sheet: openSheet,
  team: query.get("team"),
  held: () => S.held, product: () => S.product, roomState: () => S.room?.state, sales: () => S.sales });
features.setup({ room, token: TOKEN, viewer });
viewer.start();
