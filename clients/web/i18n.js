// The viewer page's languages: English, 简体中文 and 繁體中文. Every string the page shows
// comes from a message catalog (./i18n/<lang>.js) through t(); money, counts and times go
// through Intl in the same locale. The language is the one the viewer picked (kept on the
// device), else the browser's first of ours, else English.
import { formatMoney } from "/sdk/index.js";
import en from "./i18n/en.js";

export const LANGUAGES = /** @type {const} */ ({ en: "English", "zh-Hans": "简体中文", "zh-Hant": "繁體中文" });
const STORE_KEY = "lc.lang";

/** @type {Record<string, string | Record<string, string>>} */
let catalog = en;
let current = "en";

/**
 * Ours for a list of BCP 47 tags (navigator.languages): zh-TW, zh-HK, zh-MO and zh-Hant*
 * read Traditional; any other zh reads Simplified; else English.
 * @param {readonly string[]} tags
 */
export function pickLanguage(tags) {
  for (const tag of tags) {
    const lower = tag.toLowerCase();
    if (lower === "en" || lower.startsWith("en-")) return "en";
    if (lower === "zh" || lower.startsWith("zh-")) {
      return /^zh-(hant|tw|hk|mo)\b/.test(lower) ? "zh-Hant" : "zh-Hans";
    }
  }
  return "en";
}

/** The page's language now. */
export const language = () => current;

/** Load and switch to `lang` (one of LANGUAGES); remembered on this device. */
export async function setLanguage(lang, { remember = true } = {}) {
  if (!(lang in LANGUAGES)) lang = "en";
  catalog = lang === "en" ? en : (await import(`./i18n/${lang}.js`)).default;
  current = lang;
  document.documentElement.lang = lang;
  if (remember) localStorage.setItem(STORE_KEY, lang);
}

/** The language to start in: the one picked on this device, else the browser's. */
export function startLanguage() {
  const stored = localStorage.getItem(STORE_KEY);
  return stored && stored in LANGUAGES ? stored : pickLanguage(navigator.languages || [navigator.language]);
}

/**
 * The message `key` in the page's language (English when the catalog lacks it), with
 * `{name}` placeholders filled from `vars`. A message with plural forms ({one, other}) is
 * chosen by `vars.count` through Intl.PluralRules.
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 */
export function t(key, vars = {}) {
  let message = catalog[key] ?? en[key];
  if (message === undefined) return key; // a missing key shows as itself (tests catch it)
  if (typeof message === "object") {
    const form = new Intl.PluralRules(current).select(Number(vars.count ?? 0));
    message = message[form] ?? message.other;
  }
  return message.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Money in the page's language: 1500 JPY -> "¥1,500". */
export const money = (minor, currency) => formatMoney(minor, currency, current);

/** A count in the page's language: 12345 -> "12,345". */
export const count = (n) => new Intl.NumberFormat(current).format(n);

/**
 * Fill the static text under `root` from the catalog: an element's `data-t` key is its text,
 * `data-t-placeholder` its placeholder and `data-t-aria-label` its aria-label.
 * @param {ParentNode} root
 */
export function translate(root) {
  for (const node of root.querySelectorAll("[data-t]")) node.textContent = t(node.getAttribute("data-t"));
  for (const node of root.querySelectorAll("[data-t-placeholder]")) {
    node.setAttribute("placeholder", t(node.getAttribute("data-t-placeholder")));
  }
  for (const node of root.querySelectorAll("[data-t-aria-label]")) {
    node.setAttribute("aria-label", t(node.getAttribute("data-t-aria-label")));
  }
}
