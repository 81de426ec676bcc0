// The viewer's mobile page (issue 7), served at /live/{room}: stream, pinned product,
// flash sales, checkout, coupon drops, comments with danmaku, likes; giveaways, auctions and
// comment-to-buy replies are in interactive.js; group buys, sharing and reminders in social.js;
// the engine's features bring their own cards (features.js). No framework, no build.
import * as features from "./features.js";
import * as ix from "./interactive.js";
import * as social from "./social.js";
import { LivecartError, LivecartViewer } from "/sdk/index.js";
import { api, lost, money, $, el } from "./util.js";

const T0 = Math.round(performance.now()); // ms since navigation start (timeOrigin)
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
  clockOffset: 0, held: store.get("held", []), order: store.get("order", null),
  coupons: [], likesPending: 0,
};
const hook = {
  scriptMs: T0, firstTickMs: null, welcomeMs: null, likeFrames: 0, likesSent: 0, welcomes: 0, statuses: [],
  dropConnection: (holdMs) => viewer.drop({ holdMs }), state: S,
  get duplicates() { return viewer.duplicates; }, // replayed entries the SDK left out
  get viewer() { return viewer; },
};
/** @type {any} */ (window).__livecart = hook; // the tests' hook

const now = () => Date.now() + S.clockOffset; // the server's clock, not the phone's

// ---- realtime (the SDK: docs/sdk-js.md) --------------------------------------------------------
const viewer = new LivecartViewer({
  url: location.origin, room, ...(TOKEN ? { token: TOKEN } : { device }),
  ref: query.get("ref"), // a share link: the engine attributes first touch
});

