/**
 * The shard loop without a worker thread: a ShardLoop runs in the test's own thread on real rings
 * and doorbells over SharedArrayBuffers and a real LMDB partition in a temp dir. The test plays
 * main (and, where it matters, another shard): it writes frames into the loop's inbound rings,
 * lets the event loop run, and reads the frames the loop wrote into its outbound rings.
 *
 * No seam was needed: the loop schedules its turns with setImmediate and sleeps with
 * Atomics.waitAsync on its doorbell, both of which run on this thread too. A turn never runs in
 * the middle of the test's synchronous code, so frames written together are seen together;
 * every wait is for a condition (a frame arrives, the loop sleeps), bounded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { Participant } from '../../src/checkpoint/participant.js';
import { ShardLoop, type ShardBoot } from '../../src/shard/shard-loop.js';
import { RemoteFunctions } from '../../src/shard/remote-functions.js';
import { Partition } from '../../src/state/partition.js';
import { ControlBlock } from '../../src/contract/control-block.js';
import { Partitioner } from '../../src/contract/partitioner.js';
import { E_CALLER_ID, E_CALLER_TYPE, E_HSEQ, E_TARGET_ID, E_TARGET_TYPE, Kind, envelope, resolveNames, type Envelope } from '../../src/contract/envelope.js';
import { Doorbell } from '../../src/transport/doorbell.js';
import { Ring } from '../../src/transport/ring.js';
import { NameTable } from '../../src/transport/names.js';
import { decodeBatch, encodeBatch } from '../../src/transport/framing.js';
import { compileModule, wireNamesOf } from '../../src/module/runtime.js';
import { defineModule } from '../../src/module/definition.js';
import { encodeMessage } from '../../src/module/validation.js';
import { type } from '../../src/codec/types.js';
import { META_FOLDED_EPOCH, PendingKind, decodeEnvelopes, decodeStates } from '../../src/state/checkpoint-format.js';
import { decodeRecord, type InstanceRecord } from '../../src/state/instance.js';
import { quietDeferred, type Deferred } from '../../src/internal/deferred.js';
import { InstanceCache } from '../../src/state/instance-cache.js';

const root = mkdtempSync(join(tmpdir(), 'weft-shard-loop-'));
let dirs = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** What async test functions wait for; opened by the tests that use it. */
let gate: Deferred<void> = quietDeferred<void>();

const module = compileModule(
  defineModule({
    functions: {
      /** Adds the message to its count and replies with the new count. */
      'test/counter': {
        state: { n: type.int() },
        fn(ctx, msg) {
          ctx.state.n = (ctx.state.n ?? 0) + (msg.value as number);
          ctx.reply(ctx.state.n);
        },
      },
      /** Holds the thread for `value` ms (busy), then replies. */
      'test/busy': {
        fn(ctx, msg) {
          const until = performance.now() + (msg.value as number);
          while (performance.now() < until);
          ctx.reply(0);
        },
      },
      /** Sends `n` to the counter `to`. */
      'test/forward': {
        fn(ctx, msg) {
          const v = msg.value as { to: string; n: number };
          ctx.send({ type: 'test/counter', id: v.to }, v.n);
        },
      },
      /** `{ delayMs, tag }`: sends itself `{ tag }` after delayMs; `{ tag }`: records it to egress. */
      'test/later': {
        fn(ctx, msg) {
          const v = msg.value as { delayMs?: number; tag: string };
          if (v.delayMs !== undefined) ctx.sendAfter(v.delayMs, ctx.self, { tag: v.tag });
          else ctx.egress('test/out', v.tag);
        },
      },
      /** Counts, after waiting for the gate. */
      'test/gated': {
        state: { n: type.int() },
        async fn(ctx) {
          await gate.promise;
          ctx.state.n = (ctx.state.n ?? 0) + 1;
        },
      },
      /** Replies with the message, after waiting for the gate. */
      'test/gated-echo': {
        async fn(ctx, msg) {
          await gate.promise;
          ctx.reply(msg.value);
        },
      },
      /** Writes `keep` and `v`; `v` expires 30 ms after it was written. */
      'test/fleeting': {
        state: { keep: type.int(), v: { type: type.int(), expireAfterWrite: 30 } },
        fn(ctx, msg) {
          ctx.state.keep = msg.value as number;
          ctx.state.v = msg.value as number;
        },
      },
    },
    egresses: ['test/out'],
  }),
);
const wireNames = wireNamesOf(module);
const names = new NameTable(wireNames);

/** The shape of one shard's shared memory and files, as ShardPool hands it to a worker. */
interface ShardShape {
  readonly shard: number;
  readonly shards: number;
  readonly partitionPath: string;
  readonly inbound: ReadonlyArray<SharedArrayBuffer | null>;
  readonly outbound: ReadonlyArray<SharedArrayBuffer | null>;
  readonly bells: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
}

const KEY_GROUPS = 64;

/**
 * The ONE place that builds a shard's settings (ShardBoot): engine settings as the defaults give
 * them, plus the test's shared memory. `tuning` changes a setting for one test.
 */
