/**
 * Listing the instances of a function type from a COMMITTED checkpoint: `weft.instances`,
 * `weft inspect --list` and the test harness share the rules here.
 *
 * ## What "committed" means, and how one consistent view is read
 * A shard's committed state at epoch E is its partition base (epochs folded so far) with the
 * PENDING state changes of every epoch <= E applied on top, in epoch order (recovery computes the
 * same). PENDING epochs > E were written but not committed: left out. A fold that is half done
 * (some chunks of state records written to the base, its PENDING entries not yet removed) changes
 * nothing: the records it wrote are the latest of the epochs it folds, which are applied on top
 * anyway. So one LMDB read transaction per partition ({@link PartitionSnapshot}) plus E gives the
 * exact state of E — provided no shard had folded an epoch > E when its snapshot began. Shards
 * fold an epoch only after the coordinator committed it: taking E and every shard's snapshot
 * in one synchronous step on the main thread (where commits are processed) guarantees that, and
 * another process (`weft inspect`) reads the committed epoch before and after taking the
 * snapshots and retries when it moved. Every shard's view is then from the same epoch.
 *
 * ## Order and memory
 * Ids come in the order of their stored keys, which is global across shards: each key group's
 * ids are a sorted range of its partition (`[kg, type, id]`), and a k-way merge over one cursor
 * per key group (a binary heap) yields them in order. Each cursor holds a chunk of ids (at most
 * 256, and 8192 ids over all key groups together, fewer with a small `limit`). The committed
 * changes not yet folded into the bases (PENDING values: at most about `cacheSize` per shard, see
 * participant.ts) are merged in a window at a time: the next 4096 ids (or `limit`) in order, found
 * by one pass over those values that decodes only the listed type's entries. Values are read with
 * their ids, up to 8 MiB ahead over all cursors (at least one value each). So memory does not grow with the number of instances listed, nor with the number
 * of unfolded changes.
 *
 * The key order is that of LMDB's keys as lmdb-js encodes them (`ordered-binary`): UTF-8 byte
 * order, i.e. Unicode code point order — except that ids of 64 or more UTF-16 units holding the
 * characters U+0000 to U+0004 are encoded differently from shorter ones. {@link compareIds}
 * reproduces that order exactly, so paging with `after` never skips nor repeats an id. (Such ids
 * do not survive lmdb-js 3.5.6's range reads at all — it decodes `"y".repeat(70) + "\u0001"` as
 * `"y".repeat(70)` — so they cannot be listed correctly; every other well-formed id can.)
 */
import { WeftError, describe } from '../core/errors.js';
import { LIMITS, isValidTypename, isWellFormed } from '../core/address.js';
import type { RuntimeModule } from '../module/runtime.js';
import { PendingKind, decodeStates } from './checkpoint-format.js';
import { Unpackr } from 'msgpackr';
import { decodeRecord, type InstanceRecord } from './instance.js';
import { isLive } from '../core/ttl.js';
import type { PartitionSnapshot } from './partition.js';

/** Options of `weft.instances`. */
export interface InstancesOptions {
  /** Only ids starting with this string. */
  prefix?: string;
  /** Only ids after this one in listing order (to resume where a page ended). */
  after?: string;
  /** At most this many (a positive integer). Default: all. */
  limit?: number;
  /** Yield `{ id, state }` (state as `weft.query` returns it) instead of ids. Default false. */
  withState?: boolean;
}

/** An instance with its committed state, from `weft.instances(type, { withState: true })`. */
export interface InstanceEntry {
  id: string;
  state: Record<string, unknown>;
}

export interface ResolvedInstancesOptions {
  readonly prefix: string;
  readonly after: string | undefined;
  readonly limit: number;
  readonly withState: boolean;
}

const OPTION_KEYS = new Set(['prefix', 'after', 'limit', 'withState']);

/**
 * Validates the arguments of `instances(type, options)`: ERR_WEFT_INVALID_ARG for a malformed
 * type or option (naming it), ERR_WEFT_UNKNOWN_FUNCTION for a type the module does not define.
 */
