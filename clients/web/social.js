// Social selling on the viewer's page (issue 9): the group-buy card (start a team at the group
// price, or join an open one: "2 more needed — join!"; your team's countdown, checkout of its
// reservation, completed / failed), Share (a signed link from POST .../share: the system share
// sheet, else the clipboard; the team's link while yours is forming; a sheet shows the link and
// the invite leaderboard), ?team= opening that team's join prompt, "Remind me" while the show or
// a sale is still to come. Every string comes from the catalogs (social.* keys, i18n.js).
import { count, t } from "./i18n.js";
import { $, clock, el, money, tOr } from "./util.js";

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
    C.toast(f.reminder === "going_live" ? t("social.remind.live")
      : t("social.remind.saleSoon", { title: f.title, price: money(f.price, f.currency) }), "reminder");
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

const left = (team) => t("social.gb.needed", { count: team.needed, n: count(team.needed) });

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
  put("#gb-title", t("social.gb.title", { title: d.title }));
  put("#gb-terms", t("social.gb.terms", { price: money(d.group_price, cur), size: count(d.team_size),
    alone: money(d.list_price, cur) }));
  put("#gb-clock", team && state === "forming" ? t("social.gb.timeLeft", { time: clock(team.deadline - C.now()) }) : "");
  put("#gb-checkout", t("social.gb.checkout"));
  put("#gb-share", t("social.gb.invite"));
  const inTeam = Boolean(mine) && state !== "failed"; // after a failed team one may start again
  const others = inTeam ? [] : d.teams.filter((t) => t.state === "forming" && t.deadline > C.now());
  const invite = others.find((t) => `${d.id}.${t.id}` === C.team);
  const rows = (invite ? [invite, ...others.filter((t) => t !== invite)] : others).slice(0, 3);
  const list = $("#gb-teams");
  const sig = JSON.stringify([t("social.gb.join"), ...rows.map((r) => [r.id, r.needed, names(r)])]);
  if (list.dataset.sig !== sig) { // rebuilt only when it changes: a tap never hits a stale button
    list.dataset.sig = sig;
    list.replaceChildren(...rows.map((r) => el("li", { className: r === invite ? "invited" : "" },
      el("span", {}, t("social.gb.teamRow", { names: names(r), needed: left(r) })),
      el("button", { type: "button", dataset: { team: r.id }, disabled: !C.token }, t("social.gb.join")))));
  }
  $("#gb-start").hidden = inTeam;
  $("#gb-start").disabled = !C.token;
  put("#gb-start", C.token ? t("social.gb.start", { price: money(d.group_price, cur) }) : t("social.gb.signIn"));
  const held = mine && C.held().find((h) => h.reservation === mine.reservation && !h.order);
  $("#gb-checkout").hidden = !held || state === "failed";
  $("#gb-share").hidden = state !== "forming";
  card.dataset.state = state || "open";
  const linked = C.team?.startsWith(`${d.id}.`) && d.teams.find((t) => `${d.id}.${t.id}` === C.team);
  let text = "";
  if (state === "completed") text = t("social.gb.completed", { price: money(d.group_price, cur) });
  else if (state === "failed") {
    text = mine?.refunded ? t("social.gb.failedRefunded", { amount: money(mine.refunded, cur) }) : t("social.gb.failedReleased");
  } else if (state === "full") text = t("social.gb.full");
  else if (team) text = t("social.gb.yourTeam", { needed: left(team) });
  else if (invite) text = t("social.gb.invited", { name: invite.roster[0].name, needed: left(invite) });
  else if (linked) text = t("social.gb.linkClosed");
  if (!$("#gb-status").dataset.error) put("#gb-status", text);
}

/** Set a text only when it changes (live regions would announce every rewrite). */
function put(selector, text) {
  const node = $(selector);
  if (node && node.textContent !== text) node.textContent = text;
}

const names = (t) => t.roster.map((m) => m.name).join(", ");

async function take(method, path) {
  const d = pick();
  const status = $("#gb-status");
  const r = await C.api(C.room, C.token, method, path(d), {});
  if (!r.ok) { status.dataset.error = "1"; status.textContent = refusal(r.body.error); return; }
  delete status.dataset.error;
  const { reservation, ...team } = r.body; // the team, and this member's unit in it
  C.store.set(`team.${d.id}`, { team: team.id, reservation });
  C.hold({ reservation, sale: d.sale, quantity: 1, expires_at: team.deadline,
    price: d.group_price, currency: d.currency, title: t("social.gb.holdTitle", { title: d.title }) });
  d.teams = [...d.teams.filter((t) => t.id !== team.id), team];
  render();
}

// ---- share, reminders, leaderboard ---------------------------------------------------------------
async function share() {
  const link = el("p", { id: "share-link" }, C.token ? "…" : t("social.share.signIn"));
  const board = el("ol", { className: "list", id: "invites" });
  C.sheet(t("social.share.title"), el("div", {}, link, el("h3", {}, t("social.share.top")), board));
  leaderboard(board);
  if (!C.token) return;
  const r = await C.api(C.room, C.token, "POST", "/share", {});
  if (!r.ok) { link.textContent = r.body.error?.message || t("social.share.failed"); return; }
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
    else { await navigator.clipboard.writeText(url.href); link.append(el("b", {}, t("social.share.copied"))); }
  } catch {
    // dismissed, or no clipboard here: the link is on screen
  }
}

function upcoming() {
  if (C.roomState() === "scheduled") return t("social.remind.notStarted");
  const sale = [...C.sales().values()].find((s) => s.state === "scheduled");
  return sale ? t("social.remind.saleUpcoming", { title: sale.title }) : null;
}

function renderReminder() {
  const text = upcoming();
  $("#reminder").hidden = !text;
  if (!text) return;
  put("#remind-text", text);
  const button = $("#remind");
  button.disabled = !C.token;
  button.setAttribute("aria-pressed", String(Boolean(D.subscribed)));
  put("#remind", !C.token ? t("social.remind.signIn") : D.subscribed ? t("social.remind.set") : t("social.remind.button"));
}

async function toggleReminder() {
  const on = !D.subscribed;
  const r = await C.api(C.room, C.token, on ? "POST" : "DELETE", "/reminders", on ? {} : undefined);
  if (r.ok) D.subscribed = on;
  else C.toast(refusal(r.body.error));
  renderReminder();
}

async function leaderboard(list) {
  const r = await C.api(C.room, C.token, "GET", "/referrals/leaderboard");
  const top = r.ok ? r.body.leaders : [];
  list.replaceChildren(...top.map((s) => el("li", {}, el("b", {}, s.name),
    t("social.share.invites", { count: s.invites, n: count(s.invites) }))));
  if (!top.length) list.append(el("li", {}, t("social.share.nobody")));
}

/** The engine's refusal in the page's language when the catalog knows its code, else its
 * own text. */
function refusal(error) {
  return tOr(`social.err.${error?.code}`, {}, error?.message || t("social.tryAgain"));
}
