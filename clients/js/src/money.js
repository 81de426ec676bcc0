/**
 * Money in a currency's own minor units (docs/protocol.md § Money): integers, with as many
 * decimal digits as the currency has (USD, EUR, CNY, TWD 2; JPY, KRW 0), as Intl knows
 * them. Prices arrive in minor units and go back in minor units; people read and type major
 * units.
 */

/** @type {Map<string, number>} */
const DIGITS = new Map();

/**
 * Digits after the decimal point of `currency` (an ISO 4217 code): USD 2, JPY 0. An unknown
 * code counts as 2.
 * @param {string} currency
 */
export function currencyDigits(currency) {
  let digits = DIGITS.get(currency);
  if (digits === undefined) {
    try {
      digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
    } catch {
      digits = 2;
    }
    DIGITS.set(currency, digits);
  }
  return digits;
}

/**
 * Minor units as a person reads them in `locale`: 12900 USD -> "$129.00"; 1500 JPY -> "¥1,500".
 * @param {number} minor
 * @param {string} currency
 * @param {string | string[]} [locale] default: the runtime's
 */
export function formatMoney(minor, currency, locale) {
  const digits = currencyDigits(currency);
  const major = Number(minor) / 10 ** digits;
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency, minimumFractionDigits: digits, maximumFractionDigits: digits }).format(major);
  } catch {
    return `${major.toFixed(digits)} ${currency}`;
  }
}

/**
 * What a person typed, in major units ("1,500", "12.5", "12,50" is not accepted), as minor
 * units, or NaN when it is not an amount of `currency` (more decimals than it has,
 * negative, empty). Group separators (",", spaces) are ignored; "." is the decimal point.
 * @param {string} text
 * @param {string} currency
 */
export function toMinor(text, currency) {
  const cleaned = String(text).trim().replace(/[,\s\u00a0\u202f]/g, '');
  const digits = currencyDigits(currency);
  const pattern = digits > 0 ? new RegExp(`^\\d+(\\.\\d{0,${digits}})?$`) : /^\d+$/;
  if (!pattern.test(cleaned)) return NaN;
  const [whole, fraction = ''] = cleaned.split('.');
  return Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, '0') || '0');
}

/**
 * Minor units as the plain decimal text an amount input shows: 12950 USD -> "129.50",
 * 1500 JPY -> "1500".
 * @param {number} minor
 * @param {string} currency
 */
export function toMajorText(minor, currency) {
  const digits = currencyDigits(currency);
  return (Number(minor) / 10 ** digits).toFixed(digits);
}

/**
 * The decimal and group separators of `locale` ("en": "." and ","; "de": "," and ".").
 * @param {string | string[] | undefined} locale
 */
function separators(locale) {
  try {
    const parts = new Intl.NumberFormat(locale).formatToParts(12345.6);
    const find = (/** @type {string} */ type, /** @type {string} */ fallback) => parts.find((p) => p.type === type)?.value ?? fallback;
    return { decimal: find('decimal', '.'), group: find('group', ',') };
  } catch {
    return { decimal: '.', group: ',' };
  }
}

/**
 * What a person typed, in major units, as minor units of `currency`, or NaN when it is not
 * one. Understands "24.50" and "24,50" alike where that is unambiguous: a single "," or "."
 * followed by 1 to the currency's digits is the decimal point (so "24,50" USD is 2450); one
 * followed by exactly 3 digits is a group separator unless it is `locale`'s decimal point
 * ("1,500" JPY is 1500, "1.500" is 1500 in "de"); with both, the last one is the decimal
 * point ("1.234,50", "1,234.50"). Groups after the first have 3 digits. More decimals than
 * the currency has ("1500.5" JPY, "24.555" USD), signs, letters and empty text give NaN.
 * @param {string} text
 * @param {string} currency
 * @param {string | string[]} [locale] default: the runtime's
 */
export function parseMoney(text, currency, locale) {
  const cleaned = String(text).trim().replace(/[\s\u00a0\u202f']/g, '');
  if (!/^\d[\d.,]*$/.test(cleaned) || /[.,]$/.test(cleaned)) return NaN;
  const digits = currencyDigits(currency);
  const comma = cleaned.lastIndexOf(',');
  const dot = cleaned.lastIndexOf('.');
  let point = -1; // index of the decimal point, if any
  if (comma >= 0 && dot >= 0) {
    point = Math.max(comma, dot);
  } else if (comma >= 0 || dot >= 0) {
    const sep = comma >= 0 ? ',' : '.';
    const at = Math.max(comma, dot);
    const once = cleaned.indexOf(sep) === at;
    const after = cleaned.length - at - 1;
    if (once && after !== 3) point = at;
    else if (once && sep === separators(locale).decimal) point = at;
  }
  const whole = point >= 0 ? cleaned.slice(0, point) : cleaned;
  const fraction = point >= 0 ? cleaned.slice(point + 1) : '';
  if (/[.,]/.test(fraction) || fraction.length > digits) return NaN;
  const groupSep = whole.match(/[.,]/)?.[0];
  if (groupSep) {
    if (point >= 0 && cleaned[point] === groupSep) return NaN;
    if (!new RegExp(`^\\d{1,3}(\\${groupSep}\\d{3})+$`).test(whole)) return NaN;
  }
  const wholeDigits = whole.replace(/[.,]/g, '');
  if (wholeDigits === '') return NaN;
  return Number(wholeDigits) * 10 ** digits + Number(fraction.padEnd(digits, '0') || '0');
}
