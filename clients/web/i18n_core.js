// The i18n core of both faces, the viewer page (./i18n.js) and the streamer console
// (/console/i18n.js): each makes its own instance with createI18n(its English catalog, a
// loader of its other catalogs). Every string a page shows comes from its catalog through
// t(); money, counts and times go through Intl in the same locale. The language is the one
// picked on this device (localStorage "lc.lang", shared by both faces), else the browser's
// first of ours, else English.
import { formatMoney } from "/sdk/index.js";

export const LANGUAGES = /** @type {const} */ ({ en: "English", "zh-Hans": "简体中文", "zh-Hant": "繁體中文" });
const STORE_KEY = "lc.lang";

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

/** The language to start in: the one picked on this device, else the browser's. */
export function startLanguage() {
  const stored = localStorage.getItem(STORE_KEY);
  return stored && stored in LANGUAGES ? stored : pickLanguage(navigator.languages || [navigator.language]);
}

/**
 * One face's translations: `en` its English catalog (the one every other language falls
 * back to, key by key), `load(lang)` imports another of its catalogs (a module whose
 * default export is the catalog; import() resolves against the caller's own folder).
 * @param {Record<string, string | Record<string, string>>} en
 * @param {(lang: string) => Promise<{ default: Record<string, string | Record<string, string>> }>} load
 */
export function createI18n(en, load) {
  /** @type {Record<string, string | Record<string, string>>} */
  let catalog = en;
  let current = "en";

  /** The page's language now. */
  const language = () => current;

  /** Load and switch to `lang` (one of LANGUAGES); remembered on this device. */
  async function setLanguage(lang, { remember = true } = {}) {
    if (!(lang in LANGUAGES)) lang = "en";
    catalog = lang === "en" ? en : (await load(lang)).default;
    current = lang;
    document.documentElement.lang = lang;
    if (remember) localStorage.setItem(STORE_KEY, lang);
  }

  /**
   * The message `key` in the page's language (English when the catalog lacks it), with
   * `{name}` placeholders filled from `vars`. A message with plural forms ({one, other}) is
   * chosen by `vars.count` through Intl.PluralRules.
   * @param {string} key
   * @param {Record<string, string | number>} [vars]
   */
  function t(key, vars = {}) {
    let message = catalog[key] ?? en[key];
    if (message === undefined) return key; // a missing key shows as itself (tests catch it)
    if (typeof message === "object") {
      const form = new Intl.PluralRules(current).select(Number(vars.count ?? 0));
      message = message[form] ?? message.other;
    }
    return message.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /** Money in the page's language: 1500 JPY -> "¥1,500". */
  const money = (minor, currency) => formatMoney(minor, currency, current);

  /** A count in the page's language: 12345 -> "12,345". */
  const count = (n) => new Intl.NumberFormat(current).format(n);

  /**
   * Fill the static text under `root` from the catalog: an element's `data-t` key is its text,
   * `data-t-placeholder` its placeholder, `data-t-aria-label` its aria-label and
   * `data-t-title` its title.
   * @param {ParentNode} root
   */
  function translate(root) {
    for (const node of root.querySelectorAll("[data-t]")) node.textContent = t(node.getAttribute("data-t"));
    for (const [data, attribute] of [["data-t-placeholder", "placeholder"], ["data-t-aria-label", "aria-label"],
      ["data-t-title", "title"]]) {
      for (const node of root.querySelectorAll(`[${data}]`)) node.setAttribute(attribute, t(node.getAttribute(data)));
    }
  }

  return { language, setLanguage, t, money, count, translate };
}