viewer.on("status", ({ status, code, reason, error }) => {
  hook.statuses.push(status);
  const conn = $("#conn");
  conn.textContent = status === "closed" ? `disconnected (${error?.detail || reason || code})` : status;
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
  S.sales = new Map(w.sales.map((s) => [s.id, s]));
  for (const d of w.drops) S.drops.set(d.id, { ...S.drops.get(d.id), ...d });
  if (resumed) {
    entries.forEach(apply);
  } else {
    S.seen.clear(); $("#comments").replaceChildren();
    entries.filter((e) => e.kind === "comment").forEach(addComment);
  }
  S.pinned = w.room.pinned;
  renderAll();
  if (TOKEN) refreshCoupons();
  ix.welcome(w);
  social.welcome(w);
  features.welcome(w, resumed ? entries : []);
}

viewer.on("tick", (t) => {
  if (hook.firstTickMs === null) hook.firstTickMs = Math.round(performance.now());
  S.clockOffset = t.t - Date.now();
  if (t.stats) { S.stats = t.stats; renderStats(); }
  for (const [id, c] of Object.entries(t.stock || {})) {
    const sale = S.sales.get(id);
    if (sale) Object.assign(sale, c);
  }
  for (const [id, c] of Object.entries(t.drops || {})) {
    const drop = S.drops.get(id);
    if (drop) Object.assign(drop, c);
  }
  if (t.stock) renderSale();
  if (t.drops) renderDrop();
  features.tick(t);
});

viewer.on("notice", (f) => {
  if (f.kind === "reservation_offered") {
    hold({ reservation: f.reservation, sale: f.sale, quantity: f.quantity,
      expires_at: f.expires_at, price: f.price, currency: f.currency });
    $("#grab-result").textContent = "A unit came free: reserved for you";
  } else if (f.kind === "reservation_expired") {
    S.held = S.held.filter((h) => h.reservation !== f.reservation); saveHeld();
  } else if (f.kind === "muted") {
    showLimit("You are muted for now");
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

function renderRoom() {
  const r = S.room;
  $("#title").textContent = r.title;
  $("#host").textContent = `${r.host}${r.state === "live" ? " · LIVE" : ` · ${r.state}`}`;
  document.title = `${r.title} · live`;
  const video = $("#video");
  const cover = $("#cover");
  const hls = r.stream_url && /\.m3u8(\?|$)/.test(r.stream_url);
  const playable = r.stream_url && (!hls || video.canPlayType("application/vnd.apple.mpegurl"));
  if (playable) {
    if (video.getAttribute("src") !== r.stream_url) video.src = r.stream_url;
    if (r.cover_url) video.poster = r.cover_url;
    video.hidden = false; cover.hidden = true;
  } else {
    video.hidden = true;
    cover.hidden = !r.cover_url;
    if (r.cover_url && cover.getAttribute("src") !== r.cover_url) cover.src = r.cover_url;
  }
}

function renderStats() {
  $("#online").textContent = String(S.stats.online ?? 0);
  $("#likes").textContent = String((S.stats.likes ?? 0) + S.likesPending);
}

function renderLimits() {
  const l = S.limits;
  const input = $("#comment-input");
  input.maxLength = l.max_comment_chars || 200;
  const parts = [`${l.max_comment_chars} chars max`];
  if (l.slow_mode_ms) parts.push(`slow mode: 1 per ${Math.ceil(l.slow_mode_ms / 1000)} s`);
  if (l.comment_rate_max) parts.push(`${l.comment_rate_max} per ${Math.round(l.comment_rate_window_ms / 1000)} s`);
  $("#limits").textContent = parts.join(" · ");
  const canComment = S.role && S.role !== "anonymous";
  input.disabled = !canComment;
  input.placeholder = canComment ? "Say something…" : "Sign in to comment";
}

function showLimit(text) { $("#limits").textContent = text; }

// ---- product and sale ----------------------------------------------------------------------
function renderProduct() {
  const p = S.product;
  $("#product").hidden = !p;
  if (!p) return;
  $("#product-title").textContent = p.title;
  const prices = p.skus.map((s) => s.list_price);
  $("#product-price").textContent = money(Math.min(...prices), p.currency);
  const img = $("#product-img");
  img.hidden = !p.images?.length;
  if (p.images?.length) { img.src = p.images[0]; img.alt = p.title; }
}

function currentSale() {
  const open = [...S.sales.values()].filter((s) => s.state !== "ended");
  return open.find((s) => S.product && s.product === S.product.id) || open[0] || null;
}

function renderSale() {
  const s = currentSale();
  $("#sale").hidden = !s;
  if (!s) return;
  $("#sale-title").textContent = `${s.title} · ${money(s.price, s.currency)}`;
  const bar = $("#sale-bar");
  bar.setAttribute("aria-valuemax", String(s.units));
  bar.setAttribute("aria-valuenow", String(s.available));
  bar.firstElementChild.style.width = `${s.units ? (100 * s.available) / s.units : 0}%`;
  $("#sale-stock").textContent = `${s.available} of ${s.units} left${s.waiting ? ` · ${s.waiting} waiting` : ""}`;
  const grab = $("#grab");
  grab.dataset.sale = s.id;
  if (s.state === "sold_out") { grab.textContent = "Sold out: join waitlist"; grab.dataset.action = "waitlist"; }
  else { grab.textContent = s.state === "scheduled" ? "Starts soon" : "Grab"; grab.dataset.action = "grab"; }
  grab.disabled = s.state === "scheduled" || !TOKEN;
  if (!TOKEN) grab.textContent = "Sign in to buy";
  tickClock();
}

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function tickClock() {
  const s = currentSale();
  if (s) {
    const t = now();
    const label = s.state === "scheduled" || t < s.starts_at ? `starts in ${clock(s.starts_at - t)}` : `ends in ${clock(s.ends_at - t)}`;
    $("#sale-clock").textContent = label;
    if (s.state === "scheduled" && t >= s.starts_at) { s.state = "live"; renderSale(); }
  }
  const before = S.held.length;
  S.held = S.held.filter((h) => h.expires_at > now() || h.order);
  if (S.held.length !== before) saveHeld();
  renderHeld();
  const d = S.drops.get(S.dropShown);
  if (d && d.state === "scheduled") $("#drop-state").textContent = `opens in ${clock(d.opens_at - now())}`;
  ix.second();
  social.second();
}
setInterval(tickClock, 250);

$("#grab").addEventListener("click", async () => {
  const grab = $("#grab");
  const sale = grab.dataset.sale;
  const out = $("#grab-result");
  if (grab.dataset.action === "waitlist") {
    try {
      out.textContent = `On the waitlist: #${await viewer.waitlist(sale)}`;
    } catch (error) {
      out.textContent = lost(error) ? "Connection lost, try again" : error.detail;
    }
    return;
  }
  grab.disabled = true;
  out.textContent = "…";
  let r;
  try {
    r = await viewer.grab(sale);
  } catch (error) {
    out.textContent = lost(error) ? "Connection lost, try again" : error.detail;
    return;
  } finally {
    grab.disabled = false;
  }
  out.dataset.status = r.status;
  if (r.status === "reserved") {
    hold({ ...r, sale });
    out.textContent = "Reserved! Check out before the timer ends";
  } else if (r.status === "sold_out") {
    out.textContent = "Sold out: join the waitlist";
    grab.textContent = "Join waitlist"; grab.dataset.action = "waitlist";
  } else if (r.status === "limit_reached") out.textContent = `Limit reached (${r.limit} per person)`;
  else if (r.status === "not_started") out.textContent = "Not started yet";
  else out.textContent = "This sale has ended";
});

function hold(h) {
  const sale = S.sales.get(h.sale);
  S.held = S.held.filter((x) => x.reservation !== h.reservation);
  S.held.push({ ...h, title: h.title || (sale ? sale.title : h.sale) });
  saveHeld();
}
function saveHeld() { store.set("held", S.held); renderHeld(); }

function renderHeld() {
  const open = S.held.filter((h) => !h.order);
  $("#held").hidden = open.length === 0;
  if (!open.length) return;
  $("#held-title").textContent = open.map((h) => h.title).join(", ");
  const first = Math.min(...open.map((h) => h.expires_at));
  $("#held-timer").textContent = `${clock(first - now())} left`;
}

// ---- coupon drops --------------------------------------------------------------------------
function renderDrop() {
  if (!S.dropShown) {
    const live = [...S.drops.values()].find((d) => d.state === "live" || d.state === "scheduled");
    if (live && !store.get(`claimed.${live.id}`, false)) S.dropShown = live.id;
  }
  const d = S.drops.get(S.dropShown);
  const box = $("#drop");
  box.hidden = !d || !TOKEN || d.state === "ended" || d.dismissed;
  if (box.hidden) return;
  $("#drop-title").textContent = d.title;
  const claim = $("#claim");
  claim.dataset.drop = d.id;
  if (store.get(`claimed.${d.id}`, false)) { $("#drop-state").textContent = "claimed ✓"; claim.hidden = true; return; }
  claim.hidden = false;
  claim.disabled = d.state !== "live";
  $("#drop-state").textContent = d.state === "sold_out" ? "all claimed" : d.state === "live" ? `${d.remaining} left` : "";
}

$("#claim").addEventListener("click", async () => {
  const drop = $("#claim").dataset.drop;
  let st;
  try {
    st = (await viewer.claim(drop)).status;
  } catch (error) {
    if (!lost(error)) $("#drop-state").textContent = error.detail;
    return;
  }
  if (st === "claimed" || st === "limit_reached") { store.set(`claimed.${drop}`, true); refreshCoupons(); }
  if (st === "sold_out") $("#drop-state").textContent = "all claimed";
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

let lane = 0;
function danmaku(e) {
  const box = $("#danmaku");
  if (box.childElementCount > 12) return;
  const span = el("span", { className: e.user === S.user ? "mine" : "" }, e.text);
  span.style.top = `${12 + (lane % 5) * 12}%`;
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
    if (lost(error)) { showLimit("Not sent: reconnecting"); return; }
    const wait = error.retryAfterMs;
    showLimit(wait ? `${error.detail} (${Math.ceil(wait / 1000)} s)` : error.detail);
    return;
  }
  input.value = "";
  renderLimits();
  addComment(entry); // the viewer's own comment is always shown, even if sampled out
});

$("#like").addEventListener("click", (event) => {
  S.likesPending += 1;
  renderStats();
  const heart = el("i", {}, "♥");
  heart.style.left = `${60 + Math.random() * 30}%`;
  heart.addEventListener("animationend", () => heart.remove());
  $("#hearts").append(heart);
  event.currentTarget.blur();
});
setInterval(() => { // taps are aggregated: one like frame per 400 ms at most
  if (!S.likesPending) return;
  const count = Math.min(S.likesPending, S.limits.max_likes_per_frame || 100);
  try {
    viewer.send({ type: "like", count });
  } catch (error) {
    if (lost(error)) return; // not connected: the taps wait for the next frame
    throw error;
  }
  S.likesPending -= count;
  S.stats.likes = (S.stats.likes || 0) + count;
  hook.likeFrames += 1; hook.likesSent += count;
}, 400);

// ---- sheets: products, checkout, orders, coupons -------------------------------------------
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
      ` ${money(Math.min(...p.skus.map((s) => s.list_price)), p.currency)}${live ? " · on now" : ""}`));
  }
  openSheet("Run of show", list);
});

