/**
 * Close codes after which a client reconnects and resumes (docs/protocol.md § Close
 * codes; clients/core.py `should_reconnect`): none (the connection dropped), 1001, 1006,
 * 1011-1014 and 3000-3499. Not 1000, 1007, 1009, 3500-3999 or anything else.
 * A browser reports a drop as 1006 and a close frame without a code as 1005: both
 * count as "no code".
 * @param {number | null | undefined} code
 * @returns {boolean}
 */
export function shouldReconnect(code) {
  if (code === null || code === undefined || code === 1005) return true;
  return RECONNECT_CODES.has(code) || (code >= 3000 && code < 3500);
}

const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014]);

/**
 * Jittered exponential backoff ("full jitter", clients/backoff.py): before the n-th
 * consecutive attempt wait a uniformly random time in [0, min(maxMs, baseMs * 2**n)].
 */
export class Backoff {
  /**
   * @param {{baseMs?: number, maxMs?: number, maxAttempts?: number | null, random?: () => number}} [options]
   */
  constructor({ baseMs = 250, maxMs = 15000, maxAttempts = null, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.maxAttempts = maxAttempts;
    this.random = random;
    this.attempt = 0;
  }

  /** The delay before the next attempt in ms, or null when attempts are used up. */
  next() {
    if (this.maxAttempts != null && this.attempt >= this.maxAttempts) return null;
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt += 1;
    return this.random() * ceiling;
  }

  reset() {
    this.attempt = 0;
  }
}

/**
 * How long to stay away when the engine said `retry_after_ms`: at least that, plus up to
 * half again at random (clients/core.py `shed_delay_s`).
 * @param {number} retryAfterMs
 * @param {() => number} [random]
 */
export function shedDelayMs(retryAfterMs, random = Math.random) {
  return retryAfterMs * (1 + 0.5 * random());
}

/**
 * Offsets (`<ms>-<seq>`) compared numerically, never as strings: <0, 0 or >0.
 * @param {string} a
 * @param {string} b
 */
export function compareOffsets(a, b) {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}
