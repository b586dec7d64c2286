import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft } from '../../src/index.js';
import { fixture, removeDir, tempDir, within } from './helpers.js';
import { ledger } from './ledger.js';

const ACCOUNTS = 40;
const KILLS = 12;

interface Run {
  sent: number[];
  acked: number[];
  egress: number[];
}

/** Runs the workload child until `killAfterMs`, then SIGKILLs it. */
function runChild(dataDir: string, shards: number, firstId: number, killAfterMs: number): Promise<Run> {
  const run: Run = { sent: [], acked: [], egress: [] };
  const child = spawn(process.execPath, [fileURLToPath(fixture('crash-child')), dataDir, String(shards), String(firstId), String(ACCOUNTS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let timer: NodeJS.Timeout | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const [what, n] = line.split(' ');
    if (what === 'ready') timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    else if (what === 'sent') run.sent.push(Number(n));
    else if (what === 'ack') run.acked.push(Number(n));
    else if (what === 'egress') run.egress.push(Number(n));
  });
  // A child that never gets ready is killed too: every run is bounded.
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      if (signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal})`));
      // Let readline deliver the last lines the child wrote before it died.
      else setImmediate(() => resolve(run));
    });
  });
}

describe('crash recovery (SIGKILL) keeps every acknowledged transfer exactly once', () => {
  const dataDir = tempDir('weft-crash-');
  afterAll(() => removeDir(dataDir));

  it(`survives ${KILLS} kills at varied moments, with changing shard counts`, async () => {
    const all: Run = { sent: [], acked: [], egress: [] };
    const shardPlan = [2, 2, 3, 1, 4, 2, 3, 2, 1, 2, 4, 2];
    for (let round = 0; round < KILLS; round++) {
      // Kill moments spread from "just after start" to "well into the run".
      const killAfterMs = 30 + ((round * 137) % 700);
      const r = await runChild(dataDir, shardPlan[round % shardPlan.length]!, round * 1_000_000, killAfterMs);
      all.sent.push(...r.sent);
      all.acked.push(...r.acked);
      all.egress.push(...r.egress);
    }
    expect(all.acked.length).toBeGreaterThan(100);

    // Recover in-process with yet another shard count, let every delayed credit fire.
    const weft = await Weft.start({ module: fixture('xfer'), dataDir, shards: 3, durability: 'process' });
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        await within(weft.idle(), 20_000, 'idle');
        const pending = weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0);
        if (pending === 0) break;
        if (Date.now() > deadline) throw new Error(`${pending} delayed credits never fired`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // The last timers may have fired after idle() resolved: their credits are counted as alive
      // before the shard reports no pending timers, so one more idle() waits for them.
      await within(weft.idle(), 20_000, 'idle after the last timers');
      const { total, debits, credits } = await ledger(weft, ACCOUNTS);
      // No transfer applied twice.
      expect([...debits.values()].filter((c) => c !== 1)).toEqual([]);
      expect([...credits.values()].filter((c) => c !== 1)).toEqual([]);
      // Every acknowledged transfer applied.
      expect(all.acked.filter((id) => !debits.has(id))).toEqual([]);
      // Every debit has its credit and vice versa; nothing applied that was never sent.
      expect([...debits.keys()].filter((id) => !credits.has(id))).toEqual([]);
      expect([...credits.keys()].filter((id) => !debits.has(id))).toEqual([]);
      const sent = new Set(all.sent);
      expect([...debits.keys()].filter((id) => !sent.has(id))).toEqual([]);
      // Money is conserved.
      expect(total).toBe(0);
      // Egress: never a record twice, never one that a crash rolled back.
      expect(new Set(all.egress).size).toBe(all.egress.length);
      expect(all.egress.filter((id) => !debits.has(id))).toEqual([]);
    } finally {
      await weft.close();
    }
  }, 240_000);
});
