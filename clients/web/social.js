// Social selling on the viewer's page (issue 9): the group-buy card (start a team at the group
// price, or join an open one: "2 more needed — join!"; your team's countdown, checkout of its
// reservation, completed / failed), Share (a signed link from POST .../share: the system share
// sheet, else the clipboard; the team's link while yours is forming; a sheet shows the link and
// the invite leaderboard), ?team= opening that team's join prompt, "Remind me" while the show or
// a sale is still to come.
import { $, el, money } from "./util.js";

let C = null; // {room, token, api, now, hold, store, toast, sheet, team, held(), product(), roomState(), sales()}
const D = { deals: new Map(), shown: null, subscribed: null };
const TEAM_ENTRY = /^team_/;

export function setup(ctx) {
  C = ctx;
  $("#share").addEventListener("click", share);
  $("#gb-share").addEventListener("click", share);
  $("#gb-start").addEventListener("click", () => take("POST", (d) => `/group-buys/${d.id}/teams`));
  $("#gb-teams").addEventListener("click", (event) => {
    const team = event.target.closest("button")?.dataset.team;
    if (team) take("POST", (d) => `/group-buys/${d.id}/teams/${team}/join`);
  });
  $("#gb-checkout").addEventListener("click", () => $("#open-checkout").click());
  $("#remind").addEventListener("click", toggleReminder);
}

/** After a welcome: the room's deals with their teams (carried by the welcome); this
 * viewer's reminder if one can be set. */
export async function welcome(w) {
  for (const d of w.group_buys || []) D.deals.set(d.id, d);
  if (C.token && D.subscribed === null && upcoming()) {
    const me = await C.api(C.room, C.token, "GET", "/reminders/me");
    if (me.ok) D.subscribed = Boolean(me.body.subscribed);
  }
  render();
}

async function load(id) {
  const r = await C.api(C.room, C.token, "GET", `/group-buys/${id}`);
  if (r.ok) D.deals.set(id, r.body);
  render();
}

/** team_started / team_joined / team_completed / team_failed: the team changes in place (a
 * deal not seen yet is fetched once). */
export function entry(e) {
  if (e.kind === "groupbuy_opened") {
    const { kind, ts, ref, ...deal } = e;
    D.deals.set(ref, { ...deal, id: ref });
    render();
    return;
  }
  if (!TEAM_ENTRY.test(e.kind)) return;
  const d = D.deals.get(e.groupbuy);
  if (!d) { load(e.groupbuy); return; }
  const old = d.teams.find((t) => t.id === e.team);
  const roster = [...(old?.roster || [])];
  if (e.user && !roster.some((m) => m.user === e.user)) roster.push({ user: e.user, name: e.name });
  const team = { share_path: `/live/${C.room}?team=${e.ref}`, ...old, id: e.team, state: e.state,
    size: e.size, needed: e.size - e.members, deadline: e.deadline, roster };
  d.teams = [...d.teams.filter((t) => t !== old), team];
  render();
}

/** Private notices: the team completed or failed; a reminder. */
export function notice(f) {
  if (f.kind === "team_completed" || f.kind === "team_failed") {
    const mine = C.store.get(`team.${f.groupbuy}`, null);
    if (mine) C.store.set(`team.${f.groupbuy}`, { ...mine, state: f.kind.slice(5), refunded: f.refunded });
    render();
  } else if (f.kind === "reminder") {
    C.toast(f.reminder === "going_live" ? "We're live now!" : `Flash sale soon: ${f.title} at ${money(f.price, f.currency)}`, "reminder");
  }
}

export function second() {
  render();
}

// ---- group buy ---------------------------------------------------------------------------------
/** The deal on the card: the one a ?team= link names, else one where this viewer's team is
 * still open, else the newest for the pinned product, else the newest. */
function pick() {
  const deals = [...D.deals.values()].reverse();
  const product = C.product();
  const active = (d) => {
    const mine = C.store.get(`team.${d.id}`, null);
    return mine && ["forming", "full"].includes(d.teams.find((t) => t.id === mine.team)?.state);
  };
  return D.deals.get(C.team?.split(".")[0]) || deals.find(active)
    || deals.find((d) => product && d.product === product.id) || deals[0];
}

const left = (team) => `${team.needed} more needed`;

