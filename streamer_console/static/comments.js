// Comments: the live feed from ticks (newest first, at most MAX_ROWS rows in the DOM, so a
// busy room never freezes the page), per-comment delete / pin / mute / ban, the pinned
// comment, slow mode and banned words. Questions and buying intent are highlighted.

import { act, api } from "./api.js";
import { $, actionButton, confirmAction, el } from "./util.js";
import { clockTime, count, label, t } from "./i18n.js";

export const MAX_ROWS = 200;
const INTENT = new RegExp(
  [
    "[?？]",
    "\\b(price|how much|buy|size|sizes|link|cost|order|ship|shipping|available|stock)\\b",
    "多少|怎么买|尺码|链接|价格",
  ].join("|"),
  "i",
);
const STAFF = ["host", "moderator"];

let pinned = null;
let shown = 0;
let sampledOut = 0;
// While the pointer is on the feed, new comments wait here instead of pushing the rows
// (and the button under the pointer) down; they show when the pointer leaves.
let held = [];
let holding = false;

export function init() {
  const feed = $("#feed");
  // A mouse only: a tap on a touch screen has no "leave" to end the pause. Only a pointer
  // that moves on the feed holds it: one resting where the sign-in button was (the feed now
  // sits there) is not reaching for a row.
  feed.addEventListener("pointermove", (ev) => {
    if (ev.pointerType === "mouse") holding = true;
  });
  feed.addEventListener("pointerleave", release);
  $("#feed-held").addEventListener("click", release);
  $("#slow-form").addEventListener("submit", setSlowMode);
  $("#words-form").addEventListener("submit", saveWords);
  $("#unpin-comment").addEventListener("click", (ev) => unpin(ev.currentTarget));
}

export function reset(welcome) {
  $("#feed").replaceChildren();
  held = [];
  showHeld();
  shown = 0;
  sampledOut = 0;
  add(welcome.history.filter((e) => e.kind === "comment"));
  showPin(welcome.room.pinned);
  loadWords();
}

export function entry(e) {
  if (e.kind === "comment_deleted") {
    removeRow(e.ref);
    if (pinned && pinned.id === e.ref) showPin(null);
  } else if (e.kind === "comment_pinned") {
    showPin({ id: e.ref, user: e.user, name: e.name, role: e.role, text: e.text });
  } else if (e.kind === "comment_unpinned") {
    showPin(null);
  }
}

export function tick(message) {
  const fresh = (message.entries || []).filter((e) => e.kind === "comment");
  if (fresh.length && holding) hold(fresh);
  else if (fresh.length) add(fresh);
  if (message.sampled_out) {
    sampledOut += message.sampled_out;
    $("#sampled").textContent = t("comments.sampled", { n: count(sampledOut) });
  }
}

export function refresh() {}
export function second() {}

/** Room settings changed (welcome, room_updated): show the slow mode in force. */
export function settings(roomSettings) {
  if (!roomSettings) return;
  const seconds = Math.round(roomSettings.slow_mode_ms / 1000);
  $("#slow-current").textContent = seconds > 0 ? t("comments.slowOn", { seconds }) : t("comments.slowOff");
  $("#slow-current").dataset.on = seconds > 0 ? "1" : "0";
}

/** An error the engine pushed to the console's own connection (a LivecartError, not the
 * answer to a request). */
export function engineError(error) {
  $("#feed-notice").textContent = t("comments.engine", { detail: error.detail, code: error.code });
}

// ---- feed -----------------------------------------------------------------------------------

export const isIntent = (text) => INTENT.test(text);

const time = clockTime;

function commentRow(c) {
  const staff = STAFF.includes(c.role);
  const intent = !staff && isIntent(c.text);
  return el(
    "li",
    { class: `comment${intent ? " intent" : ""}${staff ? " staff" : ""}`,
      dataset: { id: c.id, user: c.user } },
    el("div", { class: "comment-head" },
      el("time", {}, time(c.ts)),
      el("strong", { class: "name", title: c.user }, c.name),
      staff ? el("span", { class: "badge role" }, label("role", c.role)) : null,
      intent ? el("span", { class: "badge intent-tag" }, t("comments.intent")) : null),
    el("p", { class: "text" }, c.text),
    el("div", { class: "comment-actions" },
      actionButton(t("comments.pin"), "pin", (b) => pin(c, b)),
      actionButton(t("comments.delete"), "delete", (b) => remove(c, b)),
      staff ? null : actionButton(t("comments.mute"), "mute", (b) => mute(c, b)),
      staff ? null : actionButton(t("comments.ban"), "ban danger", (b) => ban(c, b))),
  );
}

