/**
 * The SIGKILL loop shared by crash.test.ts (12 kills) and crash.soak.test.ts (100+): a child runs
 * the xfer workload and is killed at varied moments, restarting with changing shard counts; then
 * an engine in this process lets every delayed credit fire, reads the egress records left, and
 * everything is checked against the ledger.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { Weft } from '../../src/index.js';
import { fixture, within } from './helpers.js';
import { ledger } from './ledger.js';

export const ACCOUNTS = 40;

interface Run {
  sent: number[];
  acked: number[];
  /** `[record id, transfer id]` per delivery, in order. */
  egress: Array<[string, number]>;
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
    const [what, n, m] = line.split(' ');
    if (what === 'ready') timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    else if (what === 'sent') run.sent.push(Number(n));
    else if (what === 'ack') run.acked.push(Number(n));
    else if (what === 'egress') run.egress.push([n!, Number(m)]);
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

export interface CrashFigures {
  kills: number;
  acked: number;
  lost: number;
  doubled: number;
  egressRecords: number;
  egressDeliveries: number;
  egressRedelivered: number;
  egressLost: number;
}

/**
 * `kills` SIGKILLed runs, then the checks: every acknowledged transfer applied exactly once, money
 * conserved, and every committed egress record delivered at least once (never one a crash rolled
 * back), which the consumer dedupes by id to exactly once. Returns the figures.
 */
export async function crashLoop(dataDir: string, kills: number, shardPlan: readonly number[], killAfter: (round: number) => number): Promise<CrashFigures> {
  const all: Run = { sent: [], acked: [], egress: [] };
  for (let round = 0; round < kills; round++) {
    const r = await runChild(dataDir, shardPlan[round % shardPlan.length]!, round * 1_000_000, killAfter(round));
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
    await weft.checkpoint();
    // The egress records no child acknowledged (or read) before its kill.
    const left = weft.metrics().egressBuffered;
    if (left > 0) {
      let n = 0;
      for await (const rec of weft.egress('xfer/audit')) {
        all.egress.push([rec.id, rec.value as number]);
        if (++n === left) {
          await rec.ack();
          break;
        }
      }
    }
    expect(weft.metrics().egressBuffered).toBe(0);
    const { total, debits, credits } = await ledger(weft, ACCOUNTS);
    // No transfer applied twice.
    const doubled = [...debits.values()].filter((c) => c !== 1).length + [...credits.values()].filter((c) => c !== 1).length;
    expect(doubled).toBe(0);
    // Every acknowledged transfer applied.
    const lost = all.acked.filter((id) => !debits.has(id));
    expect(lost).toEqual([]);
    // Every debit has its credit and vice versa; nothing applied that was never sent.
    expect([...debits.keys()].filter((id) => !credits.has(id))).toEqual([]);
    expect([...credits.keys()].filter((id) => !debits.has(id))).toEqual([]);
    const sent = new Set(all.sent);
    expect([...debits.keys()].filter((id) => !sent.has(id))).toEqual([]);
    // Money is conserved.
    expect(total).toBe(0);

    // Egress. A record id names one record for ever: every delivery of an id carries the same value.
    const byId = new Map<string, number>();
    for (const [id, xfer] of all.egress) {
      const had = byId.get(id);
      if (had !== undefined) expect(xfer).toBe(had);
      else byId.set(id, xfer);
    }
    // Deduped by id, exactly once: one record per applied transfer, none for one a crash rolled back.
    const xfers = [...byId.values()];
    expect(new Set(xfers).size).toBe(xfers.length);
    expect(xfers.filter((id) => !debits.has(id))).toEqual([]);
    const delivered = new Set(xfers);
    const egressLost = [...debits.keys()].filter((id) => !delivered.has(id));
    expect(egressLost).toEqual([]);
    return {
      kills,
      acked: all.acked.length,
      lost: lost.length,
      doubled,
      egressRecords: byId.size,
      egressDeliveries: all.egress.length,
      egressRedelivered: all.egress.length - byId.size,
      egressLost: egressLost.length,
    };
  } finally {
    await weft.close();
  }
}