$("#menu-orders").addEventListener("click", async () => {
  const list = el("ol", { className: "list", id: "orders-list" });
  openSheet("My orders", list);
  if (!TOKEN) { list.append(el("li", {}, "Sign in to see your orders")); return; }
  const r = await api(room, TOKEN, "GET", "/orders/mine");
  for (const o of r.ok ? r.body.orders : []) {
    list.append(el("li", { dataset: { state: o.state } }, el("b", {}, o.id),
      ` ${o.lines.map((l) => l.title).join(", ")} · ${money(o.pricing.total, o.currency)} · ${o.state.replace("_", " ")}`));
  }
  if (!list.childElementCount) list.append(el("li", {}, "No orders yet"));
});

$("#menu-coupons").addEventListener("click", async () => {
  const list = el("ol", { className: "list", id: "coupons-list" });
  openSheet("My coupons", list);
  if (TOKEN) await refreshCoupons();
  for (const c of S.coupons) list.append(el("li", {}, el("b", {}, c.template.title), ` · ${c.state}`));
  if (!list.childElementCount) list.append(el("li", {}, TOKEN ? "No coupons yet" : "Sign in to claim coupons"));
});

/** What a coupon would take off (an estimate; the order's pricing is the truth). */
function estimate(c, subtotal, currency) {
  const t = c.template;
  if (c.state !== "claimed" || t.currency !== currency || subtotal < t.min_spend) return -1;
  if (t.kind === "amount_off") return Math.min(t.amount, subtotal);
  if (t.kind === "percent_off") return Math.min(Math.floor((subtotal * t.percent) / 100), t.cap ?? Infinity);
  return 1; // free shipping: some value, below a real discount
}

