/**
 * Host sends that fill a main→shard ring many times over, while the shard sends nothing back: the
 * main thread then moves on only when the shard rings it for room. A lost room request left both
 * threads asleep with the ring empty and frames held back on main (a 34 MB backlog in
 * test/engine/remote.test.ts; test/contract/outbound.test.ts reproduces the orderings exactly).
 * Engines are started and closed in a loop in one process, so rings are reused between them.
 */
import { describe, expect, it } from 'vitest';
import { Weft, type } from '../../src/index.js';
import { spareRingBytes } from '../../src/host/spare-rings.js';
import { fixture, removeDir, tempDir } from './helpers.js';

const ROUNDS = Number(process.env.WEFT_SOAK_ROUNDS ?? 20);
const str = { type: type.string() };

/** Polls `cond` every 10 ms until true; fails naming `what` after `ms`. */
async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what()} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ring backlog soak', () => {
  it(`${ROUNDS} rounds: a 34 MB host backlog behind a remote call reaches its shard, engines started and closed in between`, async () => {
    const dirs: string[] = [];
    // Nothing listens there: the first call to remote/noop retries for the whole budget, and the
    // messages sent meanwhile wait in the shard's mailbox (the shard sends main nothing).
    const remote = [{ functions: 'remote/*', url: 'http://127.0.0.1:9/statefun', timeoutMs: 60_000 }];
    const start = (shards: number): Promise<Weft> => {
      const dataDir = tempDir('weft-ring-backlog-');
      dirs.push(dataDir);
      return Weft.start({ module: fixture('remote-local'), dataDir, shards, durability: 'process', closeTimeoutMs: 1_000, remote });
    };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const small = await start(2);
        await Promise.all(Array.from({ length: 20 }, (_, i) => small.send({ type: 'local/slow', id: `s${i}` }, 0)));
        await small.close();
        if (round > 0) expect(spareRingBytes()).toBeGreaterThan(0);
        const weft = await start(1);
        const to = { type: 'remote/noop', id: 'big' };
        const sends = [weft.send(to, 'first', str)];
        const metric = (name: 'mailboxBacklog' | 'remoteRetries'): number => weft.metrics().shards.reduce((a, s) => a + s[name], 0);
        // The call is under way (it failed once): what follows waits behind it.
        await until(() => metric('remoteRetries') > 0, 10_000, () => `round ${round}: no attempt of the first remote call`);
        const big = 'x'.repeat(500_000);
        for (let i = 0; i < 69; i++) sends.push(weft.send(to, big, str));
        for (const s of sends) s.catch(() => {});
        const backlog = (): number => metric('mailboxBacklog');
        try {
          await until(() => backlog() === 70, 20_000, () => `round ${round}: ${backlog()} of 70 messages reached the shard's mailbox`);
        } finally {
          await weft.close();
        }
      }
    } finally {
      for (const d of dirs) removeDir(d);
    }
  }, 30 * 60_000);
});
