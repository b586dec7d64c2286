/**
 * Egress records are durable from their commit until the host acknowledges them (issue 12, item
 * 4): real LMDB, real SIGKILL of a child process, restarts with other shard counts.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft, type, type DeadLetter, type EgressRecord } from '../../src/index.js';
import { fixture, removeDir, startEngine, take, tempDir, within } from './helpers.js';

/** Runs the egress child until it prints `ready`, SIGKILLs it, and returns the lines it printed. */
function runChild(dataDir: string, shards: number, mode: string, n: number): Promise<string[]> {
  const lines: string[] = [];
  const child = spawn(process.execPath, [fileURLToPath(fixture('egress-child')), dataDir, String(shards), mode, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    if (line === 'ready') child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal})`));
      else if (!lines.includes('ready')) reject(new Error(`child was killed before it was ready (the 30 s bound); it printed ${JSON.stringify(lines)}`));
      else resolve(lines);
    });
  });
}

const opts = (dataDir: string, shards: number) => ({ module: fixture('bank'), dataDir, shards, durability: 'process' as const, maxAttempts: 1, retryBackoffMs: 1 });

/** Takes `n` records without acknowledging any (autoAck off), then closes the iterator (they go back). */
async function peek(weft: Weft, name: string, n: number): Promise<EgressRecord[]> {
  const it = weft.egress(name, { autoAck: false });
  const recs = await take(it, n);
  await it.return?.();
  return recs;
}

describe('egress records survive SIGKILL until acknowledged', () => {
  const dataDir = tempDir('weft-egress-');
  afterAll(() => removeDir(dataDir));

  it('delivers 5 committed, unread records after a SIGKILL and a rescale, with stable ids; an acknowledged record never again', async () => {
    // 1. Five committed records (and two dead letters), never read; SIGKILL.
    const produced = await runChild(dataDir, 2, 'produce', 5);
    expect(produced).toContain('committed 7');

    // 2. Restart with another shard count: all five are there (and the dead letters).
    let weft = await Weft.start(opts(dataDir, 3));
    let first: EgressRecord[];
    let letters: EgressRecord[];
    try {
      expect(weft.metrics().egressBuffered).toBe(7);
      first = await peek(weft, 'bank/audit', 5);
      letters = await peek(weft, 'weft/dead-letters', 2);
    } finally {
      await weft.close();
    }
    expect(first.map((r) => (r.value as { from: string }).from).sort()).toEqual(['k-0', 'k-1', 'k-2', 'k-3', 'k-4']);
    expect(new Set(first.map((r) => r.id)).size).toBe(5);
    expect(letters.map((r) => ((r.value as DeadLetter).target.id)).sort()).toEqual(['dl-0', 'dl-1']);
    expect(letters.map((r) => (r.value as DeadLetter).error.message).sort()).toEqual(['boom at dl-0', 'boom at dl-1']);

    // 3. A child reads them, acknowledges the first two durably, and is SIGKILLed (one shard now).
    const read = await runChild(dataDir, 1, 'read', 5);
    const seen = read.filter((l) => l.startsWith('rec ')).map((l) => l.split(' ')[1]);
    expect(seen).toEqual(first.map((r) => r.id));
    const acked = read.find((l) => l.startsWith('acked '))!.split(' ').slice(1);
    expect(acked).toEqual(seen.slice(0, 2));

    // 4. Restart (4 shards): the three unacknowledged are delivered again with the same ids, the
    // two acknowledged never; the dead letters are still there with their ids.
    weft = await Weft.start(opts(dataDir, 4));
    try {
      expect(weft.metrics().egressBuffered).toBe(5);
      const again = await peek(weft, 'bank/audit', 3);
      expect(again.map((r) => r.id)).toEqual(seen.slice(2));
      expect(again.map((r) => r.value)).toEqual(first.slice(2).map((r) => r.value));
      const lettersAgain = await peek(weft, 'weft/dead-letters', 2);
      expect(lettersAgain.map((r) => r.id)).toEqual(letters.map((r) => r.id));
      // Acknowledge everything with the default iterator: asking for the next acknowledges the last.
      const all = weft.egress('bank/audit');
      await take(all, 3);
      await all.return?.(); // the third is given back: not acknowledged
      const [third] = await take(weft.egress('bank/audit'), 1);
      expect(third!.id).toBe(seen[4]);
      await third!.ack();
      // Records given back by an ended iterator can still be acknowledged.
      await Promise.all(lettersAgain.map((r) => r.ack()));
      expect(weft.metrics().egressBuffered).toBe(0);
    } finally {
      await weft.close();
    }
    weft = await Weft.start(opts(dataDir, 2));
    try {
      expect(weft.metrics().egressBuffered).toBe(0);
    } finally {
      await weft.close();
    }
  }, 60_000);
});

describe('egress delivery in one process', () => {
  it('gives byte values (a Kafka record\'s value) as plain Uint8Arrays, whether released at commit or read back from the data dir after a restart', async () => {
    const dataDir = tempDir();
    const start = () => Weft.start({ module: fixture('egress-bytes'), dataDir, shards: 1, durability: 'process' });
    try {
      let weft = await start();
      await weft.send({ type: 'bytes/echo', id: 'a' }, new Uint8Array([1, 2, 3]), { type: type.bytes() });
      await weft.send({ type: 'bytes/echo', id: 'b' }, new Uint8Array([4, 5]), { type: type.bytes() });
      const [first] = await take(weft.egress('bytes/out', { autoAck: false }), 1);
      const bytesOf = (r: EgressRecord | undefined): Uint8Array => (r!.value as { value: Uint8Array }).value;
      expect(first!.value).toEqual({ topic: 't', key: 'a', value: new Uint8Array([1, 2, 3]) });
      expect(bytesOf(first).constructor).toBe(Uint8Array);
      await within(weft.close(), 20_000, 'close');
      weft = await start();
      try {
        const again = await take(weft.egress('bytes/out'), 2);
        expect(again.map((r) => r.value)).toEqual([
          { topic: 't', key: 'a', value: new Uint8Array([1, 2, 3]) },
          { topic: 't', key: 'b', value: new Uint8Array([4, 5]) },
        ]);
        for (const r of again) expect(bytesOf(r).constructor).toBe(Uint8Array);
      } finally {
        await within(weft.close(), 20_000, 'close');
      }
    } finally {
      removeDir(dataDir);
    }
  });

  it('an iterator that ends without acknowledging gives its record back, with the same id', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2 });
    try {
      await Promise.all(Array.from({ length: 3 }, (_, i) => weft.send({ type: 'bank/account', id: `r-${i}` }, { op: 'transfer', amount: 1, to: 'sink' })));
      let firstId = '';
      for await (const rec of weft.egress('bank/audit')) {
        firstId = rec.id;
        break; // not acknowledged: it is delivered again
      }
      const thrower = async (): Promise<void> => {
        for await (const rec of weft.egress('bank/audit')) {
          expect(rec.id).toBe(firstId);
          throw new Error('consumer failed');
        }
      };
      await expect(thrower()).rejects.toThrow('consumer failed');
      const ids: string[] = [];
      for await (const rec of weft.egress('bank/audit')) {
        ids.push(rec.id);
        if (ids.length === 3) {
          await rec.ack();
          break;
        }
      }
      expect(ids[0]).toBe(firstId);
      expect(new Set(ids).size).toBe(3);
      expect(weft.metrics()).toMatchObject({ egressBuffered: 0, egressRedelivered: 2 });
    } finally {
      await cleanup();
    }
  });

  it('dead letters nobody reads never stall the engine: past egressMaxBacklog the oldest are deleted, counted, with a warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.message);
    };
    process.on('warning', onWarning);
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 4, maxAttempts: 1, retryBackoffMs: 1 });
    try {
      await within(Promise.all(Array.from({ length: 10 }, (_, i) => weft.send({ type: 'bank/account', id: `p-${i}` }, { op: 'boom' }))), 10_000, 'failing sends');
      // And the engine still takes sends.
      await within(weft.send({ type: 'bank/account', id: 'ok' }, { op: 'deposit', amount: 1 }), 10_000, 'a send after the dead letters');
      expect(weft.metrics()).toMatchObject({ egressBuffered: 4, egressDropped: 6, egressFull: 0 });
      const kept = (await peek(weft, 'weft/dead-letters', 4)).map((r) => (r.value as DeadLetter).target.id);
      expect(kept).toHaveLength(4);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.includes('weft/dead-letters') && w.includes('egressMaxBacklog'))).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
      await cleanup();
    }
  });
});
