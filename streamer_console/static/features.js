// The console's side of the feature seam (docs/architecture.md § The feature seam): after
// the first welcome, GET /features names the engine's features; each one that ships a
// console module (`/features/<name>/console.js`) is imported and its exported `mount(ctx)`
// is called with a panel of its own in the layout. A module that fails to load or throws
// in mount is logged and skipped: the console goes on without it.

import { LivecartError } from "/sdk/index.js";
import { api } from "./api.js";
import { el, money } from "./util.js";
import { language, t } from "./i18n.js";

/**
 * What a feature's console module gets: `export function mount(ctx)`. mount may return a
 * function, called when the console signs out (or signs in again: mount is then called
 * anew with a new root and ctx, so keep state inside mount, not at module level).
 *
 * @typedef {object} FeatureContext
 * @property {HTMLElement} root The feature's own panel (an empty `<section class="panel">`
 *   in the console's first column); the module fills it, heading included.
 * @property {string} room The room id.
 * @property {"host"|"moderator"} role The signed-in role (the console admits staff only).
 * @property {(method: string, path: string, body?: any) => Promise<any>} api An HTTP call
 *   with the console's bearer token: `path` is under `/api/rooms/{room}` (e.g. "/polls"),
 *   or absolute when it starts with `/api/`. Resolves with the parsed JSON (`{}` for 204);
 *   rejects with an Error whose `code` is the engine's error code (`status`, `details` too).
 * @property {(frame: object) => Promise<object>} send Send a client frame over the
 *   console's realtime connection with a fresh request `id`; resolves with the `ack`,
 *   rejects with an Error (a LivecartError: `detail`, `details` too) whose `code` is the
 *   `error` frame's, or "disconnected" when no answer comes: not connected (not sent), or
 *   the connection dropped or 10 s went by first (it may or may not have been applied).
 * @property {(name: "welcome"|"tick"|"entry", fn: (message: object) => void) => () => void} on
 *   Subscribe to realtime events; returns the unsubscribe function. "welcome": the whole
 *   welcome message (the current one right after mount, then every resume or rejoin);
 *   "tick": every tick message; "entry": each room-log entry (docs/protocol.md § Room log:
 *   `{id, kind, ts, ref, ...kind fields}`) delivered in ticks, and on a resume that
 *   recovered, the missed ones from the welcome's history (before its "welcome" event).
 * @property {(tag: string, props?: object, ...children: any[]) => HTMLElement} el The
 *   console's element builder (util.js): props `class`, `dataset`, `on<event>` listeners,
 *   others as properties or attributes; children are nodes or text (never HTML).
 * @property {(key: string, vars?: Record<string, string | number>) => string} t The console's
 *   translation (i18n.js): the message `key` of the console's catalogs in its language (a
 *   feature's keys are named after it, e.g. "poll.start"), `{name}` filled from `vars`,
 *   plural forms chosen by `vars.count`; a key no catalog has reads as itself.
 * @property {string} language The console's language: "en", "zh-Hans" or "zh-Hant" (a
 *   locale for Intl, e.g. times).
 * @property {(minor: number, currency: string) => string} money Minor units as the console
 *   shows money in its language.
 */

const state = {
  session: 0, // bumped by stop(): a load still running for an old session gives up
  loading: false, // from the first welcome of a session until every module is mounted
  started: false,
  mounted: [], // {name, root, handlers: {welcome, tick, entry}, teardown}
  welcome: null, // the latest welcome, for a module mounted after it
  backlog: [], // ticks since that welcome, while modules load
};

/** A welcome (`recovered`: a resume that replayed missed entries). The first of a session
 * loads the features. */
export function welcome(message, recovered) {
  if (recovered) for (const entry of message.history || []) emitAll("entry", entry);
  state.welcome = message;
  state.backlog = [];
  emitAll("welcome", message);
  if (!state.started) {
    Object.assign(state, { started: true, loading: true });
    load(message, state.session);
  }
}

export function tick(message) {
  if (state.loading) {
    state.backlog.push(message);
    if (state.backlog.length > 500) state.backlog.shift();
  }
  for (const entry of message.entries || []) emitAll("entry", entry);
  emitAll("tick", message);
}

/** Sign-out: tear every feature down and empty its panel. */
export function stop() {
  state.session += 1;
  for (const feature of state.mounted) {
    try {
      if (feature.teardown) feature.teardown();
    } catch (error) {
      console.error(`feature ${feature.name}: teardown failed`, error);
    }
    feature.root.remove();
  }
  Object.assign(state, { loading: false, started: false, mounted: [], welcome: null, backlog: [] });
}

/** How ctx.send reaches the console's LivecartViewer (a new one at each sign-in): init(getter). */
let currentViewer = () => null;
export function init(getViewer) {
  currentViewer = getViewer;
}

// The SDK's codes for a request that got no answer; a feature sees them all as "disconnected".
const NO_ANSWER = new Set(["disconnected", "not_connected", "closed", "timeout"]);

async function send(frame) {
  const viewer = currentViewer();
  if (!viewer) throw new LivecartError("disconnected", "not connected", { retryable: true });
  try {
    return await viewer.request(frame);
  } catch (error) {
    if (!NO_ANSWER.has(error.code)) throw error;
    throw new LivecartError("disconnected", error.detail, { retryable: true });
  }
}

async function load(first, session) {
  let listed = [];
  try {
    const response = await fetch("/features");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    listed = (await response.json()).features || [];
  } catch (error) {
    console.warn("features: GET /features failed; none loaded", error);
  }
  for (const feature of listed) {
    if (session !== state.session) return;
    if (!feature.console || !/^[a-z0-9_-]+$/.test(feature.name)) continue;
    await mountOne(feature, first, session);
  }
  if (session === state.session) Object.assign(state, { loading: false, backlog: [] });
}

async function mountOne(feature, first, session) {
  const root = el("section", {
    class: "panel feature-panel",
    id: `feature-${feature.name}`,
    dataset: { feature: feature.name },
    "aria-label": feature.name,
  });
  const handlers = { welcome: new Set(), tick: new Set(), entry: new Set() };
  const record = { name: feature.name, root, handlers, teardown: null };
  const ctx = {
    root,
    room: first.room.id,
    role: first.role,
    api: (method, path, body) => api(method, path, body),
    send,
    on: (name, fn) => {
      if (!handlers[name]) throw new Error(`feature ${feature.name}: no event "${name}"`);
      handlers[name].add(fn);
      return () => handlers[name].delete(fn);
    },
    el,
    t,
    language: language(),
    money,
  };
  try {
    const module = await import(feature.console);
    if (session !== state.session) return;
    if (typeof module.mount !== "function") throw new Error("the module exports no mount()");
    document.getElementById("feature-panels").append(root);
    const teardown = await module.mount(ctx);
    if (typeof teardown === "function") record.teardown = teardown;
  } catch (error) {
    console.error(`feature ${feature.name}: its console module failed; the console goes on without it`, error);
    root.remove();
    return;
  }
  if (session !== state.session) {
    if (record.teardown) record.teardown();
    root.remove();
    return;
  }
  // What it missed while loading: the latest welcome, then the ticks since; from here on
  // it hears events as they come.
  if (state.welcome) emit(record, "welcome", state.welcome);
  for (const message of state.backlog) {
    for (const entry of message.entries || []) emit(record, "entry", entry);
    emit(record, "tick", message);
  }
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
