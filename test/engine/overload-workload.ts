import { expect } from 'vitest';
import type { Weft } from '../../src/index.js';
import { within } from './helpers.js';

/**
 * Offered load well above capacity for a sustained period: engine memory stays bounded, every
 * acknowledged message is applied, throughput does not collapse, and latency recovers after.
 * The soak variant (test/engine/overload.soak.test.ts) runs the same for minutes.
 */
export async function overload(weft: Weft, seconds: number): Promise<void> {
  const to = (i: number) => ({ type: 'bank/account', id: `o-${i % 1000}` });
  // Capacity, measured in this run: a burst, then idle.
  const burst = 20_000;
  let t0 = performance.now();
  await within(Promise.all(Array.from({ length: burst }, (_, i) => weft.send(to(i), { op: 'deposit', amount: 1 }))), 60_000, 'burst');
  const capacity = burst / ((performance.now() - t0) / 1000);

  // Offer 3× capacity in 10 ms ticks for `seconds`, holding at most 100k sends outstanding (as a
  // service would shed load); count acknowledged ones.
  let acked = burst;
  let offered = 0;
  let outstanding = 0;
  let maxSpill = 0;
  let maxBacklog = 0;
  let maxHeap = 0;
  const heap0 = process.memoryUsage().heapUsed;
  // Sends are counted, not kept: at a few hundred thousand a second, an array of every send's
  // promise would itself outgrow any bound the test checks (and the soak's heap).
  let failure: unknown;
  t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const n = Math.ceil((capacity * 3) / 100);
    for (let k = 0; k < n && outstanding < 100_000; k++) {
      outstanding++;
      weft.send(to(offered++), { op: 'deposit', amount: 1 }).then(
        () => {
          outstanding--;
          acked++;
        },
        (err: unknown) => {
          outstanding--;
          failure ??= err;
        },
      );
    }
    const m = weft.metrics();
    maxSpill = Math.max(maxSpill, m.ingressSpilledFrames);
    maxBacklog = Math.max(maxBacklog, ...m.shards.map((s) => s.mailboxBacklog));
    maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed - heap0);
    await new Promise((r) => setTimeout(r, 10));
  }
  const overloadSeconds = (performance.now() - t0) / 1000;
  const ackedDuring = acked - burst;
  const drainUntil = performance.now() + 120_000;
  while (outstanding > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 10));
  expect(failure).toBeUndefined();
  expect(outstanding).toBe(0);
  await within(weft.idle(), 60_000, 'idle');

  // Bounded engine memory: held-back ingress frames and mailboxes stay under their high-water
  // marks (plus one frame of slack), whatever is offered.
  expect(maxSpill).toBeLessThan(200);
  expect(maxBacklog).toBeLessThan(16_384 + 1_100);
  expect(maxHeap).toBeLessThan(400 * 1024 * 1024);
  // No collapse: under 3× overload the engine still commits at a good fraction of its capacity.
  expect(ackedDuring / overloadSeconds).toBeGreaterThan(capacity * 0.3);
  // Nothing acknowledged is lost.
  let total = 0;
  for (let i = 0; i < 1000; i++) total += ((await weft.query(to(i)))?.balance as number) ?? 0;
  expect(total).toBe(burst + offered);
  // Latency recovers: requests are answered promptly again once the overload is over.
  const lat: number[] = [];
  for (let i = 0; i < 50; i++) {
    const s = performance.now();
    await weft.request(to(i), { op: 'get' });
    lat.push(performance.now() - s);
  }
  lat.sort((a, b) => a - b);
  expect(lat[25]).toBeLessThan(50);
}
