// Live polls on the viewer's phone page: while a poll is open, a compact card with the
// question and one big button per option; after voting, the bars with their shares and the
// viewer's choice marked (tap another option to change it, if the host allows), time left;
// when the poll ends, "Final results" for a few seconds. Anonymous viewers see the results
// and are asked to sign in to vote. Mounted by the page's feature seam (clients/web/features.js
// has the ctx it gets); texts are built as text nodes.
import { shares } from "./shares.js";

const FINAL_MS = 8000; // a closed poll's results stay on the card this long
const SHORT = 14; // options this short (all of them) sit two per row

const STYLE = `
.poll-head { display: flex; justify-content: space-between; align-items: baseline; gap: 8px; font-size: 13px; }
.poll-tag { font-weight: 700; letter-spacing: .06em; text-transform: uppercase; color: #9ec5ff; }
.poll-card[data-state="closed"] .poll-tag { color: var(--ok); }
.poll-q { margin: 1px 0 6px; font-size: 15px; font-weight: 700; overflow-wrap: anywhere; }
.poll-opts { display: grid; grid-template-columns: minmax(0, 1fr); gap: 6px; }
.poll-opts.two { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.poll-opt { position: relative; width: 100%; min-height: 44px; padding: 4px 12px; display: flex; align-items: center;
  gap: 8px; overflow: hidden; text-align: left; font-weight: 600; background: #262a36; border: 1px solid var(--accent); }
.poll-card[data-view="results"] .poll-opt { border-color: #4a5163; }
.poll-card[data-view="results"] .poll-opt:disabled { min-height: 34px; opacity: 1; }
.poll-opt .fill { position: absolute; inset: 0 auto 0 0; width: 0; background: #4a3470; transition: width .3s; }
.poll-opt .label, .poll-opt .pct { position: relative; }
.poll-opt .label { flex: 1; min-width: 0; overflow-wrap: anywhere; }
.poll-opt .pct { font-variant-numeric: tabular-nums; white-space: nowrap; }
.poll-card[data-view="vote"] .poll-opt .pct { display: none; }
.poll-card .poll-opt.mine { border: 2px solid #ffd166; }
.poll-opt.mine .fill { background: #7a1f3d; }
.poll-opt.win .fill { background: #1f5c3a; }
.poll-note { margin: 5px 0 0; font-size: 13px; color: var(--muted); }
.poll-note[data-tone="ok"] { color: var(--ok); }
.poll-note[data-tone="warn"] { color: #ffd166; }
`;