$("#open-checkout").addEventListener("click", async () => {
  const form = $("#checkout-tpl").content.firstElementChild.cloneNode(true);
  openSheet("Checkout", form);
  const saved = store.get("form", {});
  for (const input of form.querySelectorAll("input")) {
    input.value = saved[input.name] ?? (localStorage.getItem(`lc.form.${input.name}`) || "");
    input.addEventListener("input", () => { // remembered on the device, across reconnects
      saved[input.name] = input.value;
      store.set("form", saved);
      localStorage.setItem(`lc.form.${input.name}`, input.value);
    });
  }
  await refreshCoupons();
  const lines = S.held.filter((h) => !h.order);
  const subtotal = lines.reduce((sum, h) => sum + h.price * h.quantity, 0);
  const currency = lines[0]?.currency || "USD";
  const select = form.querySelector("#coupon-select");
  let best = null;
  let bestValue = 0;
  for (const c of S.coupons) {
    const value = estimate(c, subtotal, currency);
    if (value < 0) continue;
    select.append(el("option", { value: c.id }, `${c.template.title}`));
    if (value > bestValue) { best = c.id; bestValue = value; }
  }
  if (best) select.value = best;
  const preview = () => {
    const c = S.coupons.find((x) => x.id === select.value);
    const off = c ? Math.max(0, estimate(c, subtotal, currency)) : 0;
    breakdown({ subtotal, discount: c && c.template.kind !== "free_shipping" ? off : 0, shipping: null,
      total: null }, currency);
  };
  select.addEventListener("change", preview);
  preview();
  if (S.order && S.order.state === "pending_payment") showOrder(S.order);
  form.addEventListener("submit", (event) => { event.preventDefault(); placeOrder(form, lines); });
  form.querySelector("#pay").addEventListener("click", () => pay());
});

