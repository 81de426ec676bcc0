// Small helpers: DOM lookup and building, money, the room's HTTP API (docs/api.md), and
// telling a refused request from one that got no answer.
import { LivecartError } from "/sdk/index.js";

export const $ = (selector) => document.querySelector(selector);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

export function money(minor, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

/** `{ok, status, body}` for a call on /api/rooms/{room}{path}. */
export async function api(room, token, method, path, body) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`/api/rooms/${encodeURIComponent(room)}${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = {};
  try { json = await response.json(); } catch { json = {}; }
  return { ok: response.ok, status: response.status, body: json };
}

// The SDK's own codes for a request the engine never answered: no connection, the connection
// dropped (not at a 1001: those requests are sent again once resumed) or no answer in time.
const UNANSWERED = new Set(["not_connected", "disconnected", "closed", "timeout"]);

/** True if a request's rejection means it got no answer; false for the engine's refusal
 * (`error.code`, `error.detail`). Anything but a LivecartError is a bug: thrown on. */
export function lost(error) {
  if (!(error instanceof LivecartError)) throw error;
  return UNANSWERED.has(error.code);
}
