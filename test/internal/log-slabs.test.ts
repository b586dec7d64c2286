import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LogSlabs, SLAB_BYTES } from '../../src/internal/log-slabs.js';

function frame(seed: number, length: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (seed * 31 + i) & 0xff;
  return f;
}

function intact(f: Uint8Array, seed: number): boolean {
  for (let i = 0; i < f.length; i++) if (f[i] !== ((seed * 31 + i) & 0xff)) return false;
  return true;
}

describe('LogSlabs (main\'s resend log memory)', () => {
  it('keeps every frame intact until it is released, each shard releasing in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: Math.floor(SLAB_BYTES / 3) }), fc.boolean()), { minLength: 1, maxLength: 120 }),
        (ops) => {
          const slabs = new LogSlabs(3);
          const live: Array<Array<{ seed: number; kept: Uint8Array }>> = [[], [], []];
          // Each frame is checked when it is released: any overwrite before then is caught.
          const release = (shard: number, f: { seed: number; kept: Uint8Array }): void => {
            expect(intact(f.kept, f.seed)).toBe(true);
            slabs.release(shard, f.kept);
          };
          ops.forEach(([shard, length, rel], seed) => {
            const original = frame(seed, length);
            const kept = slabs.keep(shard, original);
            original.fill(0); // the caller's frame is reused: the copy must not change
            live[shard]!.push({ seed, kept });
            // Release this shard's oldest half, in order.
            if (rel) for (const f of live[shard]!.splice(0, Math.ceil(live[shard]!.length / 2))) release(shard, f);
          });
          for (let s = 0; s < 3; s++) for (const f of live[s]!.splice(0)) release(s, f);
          // Everything released: only pooled (and current, empty) slabs remain, a bounded number.
          expect(slabs.slabs).toBeLessThanOrEqual(16 + 3);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('reuses memory: a steady log does not allocate a slab per frame', () => {
    const slabs = new LogSlabs(1);
    const buffers = new Set<ArrayBufferLike>();
    const live: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const kept = slabs.keep(0, frame(i, 16 * 1024));
      buffers.add(kept.buffer);
      live.push(kept);
      if (live.length > 40) slabs.release(0, live.shift()!);
    }
    // 41 live frames of 16 KiB need 3 slabs of 256 KiB; 2000 frames were kept in a handful.
    expect(buffers.size).toBeLessThanOrEqual(8);
  });

  it('gives big frames a copy of their own', () => {
    const slabs = new LogSlabs(1);
    const big = frame(1, SLAB_BYTES / 2);
    const kept = slabs.keep(0, big);
    expect(kept.buffer.byteLength).toBe(SLAB_BYTES / 2);
    expect(kept).toEqual(big);
    slabs.release(0, kept);
    expect(slabs.slabs).toBe(0);
  });
});
