/**
 * Chooses how transport frames are msgpack-encoded (the figures behind src/transport/framing.ts,
 * kept in native-bench/README.md, come from this script). Single thread, no ring: it measures only
 * encode + decode of one batch frame of message tuples, the part that dominates a ring
 * engine's CPU (about 60% of it per message, measured on 2 cores).
 *
 * Every variant carries the same 256 engine message tuples per frame (`--batch N` for another
 * count: 1 is request load, one message per frame)
 * `[kind, targetType, targetId, callerType, callerId, typename, payload, extra]` and decodes from
 * a copy in a SharedArrayBuffer, as a consumer draining a ring would. Per run: 512k messages
 * (~0.1-0.5 s per variant: long enough for timer noise to be < 1%, short enough to run
 * everything 5 times); the median of 5 runs after 1 warm-up run is reported, with the variants'
 * runs interleaved.
 *
 * A second table prices the value codec's safety walk: `DEFAULT_TYPE.encode` (type.msgpack(), what
 * host and function values are encoded with) vs msgpackr's own pack on a small and a medium user
 * value, 1M calls x 5 runs, median.
 *
 * Not measured: the ring itself, threads, wake-ups (see native-bench/transport.ts), and GC
 * pressure from retained frames.
 *
 * Run: `npm run build && node dist/native-bench/transport-framing.js [--batch 1]`
 */
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';
import { DEFAULT_TYPE } from '../src/codec/types.js';
import { FrameDecoder, encodeBatch } from '../src/transport/framing.js';
import type { MessageTuple } from './transport-message.js';

const batchAt = process.argv.indexOf('--batch');
const BATCH = batchAt > 0 ? Number(process.argv[batchAt + 1]) : 256;
if (!(Number.isInteger(BATCH) && BATCH >= 1 && BATCH <= 4096)) throw new Error(`--batch must be an integer from 1 to 4096 (got ${process.argv[batchAt + 1]})`);
const FRAMES_PER_RUN = Math.ceil(512_000 / BATCH);
const RUNS = 5;

function makeTuples(seed: number): MessageTuple[] {
  const plain = new Packr({ useRecords: false });
  const out: MessageTuple[] = [];
  for (let i = 0; i < BATCH; i++) {
    const n = seed + i;
    const fromTeller = n % 3 === 0;
    out.push([
      0,
      'bank/account',
      `acct-${n % 10_000}`,
      fromTeller ? 'bank/teller' : null,
      fromTeller ? `teller-${n % 7}` : null,
      'bank/deposit',
      Uint8Array.from(plain.pack({ amount: n % 1000 })),
      null,
    ]);
  }
  return out;
}

const KEYS = ['k', 'tt', 'ti', 'ct', 'ci', 'tn', 'p', 'x'] as const;
interface Rec {
  k: number;
  tt: string;
  ti: string;
  ct: string | null;
  ci: string | null;
  tn: string;
  p: Uint8Array;
  x: number | string | null;
}
const toRec = (t: MessageTuple): Rec => ({ k: t[0], tt: t[1], ti: t[2], ct: t[3], ci: t[4], tn: t[5], p: t[6], x: t[7] ?? null });
const fromRec = (r: Rec): MessageTuple => [r.k, r.tt, r.ti, r.ct, r.ci, r.tn, r.p, r.x];

/** A frame as the consumer sees it: a view of shared memory. */
function inShared(bytes: Uint8Array): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(bytes.length));
  view.set(bytes);
  return view;
}

interface Variant {
  name: string;
  encode(batch: MessageTuple[]): Uint8Array;
  decode(frame: Uint8Array): MessageTuple[];
}

