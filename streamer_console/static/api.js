// The host HTTP API (docs/api.md) and the feedback every action gives: pending, done, or
// failed with the engine's error message.

import { $, el } from "./util.js";

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

/** Call `/api/rooms/{room}{path}` (or an absolute `/api/...` path). */
export async function api(method, path, body) {
  const url = path.startsWith("/api/") ? path : `/api/rooms/${session.room}${path}`;
  const init = { method, headers: { Authorization: `Bearer ${session.token}` } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, "network", `the engine is unreachable (${error.message})`);
  }
  if (response.status === 204) return {}; // done, nothing to say (truthy, like every success)
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    if (error) throw new ApiError(response.status, error.code, error.message, error.details);
    throw new ApiError(response.status, `http_${response.status}`, text || response.statusText);
  }
  return data;
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
  const row = el("li", { class: "pending" }, `${label}…`);
  if (!quiet) logRow(row);
  if (button) {
    button.disabled = true;
    button.dataset.state = "pending";
  }
  try {
    const result = await work();
    row.className = "done";
    row.textContent = `${label}: done`;
    if (button) button.dataset.state = "done";
    return result;
  } catch (error) {
    const code = error instanceof ApiError ? ` (${error.code})` : "";
    if (quiet) logRow(row);
    row.className = "failed";
    row.textContent = `${label} failed: ${error.message}${code}`;
    if (button) button.dataset.state = "failed";
    if (!(error instanceof ApiError)) console.error(error); // a console bug, not the engine
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