function shardBoot(shape: ShardShape, tuning: { cacheSize?: number } = {}): ShardBoot {
  return {
    ...shape,
    settings: {
      moduleUrl: 'test:shard-loop (the module is compiled by the test)',
      durability: 'process',
      cacheSize: tuning.cacheSize ?? 10_000,
      maxAttempts: 3,
      retryBackoffMs: 10,
      maxMessageBytes: 1 << 20,
      maxStateValueBytes: 1 << 20,
      remote: [],
      invocationTimeoutMs: 30_000,
      idempotencyRetentionMs: 60_000,
      ringBytes: 1 << 16,
      maxShardHeapMb: undefined,
      shardYoungGenerationMb: 128,
      shardSemiSpaceMb: 32,
      shardMemoryReducer: false,
    },
    keyGroups: KEY_GROUPS,
    committedEpoch: 0,
    sameHost: true,
    compute: false,
    quarantine: [],
    careful: false,
    wireNames,
  };
}

/** Thread numbers (doorbells, ring indexes): 0 is main, 1 + k is shard k. The loop is shard 0. */
const MAIN = 0;
const ME = 1;
/** The other shard, in tests with two. */
const PEER = 2;

/** A ShardLoop in this thread, with the test as every other thread. */
class Rig {
  readonly bells: Doorbell;
  readonly control: ControlBlock;
  readonly partition: Partition;
  readonly loop: ShardLoop;
  readonly remote: RemoteFunctions;
  /** The test's producer end of each inbound ring of the loop (by thread; null for the loop's own). */
  readonly into: Array<Ring | null>;
  /** The test's consumer end of each outbound ring of the loop. */
  readonly outOf: Array<Ring | null>;
  /** Frames' records read from each outbound ring, in order. */
  readonly received: unknown[][][];
  readonly fatal: unknown[] = [];
  /** The loop's thread number (1 + its shard index). */
  readonly me: number;
  #closed = false;

  private constructor(bells: Doorbell, control: ControlBlock, partition: Partition, into: Array<Ring | null>, outOf: Array<Ring | null>, boot: ShardBoot) {
    this.me = 1 + boot.shard;
    this.bells = bells;
    this.control = control;
    this.partition = partition;
    this.into = into;
    this.outOf = outOf;
    this.received = outOf.map(() => []);
    this.remote = new RemoteFunctions([]);
    this.loop = new ShardLoop(
      boot,
      module,
      partition,
      {
        closed: () => {
          this.#closed = true;
        },
        fatal: (err) => {
          this.fatal.push(err);
        },
        lateCall: () => {},
      },
      this.remote,
    );
  }

