// Small DOM, money, time and dialog helpers shared by the panels. No framework: every
// piece of text from the engine goes through textContent, never innerHTML.

import { parseMoney } from "/sdk/index.js";
import { intlMoney, language, t } from "./i18n.js";

/** Build an element: el("button", {class: "x", onclick: f, dataset: {id: 1}}, "text", child). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Calls `load` now and every `ms` from start() until stop(); `running` tells which. */
export function poller(load, ms) {
  let timer = null;
  return {
    start() {
      clearInterval(timer);
      timer = setInterval(load, ms);
      load();
    },
    stop() {
      clearInterval(timer);
      timer = null;
    },
    get running() {
      return timer !== null;
    },
  };
}

/** A button that calls `handler(button)` when clicked; `props` as for el(). */
export function actionButton(label, className, handler, props = {}) {
  return el("button", { class: className, onclick: (ev) => handler(ev.currentTarget), ...props }, label);
}

/** Digits after the decimal point of a currency (USD 2, JPY 0), as Intl knows them. */
export function currencyDigits(currency) {
  try {
    const options = new Intl.NumberFormat("en", { style: "currency", currency });
    return options.resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** Minor units -> "USD 12.50" in English; through Intl in the console's other languages
 * ("US$12.50", "¥1,500"). */
export function money(minor, currency) {
  if (language() !== "en") return intlMoney(minor, currency);
  const digits = currencyDigits(currency);
  const major = (Number(minor) / 10 ** digits).toFixed(digits);
  return `${currency} ${major}`;
}

/** What the host typed, in major units of `currency` ("24.50", "24,50", "1,500" JPY), as
 * minor units, or NaN (see the SDK's parseMoney; read in the browser's locale). */
export function toMinor(text, currency) {
  return parseMoney(String(text), currency, navigator.language);
}

/** How to type an amount of `currency`, in the host's words: "Enter a price like 24.50";
 * "JPY has no decimals: enter a whole amount like 1500". */
export function amountHint(currency, what = t("what.amount")) {
  const digits = currencyDigits(currency);
  if (digits === 0) return t("amount.whole", { currency });
  return t("amount.like", { what, example: (24.5).toFixed(digits) });
}

const fieldNotes = new WeakMap(); // input -> the message element next to it
let fieldNoteCount = 0;

/** Mark `input` as refused, with `message` next to it (aria-describedby); null clears it. */
export function fieldError(input, message) {
  const note = fieldNotes.get(input);
  if (!message) {
    input.removeAttribute("aria-invalid");
    if (note) {
      note.remove();
      input.removeAttribute("aria-describedby");
      fieldNotes.delete(input);
    }
    return;
  }
  input.setAttribute("aria-invalid", "true");
  if (note) {
    note.textContent = message;
    return;
  }
  fieldNoteCount += 1;
  const added = el("span", { id: `field-error-${fieldNoteCount}`, class: "field-error", role: "alert" }, message);
  input.after(added);
  fieldNotes.set(input, added);
  input.setAttribute("aria-describedby", added.id);
  input.addEventListener("input", () => fieldError(input, null), { once: true });
}

/** The amount typed in `input`, in minor units of `currency`; undefined when it is empty
 * and `optional`. A bad one is marked on the field (with `amountHint`) and gives NaN: the
 * caller sends nothing. */
export function amountOf(input, currency, { what = t("what.amount"), optional = false } = {}) {
  const text = input.value.trim();
  if (text === "" && optional) {
    fieldError(input, null);
    return undefined;
  }
  const minor = toMinor(text, currency);
  fieldError(input, Number.isNaN(minor) ? amountHint(currency, what) : null);
  return minor;
}

/** Show an engine refusal (`invalid_field` naming `details.field`) next to the field `find`
 * returns for that name, in `words` (money words, not the engine's); true if shown. */
export function showRefusal(error, find, words) {
  const name = error && error.details && error.details.field;
  if (!name) return false;
  const input = find(String(name));
  if (!input) return false;
  fieldError(input, (words && words(String(name))) || error.message);
  input.focus();
  return true;
}

/** Minor units -> the decimal text a price input shows. */
export function toMajorText(minor, currency) {
  const digits = currencyDigits(currency);
  return (Number(minor) / 10 ** digits).toFixed(digits);
}

/** Integer from an input, or undefined when it is empty. */
export function intOf(input) {
  const text = input.value.trim();
  return text === "" ? undefined : Number(text);
}

let clockOffsetMs = 0;

/** Align with the engine's clock (welcome.server_time, tick.t). */
export function syncClock(serverMs) {
  clockOffsetMs = serverMs - Date.now();
}

export const serverNow = () => Date.now() + clockOffsetMs;

/** 75000 -> "1:15"; 3723000 -> "1:02:03". */
export function duration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Ask before an action that cannot be taken back; resolves true when confirmed. */
export function confirmAction(question, confirmLabel = t("confirm.yes"), { danger = true } = {}) {
  const dialog = $("#confirm");
  $("#confirm-text", dialog).textContent = question;
  const yes = $("#confirm-yes", dialog);
  yes.textContent = confirmLabel;
  yes.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-no", dialog).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

/** True while the user is typing in a field (keyboard shortcuts must not fire then). */
export function typingIn(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}
