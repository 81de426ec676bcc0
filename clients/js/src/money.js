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