  /** `shard`: the loop's shard index (default 0: thread ME). */
  static async start(options: { shards?: number; shard?: number; cacheSize?: number; mainRingBytes?: number; intoRingBytes?: number } = {}): Promise<Rig> {
    const shards = options.shards ?? 1;
    const shard = options.shard ?? 0;
    const me = 1 + shard;
    const bells = Doorbell.create(shards + 1);
    const control = ControlBlock.create(shards);
    const into: Array<Ring | null> = [];
    const outOf: Array<Ring | null> = [];
    for (let t = 0; t <= shards; t++) {
      into.push(t === me ? null : Ring.create(t === MAIN ? (options.intoRingBytes ?? 1 << 16) : 1 << 16));
      outOf.push(t === me ? null : Ring.create(t === MAIN ? (options.mainRingBytes ?? 1 << 16) : 1 << 16));
    }
    const partitionPath = join(root, `p${dirs++}`);
    const partition = await Partition.open(partitionPath, { durability: 'process' });
    const boot = shardBoot(
      {
        shard,
        shards,
        partitionPath,
        inbound: into.map((r) => r?.buffer ?? null),
        outbound: outOf.map((r) => r?.buffer ?? null),
        bells: bells.buffer,
        control: control.buffer,
      },
      options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize },
    );
    const rig = new Rig(bells, control, partition, into, outOf, boot);
    rigs.push(rig);
    await rig.loop.start();
    return rig;
  }

  /** Writes `records` as one frame into the loop's ring from thread `from`, publishes it and rings the loop. */
  send(from: number, records: unknown[]): void {
    const ring = this.into[from];
    if (ring === null || ring === undefined) throw new Error(`no ring from thread ${from}`);
    const messages = records.filter((r) => (r as unknown[])[0] === Kind.Msg).length;
    if (!ring.tryWrite(encodeBatch(records))) throw new Error(`ring from thread ${from} is full`);
    // Main counts the messages it publishes as alive, as Weft does (the shard counts completions).
    if (from === MAIN) this.control.addAlive(messages);
    ring.publish();
    this.bells.ring(this.me);
  }

  /** Reads every frame the loop published, ringing it back when it waits for room (as main does). */
  drain(): void {
    for (let t = 0; t < this.outOf.length; t++) {
      const ring = this.outOf[t];
      if (ring === null || ring === undefined) continue;
      const got = this.received[t] as unknown[][];
      if (ring.drain((frame) => got.push(...decodeBatch(frame))) > 0 && ring.takeRoomRequest()) this.bells.ring(this.me);
    }
  }

  /** Records of `kind` read so far from the ring to thread `to`. */
  records(to: number, kind: Kind): unknown[][] {
    return (this.received[to] as unknown[][]).filter((r) => r[0] === kind);
  }

  /** Waits (bounded) until `cond` holds, reading the loop's output meanwhile. */
  async until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      this.drain();
      if (this.fatal.length > 0) throw new Error(`the shard failed while waiting until ${what}: ${String(this.fatal[0])}`);
      if (cond()) return;
      if (Date.now() > deadline) throw new Error(`waited ${ms} ms, still not: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Waits until the loop has nothing to do and sleeps on its doorbell. */
  idle(): Promise<void> {
    return this.until('the shard sleeps', () => this.bells.isSleeping(this.me));
  }

  metric(name: Parameters<typeof metricOf>[1]): number {
    return metricOf(this.control, name, this.me - 1);
  }

  /** Sends Close, waits until the loop closed, and closes the partition. */
  async close(): Promise<void> {
    if (this.partition.closed) return;
    gate.resolve();
    if (this.fatal.length === 0) {
      this.send(MAIN, [[Kind.Close]]);
      await this.until('the shard closed', () => this.#closed);
    }
    // A sleep nobody rings would keep this rig reachable (see Doorbell.wakeAll).
    this.bells.wakeAll();
    await this.remote.close();
    await this.partition.close();
  }
}

function metricOf(control: ControlBlock, name: keyof ReturnType<ControlBlock['readShard']>['metrics'], shard = 0): number {
  return control.readShard(shard).metrics[name];
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) await rig.close();
  gate = quietDeferred<void>();
});

/** Sends main's messages that change `n` counters (`k0`...), 500 to a frame. */
function sendCounterChanges(rig: Rig, n: number): void {
  for (let i = 0; i < n; i += 500) rig.send(MAIN, Array.from({ length: Math.min(500, n - i) }, (_, k) => msg('test/counter', `k${i + k}`, 1)));
}

/**
 * Watches the slices in which the loop's turns encode a snapshot (InstanceCache.captureSome with
 * a deadline; finishCapture's call, without one, is not a turn's slice): before slice k it reads
 * main's ring and records in `replyOut[k]` whether a reply has reached it, then calls `atSlice(k)`.
 * `short`: every slice ends at its first look at the clock, so a capture takes many turns.
 */
function watchSlices(rig: Rig, options: { short?: boolean; atSlice?: (k: number) => void } = {}): { replyOut: boolean[]; restore(): void } {
  const replyOut: boolean[] = [];
  const captureSome = InstanceCache.prototype.captureSome;
  const spy = vi.spyOn(InstanceCache.prototype, 'captureSome').mockImplementation(function (this: InstanceCache, deadline: number) {
    if (deadline === Number.POSITIVE_INFINITY) return captureSome.call(this, deadline);
    rig.drain();
    replyOut.push(rig.records(MAIN, Kind.Reply).length === 1);
    options.atSlice?.(replyOut.length - 1);
    return captureSome.call(this, options.short === true ? performance.now() - 1 : deadline);
  });
  return { replyOut, restore: () => spy.mockRestore() };
}

/** A message as main sends it: the value encoded with the module's default type. */
function msg(targetType: string, targetId: string, value: unknown, opts: { replyTo?: number; hseq?: number; caller?: [string, string] } = {}): Envelope {
  const [typename, payload] = encodeMessage(module, value, undefined, 'test', 1 << 20);
  return envelope(targetType, targetId, opts.caller?.[0] ?? null, opts.caller?.[1] ?? null, typename, payload, opts.replyTo ?? 0, opts.hseq ?? 0);
}

/** A reply record's value, decoded as Weft does (its typename travels as a name-table index). */
function replyValue(rec: unknown[]): unknown {
  const t = module.typeOf(names.resolve(rec[2]) as string);
  return t === undefined ? rec[3] : t.decode(rec[3] as Uint8Array);
}

const partitioner = new Partitioner(2, KEY_GROUPS);
/** An id of `type` whose address shard `shard` of two owns. */
function idOn(shard: number, type: string, prefix: string): string {
  for (let i = 0; i < 1000; i++) {
    const id = `${prefix}${i}`;
    if (partitioner.shardOf(partitioner.keyGroup(type, id)) === shard) return id;
  }
  throw new Error(`no id for shard ${shard}`);
}

/** The state value `name` of a query result or state record. */
function slotValue(record: InstanceRecord | null, name: string): unknown {
  const slot = record?.slots.find((s) => s[0] === name);
  return slot === undefined ? undefined : type.int().decode(slot[1]);
}

describe('ShardLoop: messages', () => {
  it('runs a host message, writes its reply and then the ack to main, and counts it complete', async () => {
    const rig = await Rig.start();
    rig.send(MAIN, [msg('test/counter', 'a', 5, { replyTo: 7, hseq: 1 }), msg('test/counter', 'a', 2, { replyTo: 8, hseq: 2 })]);
    await rig.until('two replies and the ack', () => rig.records(MAIN, Kind.Reply).length === 2 && rig.records(MAIN, Kind.Ack).length > 0);
    const toMain = rig.received[MAIN] as unknown[][];
    expect(toMain.map((r) => r[0])).toEqual([Kind.Reply, Kind.Reply, Kind.Ack]);
    // The typename travels as its name-table index.
    expect(typeof toMain[0]![2]).toBe('number');
    expect(toMain.slice(0, 2).map((r) => [r[1], replyValue(r)])).toEqual([
      [7, 5],
      [8, 7],
    ]);
    // Every host message with hseq < 3 completed; none held back.
    expect(toMain[2]).toEqual([Kind.Ack, 3, []]);
    expect(rig.control.alive()).toBe(0);
    expect(rig.metric('invocations')).toBe(2);
  });

  it('stops starting invocations once a turn has run for about a millisecond: a backlog is answered over many turns, not one', async () => {
    const rig = await Rig.start();
    await rig.idle();
    const turns = rig.metric('turns');
    // 256 messages of 0.1 ms each, in one frame: 25 ms of work. A turn looks at the clock every 32
    // invocations (3.2 ms here), so it ends after 32 of them; one turn ran all 256 before.
    const backlog: Envelope[] = [];
    for (let i = 0; i < 256; i++) backlog.push(msg('test/busy', `b${i}`, 0.1, { replyTo: 100 + i, hseq: 1 + i }));
    rig.send(MAIN, backlog);
    await rig.until('256 replies', () => rig.records(MAIN, Kind.Reply).length === 256, 30_000);
    expect(rig.metric('invocations')).toBe(256);
    expect(rig.metric('turns') - turns).toBeGreaterThanOrEqual(8);
  });

  it('goes back to sleep right after the turn that answered a message: one turn per message under light load', async () => {
    const rig = await Rig.start();
    await rig.idle();
    const turns = rig.metric('turns');
    for (let i = 1; i <= 20; i++) {
      rig.send(MAIN, [msg('test/counter', 'light', 1, { replyTo: i, hseq: i })]);
      await rig.until(`reply ${i}`, () => rig.records(MAIN, Kind.Reply).length === i);
      await rig.idle();
    }
    expect(rig.metric('invocations')).toBe(20);
    // Each message: the wake-up's turn drains, runs, publishes and sleeps (an empty turn followed
    // every one before).
    expect(rig.metric('turns') - turns).toBeLessThanOrEqual(20);
  });

  it('sends a message for an address of another shard out on that shard ring, with its caller', async () => {
    const rig = await Rig.start({ shards: 2 });
    const here = idOn(0, 'test/counter', 'here');
    const there = idOn(1, 'test/counter', 'there');
    rig.send(MAIN, [msg('test/forward', 'f', { to: there, n: 3 }), msg('test/forward', 'f', { to: here, n: 4 })]);
    await rig.until('the message for shard 1', () => rig.records(PEER, Kind.Msg).length === 1);
    await rig.idle();
    const out = rig.records(PEER, Kind.Msg).map((r) => resolveNames(r, names));
    expect(out.map((e) => [e[E_TARGET_TYPE], e[E_TARGET_ID], e[E_CALLER_TYPE], e[E_CALLER_ID]])).toEqual([['test/counter', there, 'test/forward', 'f']]);
    // The local one ran here: the counter now holds 4.
    rig.send(MAIN, [[Kind.Query, 1, 'test/counter', here]]);
    await rig.until('the query result', () => rig.records(MAIN, Kind.QueryResult).length === 1);
    expect(slotValue(rig.records(MAIN, Kind.QueryResult)[0]![2] as InstanceRecord, 'n')).toBe(4);
    // The message on its way to shard 1 is alive until shard 1 completes it.
    expect(rig.control.alive()).toBe(1);
  });
});

describe('ShardLoop: queries', () => {
  it('answers a query from the state it holds: null for an address without state, expired values left out', async () => {
    const rig = await Rig.start();
    rig.send(MAIN, [[Kind.Query, 1, 'test/counter', 'q']]);
    await rig.until('the first answer', () => rig.records(MAIN, Kind.QueryResult).length === 1);
    expect(rig.records(MAIN, Kind.QueryResult)[0]).toEqual([Kind.QueryResult, 1, null]);

    rig.send(MAIN, [msg('test/counter', 'q', 41), msg('test/counter', 'q', 1)]);
    await rig.until('both ran', () => rig.metric('invocations') === 2);
    rig.send(MAIN, [[Kind.Query, 2, 'test/counter', 'q']]);
    await rig.until('the second answer', () => rig.records(MAIN, Kind.QueryResult).length === 2);
    const answer = rig.records(MAIN, Kind.QueryResult)[1]!;
    expect(answer[1]).toBe(2);
    expect(slotValue(answer[2] as InstanceRecord, 'n')).toBe(42);

    // A value past its TTL is left out (it is still in the cached instance), the others stay.
    rig.send(MAIN, [msg('test/fleeting', 'f', 9)]);
    await rig.until('it ran', () => rig.metric('invocations') === 3);
    let id = 3;
    rig.send(MAIN, [[Kind.Query, id, 'test/fleeting', 'f']]);
    let last: unknown[] = [];
    await rig.until('the value expired', () => {
      last = rig.records(MAIN, Kind.QueryResult).at(-1)!;
      if (last[1] === id && slotValue(last[2] as InstanceRecord, 'v') === undefined) return true;
      if (last[1] === id) rig.send(MAIN, [[Kind.Query, ++id, 'test/fleeting', 'f']]);
      return false;
    });
    expect((last[2] as InstanceRecord).slots.map((s) => s[0])).toEqual(['keep']);
    expect(slotValue(last[2] as InstanceRecord, 'keep')).toBe(9);
  });
});

describe('ShardLoop: timers', () => {
  it('fires a due delayed message with no further input, and keeps the one not due', async () => {
    const rig = await Rig.start();
    rig.send(MAIN, [msg('test/later', 'soon', { delayMs: 20, tag: 'fired' }), msg('test/later', 'later', { delayMs: 3_600_000, tag: 'never' })]);
    // Nothing more is sent: once idle, the loop sleeps until the due timer and wakes by itself.
    await rig.until('the due timer ran', () => rig.records(MAIN, Kind.Egress).length === 1);
    const [rec] = rig.records(MAIN, Kind.Egress);
    expect(rec![1]).toBe('test/out');
    // The typename travels as its name-table index.
    expect(typeof rec![2]).toBe('number');
    expect(module.typeOf(names.resolve(rec![2]) as string)!.decode(rec![3] as Uint8Array)).toBe('fired');
    await rig.until('the metrics are published', () => rig.metric('timersFired') === 1);
    expect(rig.metric('pendingTimers')).toBe(1);
    expect(rig.metric('invocations')).toBe(3);
    await rig.idle();
  });
});

describe('ShardLoop: checkpoint barriers', () => {
  it('snapshots at the first barrier, records what arrives on a ring before its barrier, and reports DONE once PENDING is written', async () => {
    const rig = await Rig.start({ shards: 2 });
    const a = idOn(0, 'test/counter', 'a');
    const b = idOn(0, 'test/counter', 'b');
    const c = idOn(0, 'test/counter', 'c');
    // Before the barrier: a changes, and a delayed message is set (both belong to epoch 1).
    rig.send(MAIN, [msg('test/counter', a, 1, { hseq: 1 }), msg('test/later', 't', { delayMs: 3_600_000, tag: 'x' }, { hseq: 2 })]);
    await rig.until('both ran', () => rig.metric('invocations') === 2);

    rig.send(MAIN, [[Kind.Barrier, 1]]);
    await rig.until('the barrier is forwarded on every outbound ring', () => rig.records(MAIN, Kind.Barrier).length === 1 && rig.records(PEER, Kind.Barrier).length === 1);
    // The ack of the messages before the snapshot precedes the barrier to main.
    const toMain = rig.received[MAIN] as unknown[][];
    expect(toMain.map((r) => r[0])).toEqual([Kind.Ack, Kind.Barrier]);
    expect(toMain[0]).toEqual([Kind.Ack, 3, []]);
    expect(toMain[1]).toEqual([Kind.Barrier, 1]);

    // BARRIER(1) has not come from shard 1: a message from it now was sent before its snapshot
    // and arrives after ours — recorded. One from main now belongs to epoch 2 — not recorded.
    rig.send(PEER, [msg('test/counter', b, 10, { caller: ['test/forward', 'p'] })]);
    rig.send(MAIN, [msg('test/counter', c, 100, { hseq: 3 })]);
    await rig.until('both ran', () => rig.metric('invocations') === 4);
    await rig.idle();
    expect(rig.records(MAIN, Kind.Done)).toEqual([]);
    expect(rig.partition.pendingEpochs()).toEqual([]);

    rig.send(PEER, [[Kind.Barrier, 1]]);
    await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
    const done = rig.records(MAIN, Kind.Done)[0]!;
    expect(done[1]).toBe(1);
    // PENDING(1) is durable when DONE(1) is sent.
    expect(rig.partition.pendingEpochs()).toEqual([1]);
    const pending = [...rig.partition.pendingEntries(1)];
    const kinds = pending.map((p) => p.key[1]);
    // At the snapshot only a had changed: b and c changed after it.
    const states = decodeStates(pending.find((p) => p.key[1] === PendingKind.States)!.value);
    expect(states.map((s) => [s[1], s[2], slotValue(decodeRecord(s[3]!), 'n')])).toEqual([['test/counter', a, 1]]);
    // The mailboxes were empty at the snapshot; the recorded in-flight message is b's.
    const mailbox = decodeEnvelopes(pending.find((p) => p.key[1] === PendingKind.Mailbox)!.value);
    expect(mailbox.map((e) => [e[E_TARGET_ID], e[E_CALLER_ID]])).toEqual([[b, 'p']]);
    // The delayed message set before the barrier is in the snapshot.
    expect(kinds.filter((k) => k === PendingKind.TimerPut)).toHaveLength(1);
    expect(kinds).toContain(PendingKind.Meta);
    expect(done[2]).toMatchObject({ states: 1 });
    expect((done[2] as { bytes: number }).bytes).toBeGreaterThan(0);

    // A repeated barrier of an epoch already taken changes nothing.
    rig.send(MAIN, [[Kind.Barrier, 1]]);
    await rig.idle();
    expect(rig.records(MAIN, Kind.Done)).toHaveLength(1);
    expect(rig.records(PEER, Kind.Barrier)).toHaveLength(1);
  });

  it('publishes the replies of a turn before it encodes a slice of the snapshot in progress', async () => {
    const rig = await Rig.start({ intoRingBytes: 1 << 22 });
    // 5,000 changed counters: the snapshot at the barrier encodes them in slices, one per turn.
    const changed = 5000;
    sendCounterChanges(rig, changed);
    await rig.until('every counter changed', () => rig.metric('invocations') === changed);
    await rig.idle();
    rig.drain();
    const slices = watchSlices(rig);
    try {
      // The barrier starts the snapshot; the request behind it runs in the same turn, before
      // that turn's slice.
      rig.send(MAIN, [[Kind.Barrier, 1], msg('test/counter', 'asked', 5, { replyTo: 7 })]);
      await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
    } finally {
      slices.restore();
    }
    expect(replyValue(rig.records(MAIN, Kind.Reply)[0]!)).toBe(5);
    expect(slices.replyOut.length).toBeGreaterThan(0);
    expect(slices.replyOut[0]).toBe(true);
    // The request came after the barrier: its change belongs to the next epoch.
    expect(rig.records(MAIN, Kind.Done)[0]![2]).toMatchObject({ states: changed });
  });

  it('publishes the reply of an async invocation settled between two turns before the next slice of the snapshot', async () => {
    const rig = await Rig.start({ intoRingBytes: 1 << 22 });
    const changed = 5000;
    sendCounterChanges(rig, changed);
    rig.send(MAIN, [msg('test/gated-echo', 'e', 'echo', { replyTo: 9 })]);
    await rig.until('the counters ran and the echo waits', () => rig.metric('invocations') === changed + 1 && rig.metric('parkedInvocations') === 1);
    await rig.idle();
    rig.drain();
    // The echo settles after the first slice's turn (in its microtasks), before the next turn;
    // and the slices are made short, so that the capture takes many turns.
    const slices = watchSlices(rig, { short: true, atSlice: (k) => k === 0 && gate.resolve() });
    try {
      rig.send(MAIN, [[Kind.Barrier, 1]]);
      await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
    } finally {
      slices.restore();
    }
    expect(replyValue(rig.records(MAIN, Kind.Reply)[0]!)).toBe('echo');
    // The turn after the echo settled neither drained nor ran anything: its slice still came
    // after the reply was out.
    expect(slices.replyOut.length).toBeGreaterThan(2);
    expect(slices.replyOut.slice(0, 2)).toEqual([false, true]);
  });

  it('reports the acks of invocations completed before the snapshot ahead of the barrier, also when they completed since its last turn', async () => {
    const rig = await Rig.start();
    rig.send(MAIN, [msg('test/gated', 'g', null, { hseq: 1 })]);
    await rig.until('g waits', () => rig.metric('parkedInvocations') === 1);
    await rig.idle();
    expect(rig.received[MAIN]).toEqual([[Kind.Ack, 1, []]]);
    // g completes (in this thread's microtasks, before the loop's next turn), then the barrier
    // arrives: the snapshot holds g's change, so its ack goes to main before the barrier.
    gate.resolve();
    rig.send(MAIN, [[Kind.Barrier, 1]]);
    await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
    expect((rig.received[MAIN] as unknown[][]).map((r) => r.slice(0, 2))).toEqual([
      [Kind.Ack, 1],
      [Kind.Ack, 2],
      [Kind.Barrier, 1],
      [Kind.Done, 1],
    ]);
    expect(rig.records(MAIN, Kind.Done)[0]![2]).toMatchObject({ states: 1 });
  });

  it('snapshots a mailbox with the message of an invocation still running, and folds PENDING into the base on COMMITTED', async () => {
    const rig = await Rig.start();
    rig.send(MAIN, [msg('test/gated', 'g', null, { hseq: 1 }), msg('test/gated', 'g', null, { hseq: 2 }), msg('test/counter', 'k', 5)]);
    // (Invocations count when they start.)
    await rig.until('the counter ran and g waits', () => rig.metric('invocations') === 2 && rig.metric('parkedInvocations') === 1);
    rig.send(MAIN, [[Kind.Barrier, 1]]);
    await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
    const mailbox = decodeEnvelopes([...rig.partition.pendingEntries(1)].find((p) => p.key[1] === PendingKind.Mailbox)!.value);
    // The running invocation's message and the one queued behind it: both run again on recovery.
    expect(mailbox.map((e) => [e[E_TARGET_TYPE], e[E_TARGET_ID], e[E_HSEQ]])).toEqual([
      ['test/gated', 'g', 1],
      ['test/gated', 'g', 2],
    ]);
    expect(rig.partition.getMeta(META_FOLDED_EPOCH)).toBeUndefined();
    gate.resolve();
    await rig.until('g ran twice', () => rig.records(MAIN, Kind.Ack).some((a) => a[1] === 3));
    rig.send(MAIN, [[Kind.Committed, 1]]);
    // Folded (at the latest when the engine goes quiet): the base holds epoch 1's state.
    await rig.until('epoch 1 folded', () => rig.partition.getMeta(META_FOLDED_EPOCH) === 1);
    expect(rig.partition.pendingEpochs()).toEqual([]);
    expect(rig.partition.countState()).toBe(1);
  });
});

describe('ShardLoop: the dirty-instance throttle', () => {
  it('publishes its dirty count each turn, keeps dirty instances over the cache size, and frees them at the snapshot', async () => {
    const rig = await Rig.start({ cacheSize: 8 });
    const first = Array.from({ length: 40 }, (_, i) => msg('test/counter', `k${i}`, 1));
    rig.send(MAIN, first);
    await rig.until('40 ran', () => rig.metric('invocations') === 40);
    // Main throttles sends on this count (Weft: dirty instances over the cache size).
    expect(rig.metric('dirtyInstances')).toBe(40);
    // Dirty instances are never evicted: the cache holds all 40 though its size is 8.
    expect(rig.metric('cacheInstances')).toBe(40);
    expect(rig.metric('cacheEvictions')).toBe(0);

    rig.send(MAIN, [[Kind.Barrier, 1]]);
    await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
    expect(rig.records(MAIN, Kind.Done)[0]![2]).toMatchObject({ states: 40 });
    await rig.until('the dirty count is published', () => rig.metric('dirtyInstances') === 0);

    // Clean now, they make room for others; their state is still there (not yet folded).
    rig.send(
      MAIN,
      Array.from({ length: 40 }, (_, i) => msg('test/counter', `m${i}`, 1)),
    );
    await rig.until('40 more ran', () => rig.metric('invocations') === 80);
    expect(rig.metric('cacheEvictions')).toBeGreaterThan(0);
    expect(rig.metric('dirtyInstances')).toBe(40);
    rig.send(MAIN, [msg('test/counter', 'k0', 1, { replyTo: 1 })]);
    await rig.until('the reply', () => rig.records(MAIN, Kind.Reply).length === 1);
    expect(replyValue(rig.records(MAIN, Kind.Reply)[0]!)).toBe(2);
  });

  it('folds at once on COMMITTED when the cache is over its size, without waiting for the quiet timer', async () => {
    // Folds started while COMMITTED is handled (not by the quiet timer or close), told by where
    // foldNow is called from.
    const foldNow = Participant.prototype.foldNow;
    const started: number[] = [];
    const spy = vi.spyOn(Participant.prototype, 'foldNow').mockImplementation(function (this: Participant) {
      if (new Error().stack?.includes('onCommitted') === true) started.push(this.lastCommitted);
      foldNow.call(this);
    });
    try {
      const rig = await Rig.start({ cacheSize: 8 });
      rig.send(MAIN, Array.from({ length: 40 }, (_, i) => msg('test/counter', `k${i}`, 1)));
      await rig.until('40 ran', () => rig.metric('invocations') === 40);
      rig.send(MAIN, [[Kind.Barrier, 1]]);
      await rig.until('DONE(1)', () => rig.records(MAIN, Kind.Done).length === 1);
      rig.send(MAIN, [[Kind.Committed, 1]]);
      await rig.idle();
      // The fold of epoch 1 started when COMMITTED(1) was handled (epoch 1 is far from its turn,
      // epoch 16). Its last write waits for the earlier ones (and a turn of the event loop), so a
      // later snapshot's PENDING write may commit before it: wait for it, bounded.
      expect(started).toEqual([1]);
      rig.send(MAIN, [[Kind.Barrier, 2]]);
      await rig.until('DONE(2)', () => rig.records(MAIN, Kind.Done).length === 2);
      await rig.until('the fold of epoch 1 is written', () => rig.partition.getMeta(META_FOLDED_EPOCH) !== undefined);
      expect(rig.partition.getMeta(META_FOLDED_EPOCH)).toBe(1);
      expect(rig.partition.countState()).toBe(40);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('ShardLoop: staggered folds', () => {
  it('starts its folds at the commits of its own phase: shard 0 of 2 at COMMITTED(16), shard 1 at COMMITTED(8)', async () => {
    // Every shard folding at the same commit kept the shards, their commits and the GC busy at
    // once every 16 checkpoints (issue 13). Each rig plays main and the other shard. The folds
    // that COMMITTED starts are told from the quiet-timer's and close's by where they are called.
    const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const foldNow = Participant.prototype.foldNow;
    let started: number[] = [];
    const spy = vi.spyOn(Participant.prototype, 'foldNow').mockImplementation(function (this: Participant) {
      if (new Error().stack?.includes('onCommitted') === true) started.push(this.lastCommitted);
      foldNow.call(this);
    });
    try {
      for (const [shard, foldAt] of [
        [0, 16],
        [1, 8],
      ] as const) {
        started = [];
        const rig = await Rig.start({ shards: 2, shard });
        const peer = shard === 0 ? PEER : ME;
        const ids = Array.from({ length: 10 }, (_, i) => idOn(shard, 'test/counter', `s${i}-`));
        for (let epoch = 1; epoch <= 20; epoch++) {
          rig.send(MAIN, ids.map((id) => msg('test/counter', id, epoch)));
          await rig.until(`epoch ${epoch} ran`, () => rig.metric('invocations') === 10 * epoch);
          rig.send(MAIN, [[Kind.Barrier, epoch]]);
          rig.send(peer, [[Kind.Barrier, epoch]]);
          await rig.until(`DONE(${epoch})`, () => rig.records(MAIN, Kind.Done).length === epoch);
          if (epoch < foldAt) expect(rig.partition.pendingEpochs()).toEqual(range(1, epoch));
          rig.send(MAIN, [[Kind.Committed, epoch]]);
          await rig.idle();
          if (epoch === foldAt) await rig.until(`the fold started at COMMITTED(${epoch})`, () => rig.partition.getMeta(META_FOLDED_EPOCH) === epoch);
        }
        expect(started).toEqual([foldAt]);
        expect(rig.partition.countState()).toBe(10);
        await rig.close();
      }
    } finally {
      spy.mockRestore();
    }
  });
});

describe('ShardLoop: full rings (ring-back)', () => {
  it('never waits for a full ring to main: it spills, finishes its work, sleeps, and delivers everything in order once main makes room', async () => {
    const rig = await Rig.start({ shards: 2, mainRingBytes: 1024 });
    const n = 300;
    const peerId = idOn(1, 'test/counter', 'p');
    const sends: Envelope[] = [];
    for (let i = 1; i <= n; i++) sends.push(msg('test/counter', `r${i % 7}`, i, { replyTo: i, hseq: i }));
    // One more: its work goes to shard 1, whose ring has room.
    sends.push(msg('test/forward', 'f', { to: peerId, n: 1 }, { hseq: n + 1 }));
    rig.send(MAIN, sends);
    // Main reads nothing meanwhile (the loop's writes to main stay in the ring or spill).
    for (const deadline = Date.now() + 10_000; ; ) {
      rig.outOf[PEER]!.drain((frame) => rig.received[PEER]!.push(...decodeBatch(frame)));
      if (rig.metric('invocations') === n + 1 && rig.metric('ringSpillDepth') > 0 && rig.bells.isSleeping(ME)) break;
      if (rig.fatal.length > 0 || Date.now() > deadline) throw new Error(`the loop did not finish its work with a full ring to main (${rig.metric('invocations')} invocations, spill depth ${rig.metric('ringSpillDepth')})`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // Work for the other shard went out though main's ring is full.
    expect(rig.records(PEER, Kind.Msg)).toHaveLength(1);
    expect(rig.outOf[MAIN]!.fillRatio()).toBeGreaterThan(0.5);
    // Main now reads, and rings the loop when it asked for room: everything arrives, in order.
    await rig.until('every reply', () => rig.records(MAIN, Kind.Reply).length === n && rig.records(MAIN, Kind.Ack).some((a) => a[1] === n + 2));
    expect(rig.records(MAIN, Kind.Reply).map((r) => r[1])).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const sums = new Map<number, number>();
    for (let i = 1; i <= n; i++) sums.set(i, (sums.get(i - 7) ?? 0) + i);
    expect(rig.records(MAIN, Kind.Reply).map(replyValue)).toEqual(Array.from({ length: n }, (_, i) => sums.get(i + 1)));
    await rig.until('the spill is empty', () => rig.metric('ringSpillDepth') === 0);
    // Only the message on its way to shard 1 is still alive.
    expect(rig.control.alive()).toBe(1);
  });

  it('rings main back when it frees room in a ring main found full', async () => {
    const rig = await Rig.start({ intoRingBytes: 1024 });
    const ring = rig.into[MAIN]!;
    // A fresh shard's first turn reports its ack watermark (1) to main: let it pass first.
    await rig.idle();
    rig.drain();
    expect(rig.received[MAIN]).toEqual([[Kind.Ack, 1, []]]);
    // Messages whose invocations wait (so nothing else would wake main: no reply, ack or idle).
    let written = 0;
    for (;;) {
      const frame = encodeBatch([msg('test/gated', `g${written}`, null)]);
      if (!ring.tryWrite(frame)) break;
      written++;
    }
    rig.control.addAlive(written);
    ring.publish();
    rig.bells.ring(ME);
    // As main does with a full ring: announce the sleep, ask for room, sleep until rung.
    rig.bells.prepareSleep(MAIN);
    expect(ring.requestRoom(256)).toBe(false);
    const woke = await rig.bells.sleep(MAIN, 10_000);
    expect(woke).not.toBe('timed-out');
    expect(ring.hasRoomFor(256)).toBe(true);
    await rig.until('every message is parked', () => rig.metric('parkedInvocations') === written);
    // Nothing else went to main (so nothing else rang it).
    expect(rig.received[MAIN]).toEqual([[Kind.Ack, 1, []]]);
    gate.resolve();
    await rig.until('all completed', () => rig.control.alive() === 0 && rig.metric('parkedInvocations') === 0);
    expect(rig.metric('invocations')).toBe(written);
  });

  it('stops taking messages while its mailboxes are full, leaving them in the ring, and takes them once they drain', async () => {
    const rig = await Rig.start({ intoRingBytes: 1 << 22 });
    const total = 20_000;
    // One address: its invocations run one at a time, so its mailbox grows while the gate is shut.
    const sends: Envelope[] = [];
    for (let i = 1; i <= total; i++) sends.push(msg('test/gated', 'one', null, { hseq: i }));
    for (let at = 0; at < total; at += 1000) rig.send(MAIN, sends.slice(at, at + 1000));
    await rig.idle();
    const backlog = rig.metric('mailboxBacklog');
    // MAILBOX_HIGH_WATER is 16384; a frame (here 1000 messages) is taken whole.
    expect(backlog).toBeGreaterThanOrEqual(16_384);
    expect(backlog).toBeLessThan(16_384 + 1000);
    expect(rig.into[MAIN]!.usedBytes()).toBeGreaterThan(0);
    gate.resolve();
    await rig.until('every message ran and was acknowledged', () => rig.records(MAIN, Kind.Ack).some((a) => a[1] === total + 1), 30_000);
    expect(rig.metric('invocations')).toBe(total);
    expect(rig.into[MAIN]!.usedBytes()).toBe(0);
    rig.send(MAIN, [[Kind.Query, 1, 'test/gated', 'one']]);
    await rig.until('the query result', () => rig.records(MAIN, Kind.QueryResult).length === 1);
    expect(slotValue(rig.records(MAIN, Kind.QueryResult)[0]![2] as InstanceRecord, 'n')).toBe(total);
  });
});
