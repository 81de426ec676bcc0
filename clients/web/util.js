// Small helpers: DOM lookup and building, money and countdowns in the page's language, the
// room's HTTP API (docs/api.md), and telling a refused request from one that got no answer.
import { LivecartError } from "/sdk/index.js";
import { language, t } from "./i18n.js";

// Money by the currency's own digits (1500 JPY -> "¥1,500", 12900 USD -> "$129.00"), in
// the page's language: one formatter for the whole page (i18n.js).
export { money } from "./i18n.js";

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

/** A countdown in the page's language's digits, never negative: m:ss, h:mm:ss from an hour
 * (95_000 ms -> "1:35", 3_723_000 ms -> "1:02:03"). */
export function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const digits = (n, width) => new Intl.NumberFormat(language(), { useGrouping: false, minimumIntegerDigits: width }).format(n);
  const minutes = Math.floor((s % 3600) / 60);
  return s >= 3600
    ? `${digits(Math.floor(s / 3600), 1)}:${digits(minutes, 2)}:${digits(s % 60, 2)}`
    : `${digits(minutes, 1)}:${digits(s % 60, 2)}`;
}

/** The catalog's message `key` if it has one, else `fallback` (e.g. the engine's own
 * English text for a refusal code the catalog does not know). */
export function tOr(key, vars, fallback) {
  const text = t(key, vars);
  return text === key ? fallback : text;
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