export function resolveInstancesArgs(module: RuntimeModule, type: unknown, options: unknown, what: string): ResolvedInstancesOptions {
  if (!isValidTypename(type)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} type must be a function typename "<namespace>/<name>" (got ${describe(type)})`);
  }
  if (!module.isKnownFunction(type)) {
    throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `${what}: no function of type ${describe(type)} is defined`);
  }
  if (options === undefined) return { prefix: '', after: undefined, limit: Number.POSITIVE_INFINITY, withState: false };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} options must be an object (got ${describe(options)})`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} options.${key} is not an option (options: prefix, after, limit, withState)`);
  }
  const o = options as InstancesOptions;
  const idLike = (name: 'prefix' | 'after', v: unknown, allowEmpty: boolean): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || (!allowEmpty && v.length === 0) || !isWellFormed(v) || Buffer.byteLength(v, 'utf8') > LIMITS.maxIdBytes) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `${what} options.${name} must be a ${allowEmpty ? '' : 'non-empty '}well-formed string of at most ${LIMITS.maxIdBytes} UTF-8 bytes (got ${describe(v)})`,
      );
    }
    return v;
  };
  const prefix = idLike('prefix', o.prefix, true) ?? '';
  const after = idLike('after', o.after, false);
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  if (limit !== Number.POSITIVE_INFINITY && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} options.limit must be a positive integer (got ${describe(o.limit)})`);
  }
  const withState = o.withState ?? false;
  if (typeof withState !== 'boolean') throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} options.withState must be a boolean (got ${describe(o.withState)})`);
  return { prefix, after, limit, withState };
}

// ------------------------------------------------------------------------------------------------
// Key order
// ------------------------------------------------------------------------------------------------

const SURROGATE = /[\ud800-\udfff]/;
const LOW = /[\u0000-\u0004]/;
/** Strings of at least this many UTF-16 units are stored as plain UTF-8 (ordered-binary). */
const LONG = 0x40;

/** Whether JS's code-unit comparison orders `s` as its stored key does (true for nearly every id). */
function plainOrder(s: string): boolean {
  return !SURROGATE.test(s) && !(s.length >= LONG && LOW.test(s));
}

/** The bytes ordered-binary stores for string `s` as the last element of a key. */
function keyBytes(s: string): Buffer {
  const head = s.charCodeAt(0) >= 28 ? [] : [27];
  if (s.length >= LONG) return Buffer.concat([Buffer.from(head), Buffer.from(s, 'utf8')]);
  const out: number[] = head;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (c <= 4) out.push(4, c);
    else out.push(...Buffer.from(ch, 'utf8'));
  }
  return Buffer.from(out);
}

/** Compares two ids in stored-key order (see the module comment). */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  if (plainOrder(a) && plainOrder(b)) return a < b ? -1 : 1;
  return Buffer.compare(keyBytes(a), keyBytes(b));
}

// ------------------------------------------------------------------------------------------------
// Which records are live, and their state as weft.query shows it
// ------------------------------------------------------------------------------------------------

/**
 * The state of a stored record as `weft.query` returns it — declared (or, for remote functions,
 * typed) values that have not expired at `now` — or `undefined` when none is left (the instance
 * then does not exist). With `decode` false the values are not decoded (an empty object stands
 * for "exists").
 */
export type StateReader = (type: string, record: Uint8Array, decode: boolean) => Record<string, unknown> | undefined;

/**
 * The engine's reader: a local function's undeclared or expired values are dropped, as
 * `weft.query` drops them. A remote (StateFun) function's specs — and so its TTLs — are learned by
 * the shards at run time: its values are listed as stored and decoded by their typename.
 */
export function moduleStateReader(module: RuntimeModule, now: number): StateReader {
  return (type, bytes, decode) => {
    // The record as stored (instance.ts: [version, calledAt, (applied idempotency keys: v3), name,
    // bytes, writtenAt, (typename), ...]), read without building an Instance: a listing reads one
    // per id. Idempotency keys are not state: an instance holding only keys is not listed.
    const arr = recordUnpackr.unpack(bytes) as unknown[];
    const stride = Array.isArray(arr) ? (arr[0] === 1 ? 3 : arr[0] === 2 || arr[0] === 3 ? 4 : 0) : 0;
    const first = Array.isArray(arr) && arr[0] === 3 ? 3 : 2;
    if (stride === 0 || (arr.length - first) % stride !== 0) {
      const record: InstanceRecord = decodeRecord(bytes); // throws its ERR_WEFT_DATA_DIR
      return record.slots.length === 0 ? undefined : {};
    }
    const calledAt = arr[1] as number;
    const fn = module.functions.get(type);
    const out: Record<string, unknown> = {};
    let live = 0;
    for (let i = first; i < arr.length; i += stride) {
      const name = arr[i] as string;
      const value = arr[i + 1] as Uint8Array;
      if (fn !== undefined) {
        const spec = fn.specByName.get(name);
        if (!isLive(spec, arr[i + 2] as number, calledAt, now)) continue;
        live++;
        if (decode) out[name] = spec.type.decode(new Uint8Array(value));
      } else {
        live++;
        if (decode) {
          const typename = stride === 4 ? (arr[i + 3] as string | null) : null;
          const t = typename === null ? undefined : module.typeOf(typename);
          out[name] = t === undefined ? new Uint8Array(value) : t.decode(new Uint8Array(value));
        }
      }
    }
    return live === 0 ? undefined : out;
  };
}

const recordUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

// ------------------------------------------------------------------------------------------------
// The merge
// ------------------------------------------------------------------------------------------------

/** A committed view of every shard: one snapshot per shard, all of epoch `committedEpoch`. */
export interface CommittedView {
  /** Indexed by shard; `undefined` for a shard without a partition (it holds nothing). */
  readonly snapshots: ReadonlyArray<PartitionSnapshot | undefined>;
  readonly committedEpoch: number;
  readonly keyGroups: number;
  /** The shard that owns key group `kg`. */
  shardOf(kg: number): number;
}

/** A listed instance: its id and (with `withState`) its state. */
export interface Listed {
  id: string;
  state: Record<string, unknown> | undefined;
}

/** Ids read per key-group cursor and chunk, all cursors together (a memory bound). */
const MERGE_BUDGET = 8192;
const MAX_CHUNK = 256;
const MIN_CHUNK = 16;
/** Value bytes read ahead, all cursors together (a cursor reads at least one value, and MIN_CHUNK_BYTES). */
const MERGE_BYTES = 8 * 1024 * 1024;
const MIN_CHUNK_BYTES = 16 * 1024;

class KgCursor {
  ids: string[] = [];
  data: Uint8Array = new Uint8Array(0);
  offsets: Uint32Array = new Uint32Array(1);
  pos = 0;
  /** The type's range in this key group has no more ids after `ids`. */
  exhausted = false;
  headPlain = true;

  constructor(
    readonly kg: number,
    readonly snap: PartitionSnapshot,
    /** Ids read by the next fill; doubles with each fill up to `maxChunk`. */
    public chunk: number,
    readonly maxChunk: number,
    readonly maxBytes: number,
  ) {}

  get head(): string {
    return this.ids[this.pos] as string;
  }

  get headValue(): Uint8Array {
    return this.data.subarray(this.offsets[this.pos], this.offsets[this.pos + 1]);
  }

  /** Reads the next chunk after `from`; false when the key group has no more ids. */
  fill(type: string, from: string | undefined, exclusive: boolean): boolean {
    const { ids, data, offsets, more } = this.snap.stateEntries(this.kg, type, from, exclusive, this.chunk, this.maxBytes);
    this.chunk = Math.min(this.maxChunk, this.chunk * 2);
    this.ids = ids;
    this.data = data;
    this.offsets = offsets;
    this.pos = 0;
    this.exhausted = !more;
    if (ids.length === 0) return false;
    this.headPlain = plainOrder(this.head);
    return true;
  }

  /** Moves to the next id; false when the key group has no more ids. */
  advance(type: string): boolean {
    const last = this.head;
    this.pos++;
    if (this.pos < this.ids.length) {
      this.headPlain = plainOrder(this.head);
      return true;
    }
    return !this.exhausted && this.fill(type, last, true);
  }
}

function cursorLess(a: KgCursor, b: KgCursor): boolean {
  const x = a.head;
  const y = b.head;
  if (a.headPlain && b.headPlain) return x < y;
  return compareIds(x, y) < 0;
}

/** A binary min-heap of cursors by head id. */
class CursorHeap {
  readonly #items: KgCursor[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): KgCursor | undefined {
    return this.#items[0];
  }

  push(c: KgCursor): void {
    const items = this.#items;
    items.push(c);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!cursorLess(items[i] as KgCursor, items[parent] as KgCursor)) break;
      [items[i], items[parent]] = [items[parent] as KgCursor, items[i] as KgCursor];
      i = parent;
    }
  }

  /** The top's head moved on (or the top is gone when `remove`): restore the heap. */
  fixTop(remove: boolean): void {
    const items = this.#items;
    if (remove) {
      const last = items.pop() as KgCursor;
      if (items.length === 0) return;
      items[0] = last;
    }
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && cursorLess(items[l] as KgCursor, items[m] as KgCursor)) m = l;
      if (r < n && cursorLess(items[r] as KgCursor, items[m] as KgCursor)) m = r;
      if (m === i) return;
      [items[i], items[m]] = [items[m] as KgCursor, items[i] as KgCursor];
      i = m;
    }
  }
}

/**
 * The instances of `type` in `view`, in stored-key order, filtered by `opts`: a lazy generator
 * (see the module comment for its memory). `read` decides which records are live and gives their
 * state. Throws ERR_WEFT_CLOSED once a snapshot is released.
 */
export function* listCommitted(view: CommittedView, type: string, opts: ResolvedInstancesOptions, read: StateReader): Generator<Listed, void, undefined> {
  const { prefix, after, limit, withState } = opts;
  const matches = (id: string): boolean => id.startsWith(prefix) && (after === undefined || compareIds(id, after) > 0);

  // Committed changes not yet folded into the bases, merged in window by window.
  const overlay = new Overlay(view, type, matches, Math.max(MIN_WINDOW, Math.min(MAX_WINDOW, limit)));

  // One cursor per key group, positioned at the first candidate id.
  // Ids with a prefix free of U+0000..U+0004 are one contiguous key range (see compareIds); a
  // prefix with such characters is filtered over the type's whole range instead.
  const contiguous = !LOW.test(prefix);
  let from: string | undefined;
  let exclusive = false;
  if (after !== undefined && (!contiguous || compareIds(after, prefix) >= 0)) {
    from = after;
    exclusive = true;
  } else if (contiguous && prefix.length > 0) from = prefix;
  const maxChunk = Math.max(MIN_CHUNK, Math.min(MAX_CHUNK, Math.floor(MERGE_BUDGET / view.keyGroups), limit === Number.POSITIVE_INFINITY ? MAX_CHUNK : limit));
  // A page (a small limit) takes a few ids from each key group: start small, double on refills.
  const firstChunk = Math.min(maxChunk, Math.max(4, Math.ceil((2 * Math.min(limit, MERGE_BUDGET)) / view.keyGroups)));
  const heap = new CursorHeap();
  for (let kg = 0; kg < view.keyGroups; kg++) {
    const snap = view.snapshots[view.shardOf(kg)];
    if (snap === undefined) continue;
    const cursor = new KgCursor(kg, snap, firstChunk, maxChunk, Math.max(MIN_CHUNK_BYTES, Math.floor(MERGE_BYTES / view.keyGroups)));
    if (cursor.fill(type, from, exclusive)) heap.push(cursor);
  }

  let emitted = 0;
  const emit = (id: string, state: Record<string, unknown> | undefined): Listed | undefined => {
    if (state === undefined) return undefined;
    return { id, state: withState ? state : undefined };
  };
  while (emitted < limit) {
    const top = heap.peek();
    const nextOverlay = overlay.peek();
    if (top === undefined && nextOverlay === undefined) return;
    let out: Listed | undefined;
    const c = top === undefined ? 1 : nextOverlay === undefined ? -1 : compareIds(top.head, nextOverlay);
    if (c < 0) {
      const t = top as KgCursor;
      const id = t.head;
      if (!id.startsWith(prefix)) {
        // Past the prefix's range in this key group (or, for a non-contiguous prefix, skip it).
        if (contiguous) heap.fixTop(true);
        else heap.fixTop(!t.advance(type));
        continue;
      }
      out = emit(id, read(type, t.headValue, withState));
      heap.fixTop(!t.advance(type));
    } else {
      const change = overlay.take();
      // The same id in a base: the overlay's record is the newer one.
      if (c === 0) {
        const t = top as KgCursor;
        heap.fixTop(!t.advance(type));
      }
      if (change.record !== null) out = emit(change.id, read(type, change.record, withState));
    }
    if (out !== undefined) {
      emitted++;
      yield out;
    }
  }
}

/** Overlay ids held at once (a window); a listing with a smaller limit holds that many. */
const MAX_WINDOW = 4096;
const MIN_WINDOW = 64;

interface Change {
  id: string;
  kg: number;
  record: Uint8Array | null;
}

/**
 * The state changes of the committed epochs still PENDING (not yet folded into the bases), for
 * one type, in id order, the latest per id — delivered a window at a time: each window is the
 * `size` smallest matching ids after the previous window, found by one pass over the PENDING
 * values (a bounded max-heap), so memory stays at one window however many changes there are.
 */
class Overlay {
  readonly #view: CommittedView;
  readonly #type: string;
  readonly #typeBytes: Buffer;
  readonly #matches: (id: string) => boolean;
  readonly #size: number;
  #window: Change[] = [];
  #pos = 0;
  /** The last id of a full window (more may follow), or undefined when the last window is loaded. */
  #windowEnd: string | undefined;
  #loaded = false;

  constructor(view: CommittedView, type: string, matches: (id: string) => boolean, size: number) {
    this.#view = view;
    this.#type = type;
    this.#typeBytes = Buffer.from(type, 'utf8');
    this.#matches = matches;
    this.#size = size;
  }

  peek(): string | undefined {
    if (this.#pos === this.#window.length) {
      if (this.#loaded && this.#windowEnd === undefined) return undefined;
      this.#load(this.#windowEnd);
      if (this.#window.length === 0) return undefined;
    }
    return (this.#window[this.#pos] as Change).id;
  }

  /** The head change (call {@link peek} first). */
  take(): Change {
    return this.#window[this.#pos++] as Change;
  }

  #load(from: string | undefined): void {
    this.#loaded = true;
    // A max-heap of the `size` smallest ids seen, with the latest record of each.
    const heap: Change[] = [];
    const index = new Map<string, Change>();
    let full = false;
    const offer = (kg: number, id: string, record: Uint8Array | null): void => {
      const known = index.get(id);
      if (known !== undefined) {
        known.record = record; // epochs are read in order: the later one wins
        return;
      }
      if ((from !== undefined && compareIds(id, from) <= 0) || !this.#matches(id)) return;
      if (heap.length === this.#size) {
        full = true;
        if (compareIds(id, (heap[0] as Change).id) >= 0) return;
        index.delete((heap[0] as Change).id);
        heap[0] = { id, kg, record };
        index.set(id, heap[0]);
        siftDown(heap, 0);
        return;
      }
      const c: Change = { id, kg, record };
      heap.push(c);
      index.set(id, c);
      siftUp(heap, heap.length - 1);
    };
    for (const snap of this.#view.snapshots) {
      if (snap === undefined) continue;
      for (const epoch of snap.pendingEpochs()) {
        if (epoch > this.#view.committedEpoch) break;
        for (const { value } of snap.pendingEntries(epoch, [PendingKind.States])) scanStates(value, this.#typeBytes, this.#type, offer);
      }
    }
    heap.sort((a, b) => compareIds(a.id, b.id));
    // Copied out: as views, the records would keep every PENDING value read by this pass alive.
    for (const c of heap) if (c.record !== null) c.record = c.record.slice();
    this.#window = heap;
    this.#pos = 0;
    this.#windowEnd = full ? heap[heap.length - 1]?.id : undefined;
  }
}

function siftUp(heap: Change[], i: number): void {
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (compareIds((heap[i] as Change).id, (heap[parent] as Change).id) <= 0) return;
    [heap[i], heap[parent]] = [heap[parent] as Change, heap[i] as Change];
    i = parent;
  }
}

function siftDown(heap: Change[], i: number): void {
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < n && compareIds((heap[l] as Change).id, (heap[m] as Change).id) > 0) m = l;
    if (r < n && compareIds((heap[r] as Change).id, (heap[m] as Change).id) > 0) m = r;
    if (m === i) return;
    [heap[i], heap[m]] = [heap[m] as Change, heap[i] as Change];
    i = m;
  }
}

/**
 * Walks an epoch's state changes (checkpoint-format.ts StatesCapture: a msgpack array of
 * `[kg, type, id, record | null]`) and calls `onChange` for those of `type`, without decoding the
 * others: the id is decoded only when the type matches, the record is a view of `bytes`. A value
 * of another shape is decoded in full instead.
 */
function scanStates(bytes: Uint8Array, typeBytes: Buffer, type: string, onChange: (kg: number, id: string, record: Uint8Array | null) => void): void {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = { pos: 0 };
  const fallback = (): void => {
    for (const [kg, t, id, record] of decodeStates(bytes)) if (t === type) onChange(kg, id, record ?? null);
  };
  const n = arrayHeader(buf, r);
  if (n < 0) return fallback();
  const found: Array<[number, string, Uint8Array | null]> = [];
  for (let i = 0; i < n; i++) {
    if (arrayHeader(buf, r) !== 4) return fallback();
    const kg = uint(buf, r);
    const t = str(buf, r);
    const id = str(buf, r);
    if (kg < 0 || t === undefined || id === undefined) return fallback();
    let record: Uint8Array | null;
    const b = buf[r.pos] as number;
    if (b === 0xc0) {
      record = null;
      r.pos++;
    } else {
      const len = b === 0xc4 ? buf.readUInt8(r.pos + 1) : b === 0xc5 ? buf.readUInt16BE(r.pos + 1) : b === 0xc6 ? buf.readUInt32BE(r.pos + 1) : -1;
      if (len < 0) return fallback();
      const head = b === 0xc4 ? 2 : b === 0xc5 ? 3 : 5;
      record = buf.subarray(r.pos + head, r.pos + head + len);
      r.pos += head + len;
    }
    if (t[1] - t[0] === typeBytes.length && buf.compare(typeBytes, 0, typeBytes.length, t[0], t[1]) === 0) {
      found.push([kg, buf.toString('utf8', id[0], id[1]), record]);
    }
  }
  if (r.pos !== buf.length) return fallback();
  for (const [kg, id, record] of found) onChange(kg, id, record);
}

function arrayHeader(buf: Buffer, r: { pos: number }): number {
  const b = buf[r.pos];
  if (b === undefined) return -1;
  if ((b & 0xf0) === 0x90) {
    r.pos += 1;
    return b & 0x0f;
  }
  if (b === 0xdc) {
    r.pos += 3;
    return buf.readUInt16BE(r.pos - 2);
  }
  if (b === 0xdd) {
    r.pos += 5;
    return buf.readUInt32BE(r.pos - 4);
  }
  return -1;
}

function uint(buf: Buffer, r: { pos: number }): number {
  const b = buf[r.pos];
  if (b === undefined) return -1;
  if (b < 0x80) {
    r.pos += 1;
    return b;
  }
  if (b === 0xcc) {
    r.pos += 2;
    return buf.readUInt8(r.pos - 1);
  }
  if (b === 0xcd) {
    r.pos += 3;
    return buf.readUInt16BE(r.pos - 2);
  }
  if (b === 0xce) {
    r.pos += 5;
    return buf.readUInt32BE(r.pos - 4);
  }
  return -1;
}

/** A string's byte range `[start, end)`, or undefined when the next value is not a string. */
function str(buf: Buffer, r: { pos: number }): [number, number] | undefined {
  const b = buf[r.pos];
  if (b === undefined) return undefined;
  let len: number;
  let head: number;
  if ((b & 0xe0) === 0xa0) {
    len = b & 0x1f;
    head = 1;
  } else if (b === 0xd9) {
    len = buf.readUInt8(r.pos + 1);
    head = 2;
  } else if (b === 0xda) {
    len = buf.readUInt16BE(r.pos + 1);
    head = 3;
  } else if (b === 0xdb) {
    len = buf.readUInt32BE(r.pos + 1);
    head = 5;
  } else return undefined;
  const start = r.pos + head;
  r.pos = start + len;
  if (r.pos > buf.length) return undefined;
  return [start, r.pos];
}
