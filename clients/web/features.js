// The viewer page's side of the feature seam (docs/architecture.md § The feature seam):
// after the first welcome, GET /features names the engine's features; each one that ships a
// viewer module (`/features/<name>/viewer.js`) is imported and its exported `mount(ctx)` is
// called with a card of its own over the lower part of the stream (#features). A module that
// fails to load or throws in mount is logged and skipped: the page goes on without it.
import { $, api, el, lost } from "./util.js";

/**
 * What a feature's viewer module gets: `export function mount(ctx)` (it may return a
 * teardown function; the page never unmounts today).
 *
 * @typedef {object} FeatureContext
 * @property {HTMLElement} root The feature's own card: an empty `<article>` in #features,
 *   a slot over the lower part of the stream (under the title and stats; never over the
 *   Grab button or the chat). It shows nothing while empty or `hidden`; keep it compact:
 *   a card taller than the stream's free height scrolls inside.
 * @property {string} room The room id.
 * @property {"viewer"|"anonymous"|"host"|"moderator"} role The role the engine signed this
 *   page in as (anonymous: no token; such viewers cannot act, only watch).
 * @property {(method: string, path: string, body?: any) => Promise<any>} api An HTTP call
 *   with the page's bearer token (none when anonymous): `path` is under
 *   `/api/rooms/{room}` (e.g. "/polls"), or absolute when it starts with `/api/`. Resolves
 *   with the parsed JSON; rejects with an Error whose `code` is the engine's error code
 *   (and `status`, `details`).
 * @property {(frame: object) => Promise<object>} send Send a client frame over the page's
 *   realtime connection (the SDK's `request`) with a fresh request `id`; resolves with the
 *   `ack`, rejects with an Error whose `code` is the `error` frame's (`message`, `details`
 *   too) or "disconnected" (no answer: not connected, dropped, or none in time; one left
 *   unanswered by an engine restart's `1001` is sent again after the resume instead).
 * @property {(name: "welcome"|"tick"|"entry", fn: (message: object) => void) => () => void} on
 *   Subscribe to realtime events; returns the unsubscribe function. "welcome": the whole
 *   welcome message (the current one right after mount, then every resume or rejoin);
 *   "tick": every tick message; "entry": each room-log entry (docs/protocol.md § Room log:
 *   `{id, kind, ts, ref, ...kind fields}`) delivered in ticks, and on a resume that
 *   recovered, the missed ones from the welcome's history (before its "welcome" event).
 * @property {(tag: string, props?: object, ...children: (Node|string)[]) => HTMLElement} el
 *   The page's element builder (util.js): props are set as properties (`className`,
 *   `onclick`, `type`, `disabled`…) except `dataset`; children are nodes or strings
 *   (text, never HTML; no null children).
 */

let page = null; // {room, token, viewer}
// `backlog`: the [event, message] pairs since the latest welcome, for modules still loading.
const state = { started: false, loading: false, mounted: [], welcome: null, backlog: [] };

export function setup(ctx) {
  page = ctx;
}

/** A welcome, after the entries a resume replayed (`missed`); the first loads the modules. */
export function welcome(w, missed) {
  for (const entry of missed) emitAll("entry", entry);
  state.welcome = w;
  state.backlog = [];
  emitAll("welcome", w);
  if (!state.started) {
    state.started = true;
    state.loading = true;
    load(w);
  }
}

/** A room-log entry from a tick (each once: the SDK leaves replayed ones out). */
export function entry(e) {
  later("entry", e);
  emitAll("entry", e);
}

/** A tick, after its entries. */
export function tick(t) {
  later("tick", t);
  emitAll("tick", t);
}

function later(name, message) {
  if (!state.loading) return;
  state.backlog.push([name, message]);
  if (state.backlog.length > 2000) state.backlog.shift();
}

async function load(first) {
  let listed = [];
  try {
    const response = await fetch("/features");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    listed = (await response.json()).features || [];
  } catch (error) {
    console.warn("features: GET /features failed; none loaded", error);
  }
  for (const feature of listed) {
    if (feature.viewer && /^[a-z0-9_-]+$/.test(feature.name)) await mountOne(feature, first);
  }
  state.loading = false;
  state.backlog = [];
}

async function call(method, path, body) {
  let r;
  if (path.startsWith("/api/")) {
    const headers = page.token ? { Authorization: `Bearer ${page.token}` } : {};
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let json = {};
    try { json = await response.json(); } catch { json = {}; }
    r = { ok: response.ok, status: response.status, body: json };
  } else {
    r = await api(page.room, page.token, method, path, body);
  }
  if (r.ok) return r.body;
  const e = r.body?.error || {};
  throw Object.assign(new Error(e.message || `HTTP ${r.status}`), { code: e.code || `http_${r.status}`,
    status: r.status, details: e.details });
}

async function send(frame) {
  try {
    return await page.viewer.request(frame);
  } catch (error) {
    if (lost(error)) throw Object.assign(new Error("the connection dropped"), { code: "disconnected" });
    throw Object.assign(new Error(error.detail || error.code), { code: error.code, details: error.details });
  }
}

async function mountOne(feature, first) {
  const root = el("article", { className: "feature-card", id: `feature-${feature.name}`,
    dataset: { feature: feature.name } });
  const handlers = { welcome: new Set(), tick: new Set(), entry: new Set() };
  const record = { name: feature.name, handlers };
  const ctx = {
    root, room: page.room, role: first.role, api: call, send, el,
    on(name, fn) {
      if (!handlers[name]) throw new Error(`feature ${feature.name}: no event "${name}"`);
      handlers[name].add(fn);
      return () => handlers[name].delete(fn);
    },
  };
  try {
    const module = await import(feature.viewer);
    if (typeof module.mount !== "function") throw new Error("the module exports no mount()");
    $("#features").append(root);
    await module.mount(ctx);
  } catch (error) {
    console.error(`feature ${feature.name}: its viewer module failed; the page goes on without it`, error);
    root.remove();
    return;
  }
  // What it missed while loading: the latest welcome, then the entries and ticks since.
  if (state.welcome) emit(record, "welcome", state.welcome);
  for (const [name, message] of state.backlog) emit(record, name, message);
  state.mounted.push(record);
}

function emitAll(name, message) {
  for (const feature of state.mounted) emit(feature, name, message);
}

function emit(feature, name, message) {
  for (const fn of feature.handlers[name]) {
    try {
      fn(message);
    } catch (error) {
      console.error(`feature ${feature.name}: its "${name}" handler failed`, error);
    }
  }
}