const plainPackr = new Packr({ useRecords: false });
const plainUnpackr = new Unpackr({ useRecords: false });
const copyingUnpackr = new Unpackr({ useRecords: false, copyBuffers: true });
const structures = [[...KEYS]];
const recPackr = new Packr({ structures: structures.map((s) => [...s]), useRecords: true });
const recUnpackr = new Unpackr({ structures: structures.map((s) => [...s]), useRecords: true });
const frameDecoder = new FrameDecoder();
let scratch = Buffer.allocUnsafeSlow(1 << 16);
function intoScratch(frame: Uint8Array): Buffer {
  if (scratch.length < frame.length) scratch = Buffer.allocUnsafeSlow(frame.length * 2);
  scratch.set(frame);
  return scratch.subarray(0, frame.length);
}

/** Packs one array, returning the bytes after its header: the concatenated elements. */
function arrayBody(bytes: Uint8Array): Uint8Array {
  const h = bytes[0] ?? 0;
  const skip = h >= 0x90 && h <= 0x9f ? 1 : h === 0xdc ? 3 : 5;
  return bytes.subarray(skip);
}

const variants: Variant[] = [
  {
    name: 'plain Packr, one array per frame; decode a fresh copy (payloads view the copy)',
    encode: (b) => plainPackr.pack(b, RESET_BUFFER_MODE),
    decode: (f) => plainUnpackr.unpack(f.slice()) as MessageTuple[],
  },
  {
    name: 'plain Packr, one array per frame; decode a reused scratch with copyBuffers',
    encode: (b) => plainPackr.pack(b, RESET_BUFFER_MODE),
    decode: (f) => copyingUnpackr.unpack(intoScratch(f)) as MessageTuple[],
  },
  {
    name: 'shared-structure records (tuple<->object conversion included)',
    encode: (b) => recPackr.pack(b.map(toRec), RESET_BUFFER_MODE),
    decode: (f) => (recUnpackr.unpack(f.slice()) as Rec[]).map(fromRec),
  },
  {
    name: 'shared-structure records (objects only, no conversion)',
    encode: (b) => recPackr.pack(recsOf(b), RESET_BUFFER_MODE),
    decode: (f) => recUnpackr.unpack(f.slice()) as MessageTuple[],
  },
  {
    name: 'concatenated tuples (array body); decode with unpackMultiple',
    encode: (b) => arrayBody(plainPackr.pack(b, RESET_BUFFER_MODE)),
    decode: (f) => plainUnpackr.unpackMultiple(f.slice()) as MessageTuple[],
  },
  {
    name: 'one pack() per tuple appended to a frame; decode with unpackMultiple',
    encode: (b) => appendEach(b),
    decode: (f) => plainUnpackr.unpackMultiple(f.slice()) as MessageTuple[],
  },
  {
    name: 'FrameEncoder; msgpackr decodes a copy (up to 128 bytes: a reused scratch, copyBuffers)',
    encode: (b) => encodeBatch(b),
    decode: (f) => (f.length <= 128 ? copyingUnpackr.unpack(intoScratch(f)) : plainUnpackr.unpack(f.slice())) as MessageTuple[],
  },
  {
    name: 'FrameEncoder; FrameDecoder reads the shared bytes in place (the chosen one)',
    encode: (b) => encodeBatch(b),
    decode: (f) => {
      frameDecoder.decodeAt(f, 0, f.length);
      return frameDecoder.records as MessageTuple[];
    },
  },
];

const recCache = new WeakMap<MessageTuple[], Rec[]>();
function recsOf(b: MessageTuple[]): Rec[] {
  let r = recCache.get(b);
  if (r === undefined) recCache.set(b, (r = b.map(toRec)));
  return r;
}