function breakdown(p, currency) {
  const dl = $("#breakdown");
  const row = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
  dl.replaceChildren(...row("Subtotal", money(p.subtotal, currency)),
    ...row("Discount", p.discount ? `−${money(p.discount, currency)}` : "—"),
    ...row("Shipping", p.shipping === null ? "at checkout" : money(p.shipping, currency)),
    ...row("Total", p.total === null ? "—" : money(p.total, currency)));
}

async function placeOrder(form, lines) {
  const f = Object.fromEntries(new FormData(form));
  const contact = {};
  if (f.email) contact.email = f.email;
  if (f.phone) contact.phone = f.phone;
  const status = $("#order-status");
  if (!Object.keys(contact).length) { status.textContent = "Add an email or a phone"; return; }
  const key = store.get("checkoutKey", null) || viewer.newId();
  store.set("checkoutKey", key);
  const body = {
    reservations: lines.map((h) => h.reservation), coupons: f.coupon ? [f.coupon] : [],
    shipping_address: { name: f.name, line1: f.line1, city: f.city, postal_code: f.postal_code, country: String(f.country).toUpperCase() },
    contact, idempotency_key: key, device,
  };
  status.textContent = "Placing order…";
  const r = await api(room, TOKEN, "POST", "/orders", body);
  if (!r.ok) { status.textContent = r.body.error?.message || "Checkout failed"; store.set("checkoutKey", null); return; }
  store.set("checkoutKey", null);
  for (const h of S.held) if (body.reservations.includes(h.reservation)) h.order = r.body.id;
  saveHeld();
  showOrder(r.body);
}

function showOrder(o) {
  S.order = o; store.set("order", o);
  breakdown(o.pricing, o.currency);
  $("#place").hidden = o.state !== "draft";
  const pay = $("#pay");
  pay.hidden = o.state !== "pending_payment";
  pay.textContent = `Pay ${money(o.pricing.total, o.currency)}`;
  const status = $("#order-status");
  status.textContent = `Order ${o.id}: ${o.state.replace("_", " ")}`;
  status.dataset.state = o.state;
}

async function pay() {
  const o = S.order;
  const status = $("#order-status");
  status.textContent = "Paying…";
  const p = await api(room, TOKEN, "POST", `/orders/${o.id}/payment`);
  if (!p.ok) { status.textContent = p.body.error?.message || "Payment failed"; return; }
  // The simulated provider's pay API (a real provider's hosted page would open here).
  const done = await fetch(`/psp/pay/${p.body.payment}`, { method: "POST", body: JSON.stringify({ outcome: "succeeded" }) });
  if (!done.ok) { status.textContent = "The provider refused the payment"; return; }
  for (let i = 0; i < 40; i += 1) { // order status until paid
    const r = await api(room, TOKEN, "GET", `/orders/${o.id}`);
    if (r.ok) { showOrder(r.body); if (r.body.state !== "pending_payment") break; }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (S.order.state === "paid") {
    S.held = S.held.filter((h) => h.order !== o.id); saveHeld();
  }
}

ix.setup({ viewer, room, token: TOKEN, api, now, hold, store, user: () => S.user, sale: (id) => S.sales.get(id) });
social.setup({ room, token: TOKEN, api, now, hold, store, toast: ix.toast, sheet: openSheet,
  team: query.get("team"),
  held: () => S.held, product: () => S.product, roomState: () => S.room?.state, sales: () => S.sales });
features.setup({ room, token: TOKEN, viewer });
viewer.start();
