// The console's languages: English, 简体中文 and 繁體中文, with the viewer page's i18n core
// (/live/static/i18n_core.js: the same t(), plural forms, translate(), language pick and
// remembered choice) and the console's own catalogs (./i18n/<lang>.js). English keeps the
// console's own money form ("USD 12.50"); other languages read money through Intl.
import { createI18n } from "/live/static/i18n_core.js";
import en from "./i18n/en.js";

export { LANGUAGES, pickLanguage, startLanguage } from "/live/static/i18n_core.js";

export const { language, setLanguage, t, money: intlMoney, count, translate } = createI18n(
  en,
  (lang) => import(`./i18n/${lang}.js`),
);

/** The locale times are read in: English keeps the console's 24-hour en-GB clock. */
export const timeLocale = () => (language() === "en" ? "en-GB" : language());

/** A moment of the show as the console's clock reads it, in every panel alike: 14:05:09. */
export const clockTime = (ms) => new Date(ms).toLocaleTimeString(timeLocale(), { hourCycle: "h23" });

/** The catalog's word for an engine value (a state, a role, a kind) under `prefix`:
 * label("state", "sold_out") -> "sold out"; a value the catalog lacks reads as itself,
 * underscores as spaces. */
export function label(prefix, value) {
  const key = `${prefix}.${value}`;
  const text = t(key);
  return text === key ? String(value).replaceAll("_", " ") : text;
}
