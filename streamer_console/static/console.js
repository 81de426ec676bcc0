// The streamer console: sign-in, the realtime seat (a LivecartViewer of the JavaScript SDK,
// served at /sdk/, with the host's or moderator's token), the header (room state, show controls,
// live numbers) and the panels (run-of-show, flash sales, comments, coupons, orders to
// review, the dashboard view, giveaways, auctions, comment-to-buy, social), each in its own module with the same small interface: reset(welcome, role),
// refresh(welcome) after a resume, entry(entry), tick(tick), second(). The engine's features
// bring their own panels (features.js).

import { act, api, setSession } from "./api.js";
import * as auctions from "./auctions.js";
import * as commentBuy from "./comment_buy.js";
import { LivecartError, LivecartViewer } from "/sdk/index.js";
import * as comments from "./comments.js";
import * as coupons from "./coupons.js";
import * as customers from "./customers.js";
import * as dashboard from "./dashboard.js";
import * as features from "./features.js";
import * as giveaways from "./giveaways.js";
import * as interactive from "./interactive.js";
import * as lineup from "./lineup.js";
import * as orders from "./orders.js";
import * as reconcile from "./reconcile.js";
import * as sales from "./sales.js";
import * as social from "./social.js";
import * as streamCheck from "./stream_check.js";
import { $, confirmAction, el, syncClock } from "./util.js";
import { LANGUAGES, count, label, language, setLanguage, startLanguage, t, translate } from "./i18n.js";

// The console's language: the one picked on this device, else the browser's (i18n.js).
await setLanguage(startLanguage(), { remember: false });
translate(document);

const STORAGE_KEY = "livecart.console";
const PANELS = [
  lineup, sales, comments, coupons, orders, dashboard, interactive, giveaways, auctions, commentBuy,
  social, streamCheck, reconcile, customers,
];
const STAFF = ["host", "moderator"];
const STATUS_TEXT = {
  connecting: "conn.connecting",
  live: "conn.live",
  reconnecting: "conn.reconnecting",
  closed: "conn.closed",
};

const state = { room: null, role: null, viewer: null };

/** The claims of a livecart token (`lc1.…`) or a JWT from the platform's identity service
 * (docs/security.md), read without verifying (the engine verifies). Both carry `room`,
 * `role` and `sub`. */
export function tokenClaims(token) {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || !(parts[0] === "lc1" || parts[0].startsWith("eyJ"))) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

// ---- sign-in ------------------------------------------------------------------------------

function showSignIn(message = "") {
  $("#console").hidden = true;
  $("#signin").hidden = false;
  $("#create-room").hidden = true;
  $("#signin-error").textContent = message;
}

/** A host token for a room that does not exist yet: offer to create it (POST /api/rooms). */
function offerCreateRoom() {
  $("#create-room-id").textContent = state.room;
  $("#create-room").hidden = false;
  $("#new-room-title").focus();
}

async function createRoom(event) {
  event.preventDefault();
  const body = { id: state.room, title: $("#new-room-title").value.trim() };
  const button = event.currentTarget.querySelector("button");
  const room = await act(t("act.createRoom", { room: body.id }), () => api("POST", "/api/rooms", body), button);
  if (room) signIn(state.token, room.id);
  else $("#signin-error").textContent = $("#feedback-log li").textContent;
}

function fillRoomFromToken() {
  const claims = tokenClaims($("#token").value);
  if (claims && claims.room && !$("#room-id").dataset.edited) $("#room-id").value = claims.room;
}

function signIn(token, room) {
  features.stop();
  disconnect();
  const claims = tokenClaims(token);
  room = (room || (claims && claims.room) || "").trim();
  if (!claims) return showSignIn(t("signin.notToken"));
  if (!STAFF.includes(claims.role)) return showSignIn(t("signin.useStaff"));
  if (!/^[a-z0-9][a-z0-9_-]{0,39}$/.test(room)) return showSignIn(t("signin.badRoom"));
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ token, room }));
  setSession(token, room);
  state.room = room;
  state.token = token;
  state.claims = claims;
  $("#signin-error").textContent = t("signin.connecting");
  connect(token, room);
}

/** The realtime seat of this sign-in: the engine gives the token's role (host, moderator). */
function connect(token, room) {
  const viewer = new LivecartViewer({ url: location.origin, room, token });
  state.viewer = viewer;
  let joined = false; // a later welcome is a resume
  let pushedError = null; // the engine's last error push: why it closes, if it does
  // After a sign-out and a new sign-in, frames the old viewer's socket delivered before it
  // closed may still be dispatched: only the current viewer is heard.
  const on = (name, handler) => viewer.on(name, (...args) => viewer === state.viewer && handler(...args));
  on("status", (event) => status(event, pushedError));
  on("welcome", (message) => {
    pushedError = null;
    welcome(message, joined);
    joined = true;
  });
  on("tick", tick);
  on("error", (error) => {
    // The SDK hands listeners' exceptions here too: those are the console's bugs.
    if (!(error instanceof LivecartError)) throw error;
    pushedError = error;
    comments.engineError(error);
  });
  viewer.start();
}

function disconnect() {
  const viewer = state.viewer;
  state.viewer = null;
  if (viewer) viewer.close();
}

function signOut() {
  orders.stop();
  dashboard.stop();
  giveaways.stop();
  auctions.stop();
  social.stop();
  features.stop();
  disconnect();
  sessionStorage.removeItem(STORAGE_KEY);
  showSignIn(t("signin.signedOut"));
}

// ---- realtime -----------------------------------------------------------------------------

