/**
 * A JS number in MessagePack, as msgpackr writes it (its `useFloat32` off): positive and negative
 * fixint, uint 8/16/32, int 8/16/32, else float64. One writer for the transport's frames
 * (transport/framing.ts) and the msgpack value type's payloads (types.ts), which must write the
 * same bytes as msgpackr (tests compare them).
 */

const FLOAT = new Float64Array(1);
const FLOAT_BYTES = new Uint8Array(FLOAT.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Most bytes {@link writeMsgpackNumber} writes. */
export const MSGPACK_NUMBER_MAX_BYTES = 9;

/**
 * Writes `n` at `out[at]` and returns how many bytes it wrote (1, 2, 3, 5 or 9); `view` is a
 * DataView over the same memory as `out` (one the caller keeps: one per call was slower). `out`
 * must have {@link MSGPACK_NUMBER_MAX_BYTES} bytes of room from `at`. -0 is written as the
 * integer 0, as msgpackr does.
 */
export function writeMsgpackNumber(n: number, out: Uint8Array, view: DataView, at: number): number {
  if (n >>> 0 === n) {
    if (n < 0x80) {
      out[at] = n;
      return 1;
    }
    if (n < 0x100) {
      out[at] = 0xcc;
      out[at + 1] = n;
      return 2;
    }
    if (n < 0x10000) {
      out[at] = 0xcd;
      out[at + 1] = n >> 8;
      out[at + 2] = n & 0xff;
      return 3;
    }
    out[at] = 0xce;
    view.setUint32(at + 1, n);
    return 5;
  }
  if (n >> 0 === n) {
    if (n >= -0x20) {
      out[at] = n & 0xff;
      return 1;
    }
    if (n >= -0x80) {
      out[at] = 0xd0;
      out[at + 1] = n & 0xff;
      return 2;
    }
    if (n >= -0x8000) {
      out[at] = 0xd1;
      view.setInt16(at + 1, n);
      return 3;
    }
    out[at] = 0xd2;
    view.setInt32(at + 1, n);
    return 5;
  }
  out[at] = 0xcb;
  view.setFloat64(at + 1, n);
  return 9;
}

/** The big-endian float64 at `src[p, p + 8)` (the caller checked that it is there). */
export function readFloat64BE(src: Uint8Array, p: number): number {
  if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) FLOAT_BYTES[7 - i] = src[p + i] as number;
  else for (let i = 0; i < 8; i++) FLOAT_BYTES[i] = src[p + i] as number;
  return FLOAT[0] as number;
}
