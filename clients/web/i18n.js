// The viewer page's languages: English, 简体中文 and 繁體中文. Every string the page shows
// comes from a message catalog (./i18n/<lang>.js) through t(); money, counts and times go
// through Intl in the same locale. The language is the one the viewer picked (kept on the
// device), else the browser's first of ours, else English. The core (i18n_core.js) is the
// streamer console's too; this is the viewer page's instance of it, with its catalogs.
import { createI18n } from "./i18n_core.js";
import en from "./i18n/en.js";

export { LANGUAGES, pickLanguage, startLanguage } from "./i18n_core.js";

export const { language, setLanguage, t, money, count, translate } = createI18n(
  en,
  (lang) => import(`./i18n/${lang}.js`),
);
