// Small DOM, money, time and dialog helpers shared by the panels. No framework: every
// piece of text from the engine goes through textContent, never innerHTML.

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

/** Minor units -> "USD 12.50". */
export function money(minor, currency) {
  const digits = currencyDigits(currency);
  const major = (Number(minor) / 10 ** digits).toFixed(digits);
  return `${currency} ${major}`;
}

/** "12.5" in a currency -> 1250 minor units, or NaN. */
export function toMinor(text, currency) {
  const value = Number(String(text).trim());
  if (String(text).trim() === "" || !Number.isFinite(value)) return NaN;
  return Math.round(value * 10 ** currencyDigits(currency));
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
export function confirmAction(question, confirmLabel = "Confirm", { danger = true } = {}) {
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
