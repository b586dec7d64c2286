/**
 * fast-check arbitraries for what frame records are made of (src/transport/framing.ts): the
 * values FrameEncoder writes itself, shared by the encoder's and the decoder's property tests.
 */
import fc from 'fast-check';

/** One field: a string (any unit, ASCII often), a number of any msgpack width, a boolean, null or a payload. */
export const frameScalar = fc.oneof(
  // size 'max': without it fast-check keeps lengths to about 10, whatever maxLength says.
  fc.string({ unit: 'grapheme', maxLength: 80, size: 'max' }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 80, size: 'max' }),
  fc.string({ unit: 'binary', maxLength: 40, size: 'max' }),
  fc.integer(),
  fc.integer({ min: -0x80000000, max: 0xffffffff }),
  // -0 is written as integer 0, by msgpackr and by FrameEncoder alike.
  fc.double().map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.maxSafeInteger(),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 300, size: 'max' }),
);

/** A field of a record: mostly a scalar, sometimes an array of them. */
export const frameField = fc.oneof({ weight: 5, arbitrary: frameScalar }, { weight: 1, arbitrary: fc.array(frameScalar, { maxLength: 20 }) });
