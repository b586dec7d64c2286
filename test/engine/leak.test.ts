/**
 * Start/close cycles leave nothing behind: each engine's shared rings (16 MiB and more per
 * engine), threads, file descriptors and handles go away with it. Runs the cycles in a child
 * process with --expose-gc (test/fixtures/cycle-child.ts), so a forced GC separates what is
 * still reachable from what merely awaits collection. The 200-cycle version is in
 * leak.soak.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { handles, runCycles } from './cycles.js';

const MiB = 1024 * 1024;
/** The default `ringBytes`: one engine with 2 shards allocates 6 such rings. */
const RING_BYTES = 4 * MiB;

describe('start/close cycles', () => {
  it('keep no rings, threads, fds or handles of closed engines', async () => {
    const samples = await runCycles('compute', 24, 4, 60_000);
    expect(samples.map((s) => s.cycle)).toEqual([0, 1, 4, 8, 12, 16, 20, 24]);
    // Baseline after 4 warm-up cycles: modules loaded, the libuv pool started, the first
    // generation's rings allocated (and kept for the next engine, router/spare-rings.ts).
    const base = samples[2]!;
    const end = samples[samples.length - 1]!;
    const cycles = end.cycle - base.cycle;
    const growth = { arrayBuffers: end.arrayBuffers - base.arrayBuffers, rss: end.rss - base.rss };
    const context = JSON.stringify({ growth, samples: samples.map(({ resources, ...rest }) => ({ ...rest, resources: resources.join(',') })) });
    // A leaked engine keeps 6 rings (24 MiB): 20 cycles would add 480 MiB of array buffers.
    expect(growth.arrayBuffers / cycles, context).toBeLessThan(RING_BYTES / 16);
    expect(growth.rss / cycles, context).toBeLessThan(RING_BYTES / 2);
    expect(end.threads, context).toBeLessThanOrEqual(base.threads);
    expect(end.fds, context).toBeLessThanOrEqual(base.fds);
    expect(handles(end), context).toEqual(handles(base));
  }, 90_000);
});
