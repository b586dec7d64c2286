import { afterAll, describe, expect, it } from 'vitest';

/**
 * The raw-ring baseline of bench (c) answers every request, also when one tick makes more
 * requests than its main → worker ring holds. Its flush used to ignore a full ring: the frames
 * held back went out only with the next flush, and after the last request there was none, so the
 * bench hung (seen at 90% of a 750k req/s maximum).
 */
const { RingActors } = (await import(new URL('../../dist/native-bench/baselines/ring.js', import.meta.url).href)) as typeof import('../../native-bench/baselines/ring.js');

describe('raw-ring baseline', () => {
  let actors: Awaited<ReturnType<typeof RingActors.start>> | undefined;
  afterAll(async () => {
    await actors?.close();
  });

  it('answers 300,000 requests made in one tick (more than its rings hold)', async () => {
    actors = await RingActors.start(2);
    const n = 300_000;
    const replies: Array<Promise<number>> = [];
    for (let i = 0; i < n; i++) replies.push(actors.request(`c${i % 1000}`));
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('requests left unanswered after 30 s')), 30_000);
    });
    try {
      const counts = await Promise.race([Promise.all(replies), stuck]);
      expect(counts).toHaveLength(n);
      // Each of the 1,000 counters was incremented 300 times.
      expect(counts.reduce((a, b) => Math.max(a, b), 0)).toBe(n / 1000);
    } finally {
      clearTimeout(timer);
    }
  }, 60_000);
});
