/**
 * @livecart/client: the livecart realtime viewer protocol (docs/protocol.md) in plain
 * JavaScript. No runtime dependencies: JSON is built in; pass a msgpack codec (e.g.
 * `@msgpack/msgpack`) as `codec` to use `livecart.v1.msgpack`.
 */
export { LivecartViewer, roomUrl, httpBase } from './viewer.js';
export { LivecartError } from './errors.js';
export { Backoff, shouldReconnect, shedDelayMs, compareOffsets } from './backoff.js';
export { jsonCodec, resolveCodec, JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL } from './codec.js';
export { Emitter } from './emitter.js';
export { currencyDigits, formatMoney, parseMoney, toMinor, toMajorText } from './money.js';
