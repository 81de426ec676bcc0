export const JSON_SUBPROTOCOL = 'livecart.v1.json';
export const MSGPACK_SUBPROTOCOL = 'livecart.v1.msgpack';

const textDecoder = new TextDecoder();

/**
 * @typedef {object} Codec
 * @property {string} subprotocol the Sec-WebSocket-Protocol it is named by
 * @property {boolean} binary whether frames go out as binary
 * @property {(message: object) => string | Uint8Array} encode
 * @property {(data: string | ArrayBuffer | Uint8Array) => any} decode
 */

/** The built-in JSON codec (`livecart.v1.json`). @type {Codec} */
export const jsonCodec = Object.freeze({
  subprotocol: JSON_SUBPROTOCOL,
  binary: false,
  encode: (message) => JSON.stringify(message),
  decode: (data) => JSON.parse(typeof data === 'string' ? data : textDecoder.decode(toBytes(data))),
});

/**
 * @param {ArrayBuffer | ArrayBufferView} data
 * @returns {Uint8Array}
 */
function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/**
 * The codec to use from the `codec` option: undefined or "json" → JSON; a full Codec as
 * is; any other object with `encode` and `decode` (e.g. the `@msgpack/msgpack` module) →
 * msgpack (`livecart.v1.msgpack`, binary frames).
 * @param {undefined | 'json' | Codec | {encode: (v: any) => Uint8Array, decode: (b: Uint8Array) => any}} codec
 * @returns {Codec}
 */
export function resolveCodec(codec) {
  if (codec === undefined || codec === null || codec === 'json') return jsonCodec;
  if (typeof codec !== 'object' || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
    throw new TypeError('codec: "json" or an object with encode() and decode()');
  }
  if ('subprotocol' in codec && typeof codec.subprotocol === 'string') return /** @type {Codec} */ (codec);
  const { encode, decode } = codec;
  return Object.freeze({
    subprotocol: MSGPACK_SUBPROTOCOL,
    binary: true,
    encode: (message) => encode(message),
    decode: (data) => {
      if (typeof data === 'string') throw new TypeError('msgpack codec got a text frame');
      return decode(toBytes(data));
    },
  });
}