/** @param {import("/live/static/features.js").FeatureContext} ctx */
export function mount(ctx) {
  const { el, root } = ctx;
  const canVote = ctx.role !== "anonymous";
  const polls = new Map(); // id -> poll, as the engine last told; closedSeen: when we saw it close
  let offset = 0;
  let view = null; // the card of the shown poll: {id, node, rows, ...}
  const now = () => Date.now() + offset;
  const key = (id) => `lc.${ctx.room}.poll.${id}`;
  const mine = (id) => {
    const v = localStorage.getItem(key(id));
    return v === null ? null : Number(v); // an option index, or -1: voted elsewhere
  };

  root.hidden = true;
  root.setAttribute("aria-label", "Live poll");
  root.append(el("style", {}, STYLE));

  // ---- the card ------------------------------------------------------------------------------
  function build(poll) {
    const two = poll.options.every((o) => o.length <= SHORT);
    const rows = poll.options.map((option, i) => {
      const fill = el("span", { className: "fill" });
      const pct = el("span", { className: "pct" });
      const button = el("button", { type: "button", className: "poll-opt", onclick: () => vote(poll.id, i) },
        fill, el("span", { className: "label" }, option), pct);
      return { button, fill, pct };
    });
    const tag = el("span", { className: "poll-tag" });
    const clock = el("span", { className: "clock" });
    const note = el("p", { className: "poll-note" });
    note.setAttribute("role", "status");
    const group = el("div", { className: two ? "poll-opts two" : "poll-opts" }, ...rows.map((r) => r.button));
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", poll.question);
    const node = el("div", { className: "poll-card", dataset: { poll: poll.id } },
      el("div", { className: "poll-head" }, tag, clock), el("p", { className: "poll-q" }, poll.question),
      group, note);
    return { id: poll.id, node, rows, tag, clock, note, message: "", tone: "", pending: false };
  }

  function shown() {
    const all = [...polls.values()];
    const open = all.filter((p) => p.state === "open").sort((a, b) => b.opened_at - a.opened_at);
    if (open.length) return open[0];
    const recent = all.filter((p) => p.closedSeen && Date.now() - p.closedSeen < FINAL_MS);
    return recent.sort((a, b) => b.closedSeen - a.closedSeen)[0] || null;
  }

  function render() {
    const poll = shown();
    if (!poll) {
      root.hidden = true;
      if (view) view.node.remove();
      view = null;
      return;
    }
    if (!view || view.id !== poll.id) {
      if (view) view.node.remove();
      view = build(poll);
      root.append(view.node);
    }
    root.hidden = false;
    const open = poll.state === "open";
    const choice = mine(poll.id);
    const voted = choice !== null;
    // results once voted, for the anonymous, and at the end; buttons until then
    const results = !open || voted || !canVote;
    const top = Math.max(...poll.votes);
    const pct = shares(poll.votes, poll.total);
    view.node.dataset.state = poll.state;
    view.node.dataset.view = results ? "results" : "vote";
    view.tag.textContent = open ? "Live poll" : "Final results";
    const left = Math.min(poll.ends_at - now(), poll.ends_at - poll.opened_at);
    view.clock.textContent = open ? (left > 0 ? `${clock(left)} left` : "closing…") : "";
    view.rows.forEach((row, i) => {
      row.fill.style.width = results ? `${pct[i]}%` : "0";
      row.pct.textContent = `${pct[i]}%`;
      row.button.classList.toggle("mine", choice === i);
      row.button.classList.toggle("win", !open && top > 0 && poll.votes[i] === top);
      row.button.setAttribute("aria-pressed", String(choice === i));
      // a vote may be changed while open if the host allows; otherwise the bars are final
      row.button.disabled = view.pending || !open || !canVote || (voted && (!poll.changeable || choice === i));
    });
    let note = view.message;
    let tone = view.tone;
    if (!note) {
      const n = `${poll.total} vote${poll.total === 1 ? "" : "s"}`;
      if (!open) note = voted ? `Thanks for voting · ${n}` : n;
      else if (!canVote) { note = `Sign in to vote · ${n}`; tone = "warn"; }
      else if (!voted) note = "Tap an option to vote";
      else note = poll.changeable ? `You voted · ${n} · tap another option to change` : `You voted · ${n}`;
    }
    view.note.textContent = note;
    view.note.dataset.tone = tone;
  }

  function clock(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  async function vote(id, option) {
    const poll = polls.get(id);
    if (!poll || !view || view.id !== id || view.pending) return;
    view.pending = true;
    render();
    const v = view;
    try {
      const ack = await ctx.send({ type: "vote", poll: id, option });
      localStorage.setItem(key(id), String(ack.result.option));
      v.message = ack.result.changed ? "Vote changed ✓" : "Thanks, your vote is in ✓";
      v.tone = "ok";
    } catch (error) {
      v.tone = "warn";
      if (error.code === "already_voted") {
        if (mine(id) === null) localStorage.setItem(key(id), "-1");
        v.message = "You already voted in this poll: votes are final";
      } else if (error.code === "poll_closed") {
        v.message = "This poll has closed";
      } else if (error.code === "forbidden") {
        v.message = "Sign in to vote";
      } else if (error.code === "disconnected") {
        v.message = "Connection lost, try again";
      } else {
        v.message = error.message || "Your vote did not count, try again";
      }
    } finally {
      v.pending = false;
    }
    render();
    setTimeout(() => { // the message gives way to the running count
      if (v.message) { v.message = ""; v.tone = ""; render(); }
    }, 4000);
  }

  // ---- realtime ------------------------------------------------------------------------------
  function learn(poll) {
    const old = polls.get(poll.id);
    if (old && old.state !== "open" && poll.state === "open") return; // a late copy never reopens
    const next = { ...old, ...poll };
    if (next.state !== "open" && !next.closedSeen) next.closedSeen = Date.now();
    polls.set(poll.id, next);
  }

  ctx.on("welcome", (w) => {
    offset = w.server_time - Date.now();
    const open = new Set((w.polls || []).map((p) => p.id));
    for (const p of polls.values()) { // closed while this page was away: gone, quietly
      if (p.state === "open" && !open.has(p.id)) polls.delete(p.id);
    }
    for (const p of w.polls || []) learn(p);
    render();
  });
  ctx.on("tick", (t) => {
    offset = t.t - Date.now();
    if (!t.polls) return;
    for (const [id, change] of Object.entries(t.polls)) {
      if (polls.has(id)) learn({ ...polls.get(id), ...change, id });
    }
    render();
  });
  ctx.on("entry", (e) => {
    if (e.kind !== "poll_opened" && e.kind !== "poll_closed") return;
    learn({ ...(e.data || e), id: e.ref });
    render();
  });
  const timer = setInterval(() => { if (view) render(); }, 500);
  return () => clearInterval(timer);
}
