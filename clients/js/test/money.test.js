// Money in each currency's own minor units (clients/js/src/money.js), for the currencies the
// viewer page is tested in: USD, EUR, JPY, KRW, CNY, TWD.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { currencyDigits, formatMoney, parseMoney, toMajorText, toMinor } from '../src/index.js';

const CASES = [
  // currency, digits, minor, en text, typed, minor typed
  ['USD', 2, 12900, '$129.00', '1,234.5', 123450],
  ['EUR', 2, 4999, '€49.99', '49.99', 4999],
  ['JPY', 0, 1500, '¥1,500', '1,500', 1500],
  ['KRW', 0, 39000, '₩39,000', '39000', 39000],
  ['CNY', 2, 8800, 'CN¥88.00', '88', 8800],
  ['TWD', 2, 150000, 'NT$1,500.00', '1500.00', 150000],
];

test('digits, display and typed amounts follow each currency', () => {
  for (const [currency, digits, minor, text, typed, typedMinor] of CASES) {
    assert.equal(currencyDigits(currency), digits, currency);
    assert.equal(formatMoney(minor, currency, 'en'), text, currency);
    assert.equal(toMinor(typed, currency), typedMinor, currency);
    assert.equal(toMinor(toMajorText(minor, currency), currency), minor, `${currency} round trip`);
  }
  assert.equal(formatMoney(1500, 'JPY', 'zh-Hans'), 'JP¥1,500'); // never ¥15; JP¥ beside CNY's ¥
  assert.equal(formatMoney(8800, 'CNY', 'zh-Hans'), '¥88.00');
  assert.equal(formatMoney(150000, 'TWD', 'zh-Hant'), '$1,500.00');
});

test('amounts a currency cannot have are refused', () => {
  for (const [currency, text] of [['JPY', '1500.5'], ['USD', '1.234'], ['USD', '-5'], ['USD', ''], ['USD', 'abc'], ['KRW', '1.0']]) {
    assert.ok(Number.isNaN(toMinor(text, currency)), `${currency} ${JSON.stringify(text)}`);
  }
  assert.equal(currencyDigits('XXZ'), 2); // not a currency Intl knows: 2, and no throw
});

test('parseMoney reads a decimal comma or point where unambiguous, in the currency\'s digits', () => {
  const cases = [
    // text, currency, locale, minor (NaN: refused)
    ['24.50', 'USD', 'en', 2450],
    ['24,50', 'USD', 'en', 2450],
    ['24,5', 'USD', 'en', 2450],
    ['24', 'USD', 'en', 2400],
    ['1,500', 'USD', 'en', 150000],
    ['1,234.50', 'USD', 'en', 123450],
    ['1.234,50', 'EUR', 'de', 123450],
    ['1.234,50', 'EUR', 'en', 123450],
    ['1.500', 'EUR', 'de', 150000],
    ['1 234,50', 'EUR', 'fr', 123450],
    ['1,500', 'JPY', 'en', 1500],
    ['1500', 'JPY', 'en', 1500],
    ['1,234,567', 'KRW', 'en', 1234567],
    ['0', 'USD', 'en', 0],
    ['1500.5', 'JPY', 'en', NaN],
    ['1500,5', 'JPY', 'en', NaN],
    ['24.555', 'USD', 'en', NaN],
    ['1.500', 'USD', 'en', NaN], // "." is en's decimal point: three decimals
    ['1,50,0', 'USD', 'en', NaN],
    ['1,2345', 'USD', 'en', NaN],
    ['-5', 'USD', 'en', NaN],
    ['', 'USD', 'en', NaN],
    ['abc', 'USD', 'en', NaN],
    ['24.', 'USD', 'en', NaN],
    ['1.234.50', 'USD', 'en', NaN],
  ];
  for (const [text, currency, locale, minor] of cases) {
    assert.deepEqual(parseMoney(text, currency, locale), minor, `${text} ${currency} ${locale}`);
  }
});