function render() {
  renderReminder();
  const d = pick();
  const card = $("#groupbuy");
  card.hidden = !d;
  if (!d) return;
  const cur = d.currency;
  const mine = C.store.get(`team.${d.id}`, null);
  const team = d.teams.find((t) => t.id === mine?.team);
  const state = team?.state || mine?.state;
  put("#gb-title", `Group buy: ${d.title}`);
  put("#gb-terms", `${money(d.group_price, cur)} each in teams of ${d.team_size} (alone ${money(d.list_price, cur)})`);
  put("#gb-clock", team && state === "forming" ? countdown(team.deadline - C.now()) : "");
  const inTeam = Boolean(mine) && state !== "failed"; // after a failed team one may start again
  const others = inTeam ? [] : d.teams.filter((t) => t.state === "forming" && t.deadline > C.now());
  const invite = others.find((t) => `${d.id}.${t.id}` === C.team);
  const rows = (invite ? [invite, ...others.filter((t) => t !== invite)] : others).slice(0, 3);
  const list = $("#gb-teams");
  const sig = JSON.stringify(rows.map((t) => [t.id, t.needed, names(t)]));
  if (list.dataset.sig !== sig) { // rebuilt only when it changes: a tap never hits a stale button
    list.dataset.sig = sig;
    list.replaceChildren(...rows.map((t) => el("li", { className: t === invite ? "invited" : "" },
      el("span", {}, `${names(t)} · ${left(t)} — `),
      el("button", { type: "button", dataset: { team: t.id }, disabled: !C.token }, "Join"))));
  }
  $("#gb-start").hidden = inTeam;
  $("#gb-start").disabled = !C.token;
  $("#gb-start").textContent = C.token ? `Start a team at ${money(d.group_price, cur)}` : "Sign in to team up";
  const held = mine && C.held().find((h) => h.reservation === mine.reservation && !h.order);
  $("#gb-checkout").hidden = !held || state === "failed";
  $("#gb-share").hidden = state !== "forming";
  card.dataset.state = state || "open";
  const linked = C.team?.startsWith(`${d.id}.`) && d.teams.find((t) => `${d.id}.${t.id}` === C.team);
  let text = "";
  if (state === "completed") text = `Team complete ✓ You pay ${money(d.group_price, cur)}`;
  else if (state === "failed") {
    text = `The team didn't make it in time: ${mine?.refunded ? `${money(mine.refunded, cur)} refunded` : "your unit was released"}`;
  } else if (state === "full") text = "Team full: waiting for everyone to pay";
  else if (team) text = `Your team: ${left(team)} — invite friends!`;
  else if (invite) text = `${invite.roster[0].name} invited you: ${left(invite)} — join!`;
  else if (linked) text = "That team is closed: start your own";
  if (!$("#gb-status").dataset.error) put("#gb-status", text);
}

/** Set a text only when it changes (live regions would announce every rewrite). */
function put(selector, text) {
  const node = $(selector);
  if (node.textContent !== text) node.textContent = text;
}

const names = (t) => t.roster.map((m) => m.name).join(", ");

async function take(method, path) {
  const d = pick();
  const status = $("#gb-status");
  const r = await C.api(C.room, C.token, method, path(d), {});
  if (!r.ok) { status.dataset.error = "1"; status.textContent = r.body.error?.message || "Try again"; return; }
  delete status.dataset.error;
  const { reservation, ...team } = r.body; // the team, and this member's unit in it
  C.store.set(`team.${d.id}`, { team: team.id, reservation });
  C.hold({ reservation, sale: d.sale, quantity: 1, expires_at: team.deadline,
    price: d.group_price, currency: d.currency, title: `${d.title} (group buy)` });
  d.teams = [...d.teams.filter((t) => t.id !== team.id), team];
  render();
}

// ---- share, reminders, leaderboard ---------------------------------------------------------------
async function share() {
  const link = el("p", { id: "share-link" }, C.token ? "…" : "Sign in to get your share link");
  const board = el("ol", { className: "list", id: "invites" });
  C.sheet("Invite friends", el("div", {}, link, el("h3", {}, "Top inviters"), board));
  leaderboard(board);
  if (!C.token) return;
  const r = await C.api(C.room, C.token, "POST", "/share", {});
  if (!r.ok) { link.textContent = r.body.error?.message || "Could not make a link"; return; }
  let url = new URL(r.body.url, location.origin);
  const d = pick();
  const team = d && d.teams.find((t) => t.id === C.store.get(`team.${d.id}`, null)?.team);
  if (team?.state === "forming") { // the team's own link, still carrying the sharer's ref
    url = new URL(team.share_path, location.origin);
    url.searchParams.set("ref", r.body.ref);
  }
  link.textContent = url.href;
  link.dataset.ref = r.body.ref;
  try {
    if (navigator.share) await navigator.share({ title: document.title, url: url.href });
    else { await navigator.clipboard.writeText(url.href); link.append(el("b", {}, " · copied")); }
  } catch {
    // dismissed, or no clipboard here: the link is on screen
  }
}

function upcoming() {
  if (C.roomState() === "scheduled") return "The show hasn't started yet";
  const sale = [...C.sales().values()].find((s) => s.state === "scheduled");
  return sale ? `${sale.title} goes on sale soon` : null;
}

function renderReminder() {
  const text = upcoming();
  $("#reminder").hidden = !text;
  if (!text) return;
  put("#remind-text", text);
  const button = $("#remind");
  button.disabled = !C.token;
  button.setAttribute("aria-pressed", String(Boolean(D.subscribed)));
  put("#remind", !C.token ? "Sign in for reminders" : D.subscribed ? "✓ Reminder set" : "🔔 Remind me");
}

async function toggleReminder() {
  const on = !D.subscribed;
  const r = await C.api(C.room, C.token, on ? "POST" : "DELETE", "/reminders", on ? {} : undefined);
  if (r.ok) D.subscribed = on;
  else C.toast(r.body.error?.message || "Try again");
  renderReminder();
}

async function leaderboard(list) {
  const r = await C.api(C.room, C.token, "GET", "/referrals/leaderboard");
  const top = r.ok ? r.body.leaders : [];
  list.replaceChildren(...top.map((s) => el("li", {}, el("b", {}, s.name),
    ` · ${s.invites} invite${s.invites === 1 ? "" : "s"}`)));
  if (!top.length) list.append(el("li", {}, "Nobody has shared yet: be the first!"));
}

function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} left`;
}