function welcome(message, resumed) {
  if (!STAFF.includes(message.role)) {
    signOut();
    return showSignIn(t("signin.wrongRole", { role: message.role }));
  }
  syncClock(message.server_time);
  state.role = message.role;
  document.body.dataset.role = message.role;
  $("#who").textContent = t("header.who", { name: message.name, role: label("role", message.role) });
  $("#signin").hidden = true;
  $("#console").hidden = false;
  if (resumed && message.recovered) {
    // Entries missed while away are replayed; counters are not, so take the welcome's.
    for (const entry of message.history) dispatch(entry);
    for (const panel of PANELS) panel.refresh(message);
  } else {
    for (const panel of PANELS) panel.reset(message, state.role);
  }
  showRoom(message.room);
  showStats(message.stats);
  features.welcome(message, resumed && message.recovered);
}

function tick(message) {
  syncClock(message.t);
  for (const entry of message.entries || []) dispatch(entry);
  if (message.stats) showStats(message.stats);
  for (const panel of PANELS) panel.tick(message);
  features.tick(message);
}

function dispatch(entry) {
  if (entry.kind === "room_state") showRoom({ ...state.roomObject, state: entry.state });
  else if (entry.kind === "room_updated") {
    const { id, kind, ts, ...fields } = entry; // the entry's own id is not the room's
    showRoom({ ...state.roomObject, ...fields });
  }
  for (const panel of PANELS) panel.entry(entry);
}

/** A status event of the SDK; `pushedError`: the engine's last error push, which says why
 * a connection closed when the close itself does not. */
function status({ status: kind, code, reason, error }, pushedError) {
  const banner = $("#banner");
  const conn = $("#conn");
  conn.dataset.status = kind;
  conn.textContent = t(STATUS_TEXT[kind]);
  banner.hidden = kind !== "reconnecting";
  if (kind === "reconnecting" && $("#console").hidden) {
    $("#signin-error").textContent = t("signin.retrying");
  }
  if (kind === "closed") {
    const cause = error || pushedError;
    const why = cause ? `${cause.detail} (${cause.code})` : reason || t("conn.closedCode", { code });
    const message = t("conn.disconnected", { why });
    if ($("#console").hidden) {
      sessionStorage.removeItem(STORAGE_KEY);
      showSignIn(message);
      const missing = cause && cause.code === "room_not_found";
      if (missing && state.claims.role === "host") offerCreateRoom();
    } else {
      banner.hidden = false;
      banner.textContent = t("banner.signInAgain", { message });
    }
  } else {
    banner.textContent = t("banner.reconnecting");
  }
}

// ---- header -------------------------------------------------------------------------------

function showRoom(room) {
  state.roomObject = room;
  $("#room-title").textContent = room.title;
  $("#room-title").title = room.title; // in full on hover where the header cuts it
  $("#room-id-label").textContent = room.id;
  const badge = $("#room-state");
  badge.textContent = label("room.state", room.state);
  badge.dataset.state = room.state;
  $("#go-live").disabled = room.state !== "scheduled";
  $("#end-show").disabled = room.state === "ended";
  comments.settings(room.settings);
}

function showStats(stats) {
  for (const name of ["online", "peak", "unique", "likes"]) {
    $(`#stat-${name}`).textContent = count(Number(stats[name] || 0));
  }
}

async function goLive(event) {
  // Going live with no picture is the mistake the stream check is there to catch.
  const health = streamCheck.health();
  const warning = health === "playing" ? "" : ` ${t("stream.notPlaying", { health: label("stream.health", health) })}`;
  const ok = await confirmAction(`${t("show.goLiveQuestion")}${warning}`, t("show.goLive"), {
    danger: false,
  });
  if (!ok) return;
  const room = await act(t("show.goLive"), () => api("POST", "/go-live"), event.target);
  if (room) showRoom(room);
}

async function endShow(event) {
  const ok = await confirmAction(t("show.endQuestion"), t("show.end"));
  if (!ok) return;
  const room = await act(t("show.end"), () => api("POST", "/end"), event.target);
  if (room) showRoom(room);
}

// ---- boot ---------------------------------------------------------------------------------

/** The language selects (sign-in card and header): a new language applies on a reload,
 * as on the viewer page: every panel is drawn again in it, nothing half-translated. */
function languageSelects() {
  for (const select of /** @type {NodeListOf<HTMLSelectElement>} */ (document.querySelectorAll(".language-select"))) {
    select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) =>
      el("option", { value: code, lang: code, selected: code === language() }, name)));
    select.addEventListener("change", async () => {
      await setLanguage(select.value);
      location.reload();
    });
  }
}

function boot() {
  languageSelects();
  $("#token").addEventListener("input", fillRoomFromToken);
  $("#room-id").addEventListener("input", () => ($("#room-id").dataset.edited = "1"));
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("#token").value.trim(), $("#room-id").value);
  });
  $("#sign-out").addEventListener("click", signOut);
  $("#create-room").addEventListener("submit", createRoom);
  $("#reconnect").addEventListener("click", () => state.viewer && state.viewer.drop());
  $("#go-live").addEventListener("click", goLive);
  $("#end-show").addEventListener("click", endShow);
  for (const panel of PANELS) panel.init();
  features.init(() => state.viewer);
  setInterval(() => PANELS.forEach((panel) => panel.second()), 1000);
  const saved = sessionStorage.getItem(STORAGE_KEY);
  if (saved) {
    const { token, room } = JSON.parse(saved);
    $("#token").value = token;
    $("#room-id").value = room;
    signIn(token, room);
  }
}

boot();