const appendBuffer = new Uint8Array(1 << 16);
function appendEach(b: MessageTuple[]): Uint8Array {
  let at = 0;
  for (const t of b) {
    const bytes = plainPackr.pack(t, RESET_BUFFER_MODE);
    appendBuffer.set(bytes, at);
    at += bytes.length;
  }
  return appendBuffer.subarray(0, at);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function check(v: Variant, batch: MessageTuple[]): number {
  const frame = v.encode(batch);
  const decoded = v.decode(inShared(frame));
  if (decoded.length !== batch.length) throw new Error(`${v.name}: decoded ${decoded.length} tuples`);
  for (let i = 0; i < batch.length; i++) {
    const a = batch[i] as MessageTuple;
    const b = decoded[i] as MessageTuple | Rec;
    const bt = Array.isArray(b) ? b : fromRec(b);
    if (a[2] !== bt[2] || a[3] !== bt[3] || !Buffer.from(a[6]).equals(Buffer.from(bt[6]))) {
      throw new Error(`${v.name}: tuple ${i} differs`);
    }
  }
  return frame.length;
}

function runOnce(v: Variant, batches: MessageTuple[][], shared: Uint8Array[]): { encode: number; decode: number } {
  let sink = 0;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < FRAMES_PER_RUN; i++) sink += v.encode(batches[i % batches.length] as MessageTuple[]).length;
  const encodeNs = Number(process.hrtime.bigint() - t0);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < FRAMES_PER_RUN; i++) sink += v.decode(shared[i % shared.length] as Uint8Array).length;
  const decodeNs = Number(process.hrtime.bigint() - t0);
  if (sink === 0) throw new Error('nothing happened');
  const messages = FRAMES_PER_RUN * BATCH;
  return { encode: encodeNs / messages, decode: decodeNs / messages };
}

function main(): void {
  const batches = Array.from({ length: 8 }, (_, i) => makeTuples(i * BATCH));
  console.log(`msgpack framing: ${BATCH} message tuples per frame, ${FRAMES_PER_RUN} frames x ${RUNS} runs (median)`);
  const prepared = variants.map((v) => ({
    v,
    bytes: check(v, batches[0] as MessageTuple[]),
    shared: batches.map((b) => inShared(Uint8Array.from(v.encode(b)))),
    runs: [] as Array<{ encode: number; decode: number }>,
  }));
  for (const p of prepared) runOnce(p.v, batches, p.shared);
  // Runs interleave the variants, so GC debt or CPU frequency drift does not favour any one.
  for (let run = 0; run < RUNS; run++) for (const p of prepared) p.runs.push(runOnce(p.v, batches, p.shared));
  const rows = prepared.map((p) => {
    const enc = median(p.runs.map((r) => r.encode));
    const dec = median(p.runs.map((r) => r.decode));
    return {
      variant: p.v.name,
      'bytes/msg': +(p.bytes / BATCH).toFixed(1),
      'encode ns/msg': +enc.toFixed(1),
      'decode ns/msg': +dec.toFixed(1),
      'total ns/msg': +(enc + dec).toFixed(1),
      'M msg/s (enc+dec)': +(1e3 / (enc + dec)).toFixed(2),
    };
  });
  console.table(rows);

  const rawPackr = new Packr({ useRecords: false, moreTypes: true });
  const values: Array<[string, unknown]> = [
    ['number 42', 42],
    ['{ amount: 42 }', { amount: 42 }],
    [
      'medium object (17 values)',
      { id: 'acct-123', owner: { name: 'Ada', tags: ['a', 'b', 'c'] }, balance: 1234.5, history: [1, 2, 3, 4, 5, 6, 7, 8], open: true },
    ],
  ];
  const CALLS = 1_000_000;
  const time = (fn: () => unknown): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) fn();
    return Number(process.hrtime.bigint() - t0) / CALLS;
  };
  const valueRows = values.map(([name, value]) => {
    const raw = (): unknown => rawPackr.pack(value);
    const checked = (): unknown => DEFAULT_TYPE.encode(value);
    time(raw);
    time(checked);
    const rawNs = median(Array.from({ length: RUNS }, () => time(raw)));
    const checkedNs = median(Array.from({ length: RUNS }, () => time(checked)));
    return {
      value: name,
      'msgpackr pack ns': +rawNs.toFixed(1),
      'type.msgpack() encode ns': +checkedNs.toFixed(1),
      'walk overhead': `${(((checkedNs - rawNs) / rawNs) * 100).toFixed(0)}%`,
    };
  });
  console.log(`\ntype.msgpack() encode (walk + pack) vs msgpackr pack, ${CALLS} calls x ${RUNS} runs (median)`);
  console.table(valueRows);
}

main();
