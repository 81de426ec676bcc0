// A minimal MessagePack codec for the tests only (maps, arrays, strings, ints, floats,
// booleans, nil; bin decodes to Uint8Array): enough to run `livecart.v1.msgpack` against
// the engine without installing a package. Applications pass a real library
// (`@msgpack/msgpack`) as the SDK's `codec`.
const enc = new TextEncoder();
const dec = new TextDecoder();

export function encode(value) {
  const out = [];
  const u8 = (...bytes) => out.push(...bytes);
  const be = (n, width) => {
    for (let i = width - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn));
  };
  const write = (v) => {
    if (v === null || v === undefined) u8(0xc0);
    else if (v === false) u8(0xc2);
    else if (v === true) u8(0xc3);
    else if (typeof v === 'number' && Number.isInteger(v)) {
      if (v >= 0 && v < 128) u8(v);
      else if (v < 0 && v >= -32) u8(v & 0xff);
      else if (v >= 0) (v < 2 ** 32 ? (u8(0xce), be(v, 4)) : (u8(0xcf), be(v, 8)));
      else (u8(0xd3), be(BigInt.asUintN(64, BigInt(v)), 8));
    } else if (typeof v === 'number') {
      const view = new DataView(new ArrayBuffer(8));
      view.setFloat64(0, v);
      u8(0xcb, ...new Uint8Array(view.buffer));
    } else if (typeof v === 'string') {
      const bytes = enc.encode(v);
      if (bytes.length < 32) u8(0xa0 | bytes.length);
      else (u8(0xdb), be(bytes.length, 4));
      out.push(...bytes);
    } else if (Array.isArray(v)) {
      u8(0xdd), be(v.length, 4);
      v.forEach(write);
    } else {
      const keys = Object.keys(v).filter((k) => v[k] !== undefined);
      u8(0xdf), be(keys.length, 4);
      for (const k of keys) (write(k), write(v[k]));
    }
  };
  write(value);
  return Uint8Array.from(out);
}

export function decode(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const uint = (width) => {
    let n = 0n;
    for (let i = 0; i < width; i++) n = (n << 8n) | BigInt(bytes[pos++]);
    return Number(n);
  };
  const str = (n) => dec.decode(bytes.subarray(pos, (pos += n)));
  const arr = (n) => Array.from({ length: n }, read);
  const map = (n) => {
    const o = {};
    for (let i = 0; i < n; i++) o[read()] = read();
    return o;
  };
  const read = () => {
    const b = bytes[pos++];
    if (b < 0x80) return b;
    if (b < 0x90) return map(b & 0x0f);
    if (b < 0xa0) return arr(b & 0x0f);
    if (b < 0xc0) return str(b & 0x1f);
    if (b >= 0xe0) return b - 256;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: case 0xc5: case 0xc6: { const n = uint(1 << (b - 0xc4)); return bytes.slice(pos, (pos += n)); }
      case 0xca: pos += 4; return view.getFloat32(pos - 4);
      case 0xcb: pos += 8; return view.getFloat64(pos - 8);
      case 0xcc: return uint(1);
      case 0xcd: return uint(2);
      case 0xce: return uint(4);
      case 0xcf: return uint(8);
      case 0xd0: pos += 1; return view.getInt8(pos - 1);
      case 0xd1: pos += 2; return view.getInt16(pos - 2);
      case 0xd2: pos += 4; return view.getInt32(pos - 4);
      case 0xd3: pos += 8; return Number(view.getBigInt64(pos - 8));
      case 0xd9: return str(uint(1));
      case 0xda: return str(uint(2));
      case 0xdb: return str(uint(4));
      case 0xdc: return arr(uint(2));
      case 0xdd: return arr(uint(4));
      case 0xde: return map(uint(2));
      case 0xdf: return map(uint(4));
      default: throw new Error(`msgpack: unsupported byte 0x${b.toString(16)}`);
    }
  };
  return read();
}
