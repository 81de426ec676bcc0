// Live polls in the streamer console (the "Live poll" panel): a form to start a poll (a
// question, 2-6 options, a duration, whether viewers may change their vote), the running
// poll with live bars (count and share per option), its time left and "End poll now", and
// the last closed polls' results. Mounted by the console's feature seam
// (streamer_console/static/features.js has the ctx it gets); texts are built as text nodes,
// in the console's language through ctx.t (its catalogs hold the "poll.*" keys).
import { shares } from "./shares.js";

const MIN_OPTIONS = 2;
const MAX_OPTIONS = 6;
const RECENT = 3; // closed polls shown under the running one

const STYLE = `
.poll-panel h2 { position: sticky; top: -8px; z-index: 1; margin: -8px 0 6px; padding: 8px 0 4px; background: var(--panel); }
.poll-panel h2 .badge { margin-left: 6px; }
.poll-empty { margin: 2px 0 6px; }
.poll-card { border: 1px solid var(--line); border-radius: var(--radius); padding: 8px; margin-bottom: 6px; background: #1d222a; }
.poll-card.live { border-color: var(--accent); }
.poll-card header { display: flex; gap: 8px; align-items: baseline; margin-bottom: 6px; }
.poll-card .question { flex: 1; min-width: 0; font-weight: 600; overflow-wrap: anywhere; }
.poll-card.closed { background: #171b21; }
.poll-card.closed .question { font-weight: 500; }
.poll-card.closed .clock { color: var(--muted); font-weight: normal; font-size: 12px; }
.poll-rows { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 3px; }
.poll-row { position: relative; display: flex; gap: 8px; align-items: center; min-height: 24px; padding: 2px 8px;
  border-radius: 4px; background: #0b0e12; overflow: hidden; font-size: 13px; }
.poll-row .fill { position: absolute; inset: 0 auto 0 0; background: #1f3a5f; transition: width 0.25s; }
.poll-row.lead .fill { background: #25507f; }
.poll-card.closed .poll-row.lead .fill { background: #1d5a3c; }
.poll-row .label, .poll-row .n { position: relative; }
.poll-row .label { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.poll-row .n { font-variant-numeric: tabular-nums; white-space: nowrap; }
.poll-row .pct { display: inline-block; min-width: 2.8em; text-align: right; font-weight: 600; }
.poll-foot { display: flex; gap: 8px; align-items: center; margin-top: 6px; font-size: 12px; color: var(--muted); }
.poll-foot .grow { flex: 1; }
.poll-form .poll-options { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 4px; }
.poll-form .poll-options li { display: flex; gap: 4px; align-items: center; }
.poll-form .poll-options input { flex: 1; }
.poll-form .poll-options .n { width: 1.2em; text-align: right; color: var(--muted); font-size: 12px; }
.poll-form button.remove { padding: 2px 8px; min-height: 26px; }
.poll-form label { display: flex; gap: 4px; align-items: center; font-size: 12px; color: var(--muted); }
.poll-status:empty { display: none; }
.poll-status { margin: 4px 0; font-size: 12px; color: #ff8b8e; }
.poll-recent h3 { font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); margin: 8px 0 4px; font-weight: 600; }
`;

