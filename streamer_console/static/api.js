// The host HTTP API (docs/api.md) and the feedback every action gives: pending, done, or
// failed with the engine's error message.

import { $, el } from "./util.js";
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const session = { token: "", room: "" };

export function setSession(token, room) {
  session.token = token;
  session.room = room;
}

/** Send a request to `/api/rooms/{room}{path}` (or an absolute `/api/...` path) with the
 * session's token; the response if it succeeded, else an ApiError with the engine's code. */
async function send(method, path, body) {
  const url = path.startsWith("/api/") ? path : `/api/rooms/${session.room}${path}`;
  const init = { method, headers: { Authorization: `Bearer ${session.token}` } };
  if (body instanceof Blob) {
    init.body = body; // a file, sent as its own bytes and type
    init.headers["Content-Type"] = body.type;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, "network", t("api.unreachable", { reason: error.message }));
  }
  if (response.ok) return response;
  const text = await response.text();
  let error = null;
  try {
    error = text ? JSON.parse(text).error : null;
  } catch {
    error = null;
  }
  if (error) throw new ApiError(response.status, error.code, error.message, error.details);
  throw new ApiError(response.status, `http_${response.status}`, text || response.statusText);
}

/** Call a JSON route (`body` a JSON value, or a Blob sent as its bytes); its decoded body
 * ({} for 204: truthy, like every success). */
export async function api(method, path, body) {
  const response = await send(method, path, body);
  if (response.status === 204) return {};
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** GET a file route (the post-live report and its CSVs) as a Blob of `type` if the engine
 * gave none. */
export async function apiBlob(path, type) {
  const blob = await (await send("GET", path)).blob();
  return blob.type ? blob : new Blob([blob], { type });
}

const HISTORY = 6;

function logRow(row) {
  const log = $("#feedback-log");
  log.prepend(row);
  while (log.children.length > HISTORY) log.lastElementChild.remove();
}

/** Run `work` as a named action: the button and the feedback bar show pending, then done
 * or failed with the engine's message. Returns the result, or undefined on failure.
 * `button` may be null; `quiet` (background loads) logs only failures. */
export async function act(label, work, button = null, { quiet = false } = {}) {
  const row = el("li", { class: "pending" }, t("act.pending", { label }));
  if (!quiet) logRow(row);
  if (button) {
    button.disabled = true;
    button.dataset.state = "pending";
  }
  try {
    const result = await work();
    row.className = "done";
    row.textContent = t("act.done", { label });
    if (button) button.dataset.state = "done";
    return result;
  } catch (error) {
    const code = error instanceof ApiError ? ` (${error.code})` : "";
    if (quiet) logRow(row);
    row.className = "failed";
    row.textContent = t("act.failed", { label, message: error.message, code });
    if (button) button.dataset.state = "failed";
    if (!(error instanceof ApiError)) console.error(error); // a console bug, not the engine
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
