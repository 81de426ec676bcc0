/**
 * The SDK's error: the engine's wire error (docs/protocol.md § Errors), or one of the
 * SDK's own codes: `connect_failed`, `disconnected`, `timeout`, `not_connected`, `closed`.
 */
export class LivecartError extends Error {
  /** @type {'LivecartError'} */
  name = 'LivecartError';

  /**
   * @param {string} code a stable error code
   * @param {string} message human-readable; wording may change
   * @param {{retryable?: boolean, details?: Record<string, any>, status?: number}} [options]
   */
  constructor(code, message, { retryable = false, details = {}, status } = {}) {
    super(`${code}: ${message}`);
    /** @type {string} */ this.code = code;
    /** @type {string} */ this.detail = message;
    /** @type {boolean} */ this.retryable = retryable;
    /** @type {Record<string, any>} */ this.details = details || {};
    /** @type {number | undefined} */ this.status = status;
  }

  /** `details.retry_after_ms`, when the engine said how long to wait. */
  get retryAfterMs() {
    const value = this.details.retry_after_ms;
    return typeof value === 'number' ? value : undefined;
  }

  /**
   * An `error` frame (or an HTTP error body's `error` object) as a LivecartError.
   * @param {Record<string, any>} body
   * @param {number} [status]
   */
  static fromWire(body, status) {
    return new LivecartError(String(body.code ?? 'error'), String(body.message ?? ''), {
      retryable: Boolean(body.retryable),
      details: body.details || {},
      status,
    });
  }
}