/** @param {import("/console/features.js").FeatureContext} ctx */
export function mount(ctx) {
  const { el, root, t } = ctx;
  const timeLocale = ctx.language === "en" ? "en-GB" : ctx.language;
  const host = ctx.role === "host";
  const polls = new Map(); // id -> poll object, as the engine last told
  const views = new Map(); // id -> the card showing it, updated in place
  let offset = 0; // the engine's clock minus ours
  let wasRunning = false; // a poll was running at the last render
  const now = () => Date.now() + offset;

  // ---- layout --------------------------------------------------------------------------------
  root.classList.add("poll-panel");
  const badge = el("span", { class: "badge live", hidden: true }, t("poll.live"));
  const running = el("div", { class: "poll-running", "aria-live": "polite" });
  const empty = el("p", { class: "meta poll-empty" }, host ? t("poll.empty") : t("poll.emptyModerator"));
  const status = el("p", { class: "poll-status", role: "status" });
  const recentList = el("div", {});
  const recent = el("section", { class: "poll-recent", hidden: true }, el("h3", {}, t("poll.recent")), recentList);
  const form = host ? buildForm() : null;
  const parts = [el("style", {}, STYLE), el("h2", {}, t("poll.title"), badge), running, empty, status,
    form && form.details, recent]; // the form folded, the results stay in sight when a poll ends
  root.append(...parts.filter(Boolean));

  // ---- the start form (host) -----------------------------------------------------------------
  function buildForm() {
    const question = /** @type {HTMLInputElement} */ (el("input", { name: "question", required: true, maxlength: "200",
      autocomplete: "off", placeholder: t("poll.questionPlaceholder"), "aria-label": t("poll.questionLabel") }));
    const rows = el("ol", { class: "poll-options" });
    const add = /** @type {HTMLButtonElement} */ (
      el("button", { type: "button", class: "add-option", onclick: () => addOption("") }, t("poll.addOption")));
    const duration = /** @type {HTMLInputElement} */ (el("input", { type: "number", name: "duration", min: "10",
      max: "3600", value: "60", required: true, "aria-label": t("poll.durationLabel") }));
    const changeable = /** @type {HTMLInputElement} */ (el("input", { type: "checkbox", name: "changeable" }));
    const submit = /** @type {HTMLButtonElement} */ (el("button", { type: "submit", class: "primary" }, t("poll.start")));
    const node = el("form", { class: "stack poll-form", onsubmit: start }, question, rows,
      el("div", { class: "inline" }, add, el("label", {}, t("poll.durationS"), duration),
        el("label", {}, changeable, t("poll.changeable"))),
      el("div", { class: "inline" }, submit));
    // folded until the host opens it, as the console's other "start" forms: the panel stays
    // small beside the run of show while nothing runs
    const details = /** @type {HTMLDetailsElement} */ (
      el("details", { class: "poll-new" }, el("summary", {}, t("poll.startTitle")), node));

    function addOption(value) {
      if (rows.children.length >= MAX_OPTIONS) return;
      const input = el("input", { maxlength: "80", autocomplete: "off", value });
      const li = el("li", {}, el("span", { class: "n" }), input,
        el("button", { type: "button", class: "remove", onclick: () => { li.remove(); renumber(); } }, "✕"));
      rows.append(li);
      renumber();
      return input;
    }
    function renumber() {
      [...rows.children].forEach((li, i) => {
        li.querySelector(".n").textContent = `${i + 1}`;
        const input = li.querySelector("input");
        input.placeholder = t("poll.option", { n: i + 1 });
        input.setAttribute("aria-label", t("poll.optionLabel", { n: i + 1 }));
        const remove = /** @type {HTMLButtonElement} */ (li.querySelector(".remove"));
        remove.setAttribute("aria-label", t("poll.removeOption", { n: i + 1 }));
        remove.hidden = rows.children.length <= MIN_OPTIONS;
      });
      add.disabled = rows.children.length >= MAX_OPTIONS;
    }
    function reset() {
      question.value = "";
      rows.replaceChildren();
      for (let i = 0; i < MIN_OPTIONS; i += 1) addOption("");
      changeable.checked = false;
    }
    async function start(event) {
      event.preventDefault();
      const options = [...rows.querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
      const body = { question: question.value.trim(), options, duration_s: Number(duration.value),
        changeable: changeable.checked };
      if (!body.question) return say(t("poll.needQuestion"));
      if (options.length < MIN_OPTIONS) return say(t("poll.needOptions", { n: MIN_OPTIONS }));
      if (new Set(options).size !== options.length) return say(t("poll.sameOptions"));
      const s = body.duration_s;
      if (!Number.isInteger(s) || s < 10 || s > 3600) return say(t("poll.durationRange"));
      submit.disabled = true;
      try {
        const poll = await ctx.api("POST", "/polls", body);
        say("");
        reset();
        show(poll);
      } catch (error) {
        say(t("poll.startFailed", { message: error.message, code: error.code }));
      } finally {
        submit.disabled = false;
      }
    }
    reset();
    return { details };
  }

  function say(text) {
    status.textContent = text;
  }

  // ---- polls ---------------------------------------------------------------------------------
  function clock(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  /** The card of a poll, made once and updated in place (its End button stays put). */
  function card(poll) {
    let view = views.get(poll.id);
    if (view) return view;
    const rows = poll.options.map((option) => {
      const fill = el("span", { class: "fill" });
      const pct = el("span", { class: "pct" });
      const count = el("span", { class: "count" });
      const li = el("li", { class: "poll-row" }, fill, el("span", { class: "label", title: option }, option),
        el("span", { class: "n" }, count, pct));
      return { li, fill, pct, count };
    });
    const time = el("span", { class: "clock" });
    const state = el("span", { class: "badge" });
    const total = el("span", { class: "grow total" });
    const end = host ? el("button", { class: "danger end", type: "button", onclick: () => close(poll.id, end) }, t("poll.endNow")) : null;
    const node = el("article", { class: "poll-card", dataset: { poll: poll.id } },
      el("header", {}, el("span", { class: "question" }, poll.question), time, state),
      el("ol", { class: "poll-rows" }, rows.map((r) => r.li)),
      el("div", { class: "poll-foot" }, total, end));
    view = { node, rows, time, state, total, end };
    views.set(poll.id, view);
    return view;
  }

  function update(poll) {
    const view = card(poll);
    const open = poll.state === "open";
    const top = Math.max(...poll.votes);
    const pct = shares(poll.votes, poll.total);
    poll.options.forEach((_, i) => {
      const row = view.rows[i];
      const p = pct[i];
      row.fill.style.width = `${p}%`;
      row.count.textContent = `${poll.votes[i] || 0} · `;
      row.pct.textContent = `${p}%`;
      row.li.classList.toggle("lead", top > 0 && poll.votes[i] === top);
    });
    view.node.classList.toggle("live", open);
    view.node.classList.toggle("closed", !open);
    view.node.dataset.state = poll.state;
    view.state.textContent = t("poll.final");
    view.state.hidden = open; // the panel's heading says live
    const n = poll.total;
    view.total.textContent = `${t("poll.votes", { count: n })} · ${poll.changeable ? t("poll.changeableNote") : t("poll.finalNote")}`;
    if (open) {
      const left = Math.min(poll.ends_at - now(), poll.ends_at - poll.opened_at);
      view.time.textContent = left > 0 ? t("poll.left", { time: clock(left) }) : t("poll.closing");
    } else {
      const at = poll.closed_at && new Date(poll.closed_at).toLocaleTimeString(timeLocale, { hour: "2-digit", minute: "2-digit" });
      view.time.textContent = at ? t("poll.endedAt", { time: at }) : t("poll.ended");
    }
    if (view.end) view.end.hidden = !open;
  }

  function render() {
    const all = [...polls.values()];
    const open = all.filter((p) => p.state === "open").sort((a, b) => b.opened_at - a.opened_at);
    const closed = all.filter((p) => p.state !== "open")
      .sort((a, b) => (b.closed_at || b.ends_at) - (a.closed_at || a.ends_at)).slice(0, RECENT);
    for (const p of [...open, ...closed]) update(p);
    running.replaceChildren(...open.map((p) => views.get(p.id).node));
    recentList.replaceChildren(...closed.map((p) => views.get(p.id).node));
    for (const id of views.keys()) {
      if (!open.some((p) => p.id === id) && !closed.some((p) => p.id === id)) views.delete(id);
    }
    empty.hidden = open.length > 0;
    badge.hidden = open.length === 0;
    recent.hidden = closed.length === 0;
    if (open.length > 0 && !wasRunning) { // a poll started (here or elsewhere): room for the bars
      if (form) form.details.open = false;
      say("");
    }
    wasRunning = open.length > 0;
  }

  function show(poll) {
    const old = polls.get(poll.id);
    // a late copy (a tick or an old listing) never reopens a closed poll
    if (old && old.state !== "open" && poll.state === "open") return;
    polls.set(poll.id, { ...old, ...poll });
    render();
  }

  async function close(id, button) {
    button.disabled = true;
    try {
      show(await ctx.api("POST", `/polls/${encodeURIComponent(id)}/close`));
      say("");
    } catch (error) {
      say(t("poll.endFailed", { message: error.message, code: error.code }));
    } finally {
      button.disabled = false;
    }
  }

  async function loadAll() {
    try {
      const { polls: listed } = await ctx.api("GET", "/polls");
      for (const poll of listed.slice().reverse()) show(poll);
    } catch (error) {
      say(t("poll.loadFailed", { message: error.message, code: error.code }));
    }
  }

  // ---- realtime ------------------------------------------------------------------------------
  const off = [
    ctx.on("welcome", (w) => {
      offset = w.server_time - Date.now();
      const open = new Set((w.polls || []).map((p) => p.id));
      for (const p of w.polls || []) show(p);
      // polls that closed while the console was away: their final results come from the list
      if ([...polls.values()].some((p) => p.state === "open" && !open.has(p.id))) loadAll();
    }),
    ctx.on("tick", (t) => {
      offset = t.t - Date.now();
      for (const [id, change] of Object.entries(t.polls || {})) {
        const poll = polls.get(id);
        if (poll && poll.state === "open") show({ ...poll, ...change });
      }
    }),
    ctx.on("entry", (e) => {
      if (e.kind === "poll_opened" || e.kind === "poll_closed") {
        show({ ...(e.data || e), id: e.ref });
      }
    }),
  ];
  const timer = setInterval(() => {
    for (const p of polls.values()) if (p.state === "open") update(p);
  }, 1000);
  loadAll();
  render();

  return () => {
    clearInterval(timer);
    off.forEach((unsubscribe) => unsubscribe());
  };
}