function add(list) {
  const feed = $("#feed");
  const fragment = document.createDocumentFragment();
  // Only the newest MAX_ROWS can be shown; build nothing for the rest.
  for (const c of list.slice(-MAX_ROWS)) {
    if (feed.querySelector(`li[data-id="${c.id}"]`)) continue;
    fragment.prepend(commentRow(c));
  }
  feed.prepend(fragment);
  while (feed.children.length > MAX_ROWS) feed.lastElementChild.remove();
  shown += list.length;
  $("#feed-count").textContent = t("comments.count", { count: shown, n: count(shown) });
}

function hold(list) {
  held = held.concat(list).slice(-MAX_ROWS);
  showHeld();
}

function release() {
  holding = false;
  const list = held;
  held = [];
  showHeld();
  if (list.length) add(list);
}

function showHeld() {
  const bar = $("#feed-held");
  bar.hidden = held.length === 0;
  bar.textContent = t("comments.held", { n: held.length });
}

function removeRow(id) {
  held = held.filter((c) => c.id !== id);
  showHeld();
  const row = $(`#feed li[data-id="${id}"]`);
  if (row) row.remove();
}

function showPin(comment) {
  pinned = comment;
  const bar = $("#pinned-comment");
  bar.hidden = !comment;
  $("#pinned-text").textContent = comment ? `${comment.name}: ${comment.text}` : "";
}

// ---- actions --------------------------------------------------------------------------------

async function pin(c, button) {
  const done = await act(t("comments.pinAct", { name: c.name }), () => api("POST", "/pin", { comment_id: c.id }), button);
  if (done) showPin(c);
}

async function unpin(button) {
  const done = await act(t("comments.unpinAct"), () => api("DELETE", "/pin"), button);
  if (done) showPin(null);
}

async function remove(c, button) {
  const done = await act(t("comments.deleteAct", { name: c.name }), () => api("DELETE", `/comments/${c.id}`), button);
  if (done) removeRow(c.id);
}

const TOGGLES = {
  muted: { button: "button.mute", on: "comments.unmute", off: "comments.mute" },
  banned: { button: "button.ban", on: "comments.unban", off: "comments.ban" },
};

/** Mark every shown row of `user` muted or banned (or not), and flip its button. */
function markUser(user, flag, on) {
  const toggle = TOGGLES[flag];
  for (const row of document.querySelectorAll(`#feed li[data-user="${CSS.escape(user)}"]`)) {
    row.classList.toggle(flag, on);
    const button = row.querySelector(toggle.button);
    if (button) button.textContent = t(on ? toggle.on : toggle.off);
  }
}

async function mute(c, button) {
  const user = encodeURIComponent(c.user);
  if (button.closest("li").classList.contains("muted")) {
    const done = await act(t("comments.unmuteAct", { name: c.name }), () => api("DELETE", `/mutes/${user}`), button);
    if (done) markUser(c.user, "muted", false);
    return;
  }
  const minutes = Number($("#mute-minutes").value);
  const done = await act(t("comments.muteAct", { name: c.name, minutes }),
    () => api("POST", "/mutes", { user: c.user, minutes }), button);
  if (done) markUser(c.user, "muted", true);
}

async function ban(c, button) {
  const user = encodeURIComponent(c.user);
  if (button.closest("li").classList.contains("banned")) {
    const done = await act(t("comments.unbanAct", { name: c.name }), () => api("DELETE", `/bans/${user}`), button);
    if (done) markUser(c.user, "banned", false);
    return;
  }
  if (!(await confirmAction(t("comments.banQuestion", { name: c.name, user: c.user }), t("comments.ban")))) return;
  const done = await act(t("comments.banAct", { name: c.name }), () => api("POST", "/bans", { user: c.user }), button);
  if (done) markUser(c.user, "banned", true);
}

async function setSlowMode(event) {
  event.preventDefault();
  const seconds = Number($("#slow-seconds").value || 0);
  const done = await act(seconds ? t("comments.slowAct", { seconds }) : t("comments.slowOffAct"),
    () => api("PUT", "/slow-mode", { seconds }), event.currentTarget.querySelector("button"));
  if (done) settings({ slow_mode_ms: done.slow_mode_ms });
}

async function loadWords() {
  const load = () => api("GET", "/banned-words");
  const data = await act(t("comments.loadWords"), load, null, { quiet: true });
  if (data) $("#banned-words").value = data.words.join("\n");
}

async function saveWords(event) {
  event.preventDefault();
  const words = $("#banned-words").value.split(/[\n,]/).map((w) => w.trim()).filter(Boolean);
  const data = await act(t("comments.saveWords"), () => api("PUT", "/banned-words", { words }),
    event.currentTarget.querySelector("button"));
  if (data) $("#banned-words").value = data.words.join("\n");
}
