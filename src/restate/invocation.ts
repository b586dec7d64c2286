/**
 * One weft invocation on Restate, without the SDK: what {@link ./endpoint.ts} journals and
 * applies. Kept apart so the mapping (state buffering, TTL expiry, delayed-message tokens, the
 * wire shapes) is tested without a server.
 *
 * ```
 *  handler start ─ ctx.date.now() (journaled) ─ load declared state + meta (ctx.get)
 *       │
 *       ▼  ctx.run('weft invocation')                    journaled: replays reuse its result
 *  runInvocation: weft's own InvocationContext over an Instance seeded from the loaded state;
 *                 reads are synchronous, writes/sends/timers/egress/reply are BUFFERED (Effects)
 *       │  the fn returned → EffectsRecord (bytes);  it threw → retried, then dead-lettered
 *       ▼
 *  planCommit: state puts/clears (+ values whose TTL passed), meta (write/call times, tokens)
 *       ▼
 *  endpoint applies: ctx.set/clear, genericSend (delay for sendAfter), ctx.cancel, egress sink
 *                    in ctx.run, the reply as the handler's result (or a send to a caller fn)
 * ```
 *
 * Values keep weft's encodings end to end: a declared state is stored under its own name as the
 * bytes its `type` encodes (`type.int()` as StateFun's int bytes, `type.json()` as JSON text...),
 * and messages carry their typename next to the payload bytes, so typed values round-trip.
 */
import { channel } from 'node:diagnostics_channel';
import { Packr } from 'msgpackr';
import type { Address } from '../core/address.js';
import { WeftError, describe } from '../core/errors.js';
import type { ValueType } from '../module/definition.js';
import { Effects, IMMUTABLE, InvocationContext, MessageImpl, type ContextHost } from '../shard/context.js';
import { E_PAYLOAD, E_TARGET_ID, E_TARGET_TYPE, E_TYPENAME, envelope, type Envelope } from '../contract/envelope.js';
import type { CompiledFunction, CompiledSpec, RuntimeModule } from '../module/runtime.js';
import { Instance, Slot } from '../state/instance.js';
import { isExpired } from '../core/ttl.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Object-state key of weft's bookkeeping (cannot clash: weft state names have no `:`). */
export const META_KEY = 'weft:meta';

/**
 * Per-object bookkeeping, stored under {@link META_KEY} only when there is something to keep:
 * `c` the time of the last completed invocation (functions with `expireAfterCall`), `w` each
 * value's write time (functions with a TTL), `t` pending delayed messages by cancellation token
 * as `[invocationId, dueTime]`.
 */
export interface Meta {
  c: number;
  w: Record<string, number>;
  t: Record<string, [invocationId: string, due: number]>;
}

export function emptyMeta(): Meta {
  return { c: 0, w: {}, t: {} };
}

export function encodeMeta(meta: Meta): Uint8Array | null {
  if (meta.c === 0 && Object.keys(meta.w).length === 0 && Object.keys(meta.t).length === 0) return null;
  return packr.pack(meta);
}

export function decodeMeta(bytes: Uint8Array | null): Meta {
  if (bytes === null || bytes.byteLength === 0) return emptyMeta();
  const m = packr.unpack(bytes) as Partial<Meta> | null;
  if (m === null || typeof m !== 'object') throw new WeftError('ERR_WEFT_PROTOCOL', `object state ${META_KEY} is not weft's bookkeeping record`);
  return { c: typeof m.c === 'number' ? m.c : 0, w: m.w ?? {}, t: m.t ?? {} };
}

/** A message as it travels to a weft virtual object: its typename, its bytes, who sent it. */
export interface WireMessage {
  readonly typename: string;
  readonly payload: Uint8Array;
  readonly caller: Address | null;
}

export function encodeWireMessage(m: WireMessage): Uint8Array {
  return packr.pack([m.typename, m.payload, m.caller?.type ?? null, m.caller?.id ?? null]);
}

export function decodeWireMessage(bytes: Uint8Array): WireMessage {
  let arr: unknown;
  try {
    arr = packr.unpack(bytes);
  } catch (cause) {
    throw new WeftError('ERR_WEFT_PROTOCOL', `a weft message on Restate must be a msgpack array [typename, payload, callerType, callerId]: ${(cause as Error).message}`, { cause });
  }
  const a = arr as unknown[];
  if (!Array.isArray(a) || a.length !== 4 || typeof a[0] !== 'string' || !(a[1] instanceof Uint8Array) || (a[2] !== null && typeof a[2] !== 'string')) {
    throw new WeftError('ERR_WEFT_PROTOCOL', `a weft message on Restate must be a msgpack array [typename, payload, callerType, callerId] (got ${describe(arr)})`);
  }
  return { typename: a[0], payload: a[1], caller: a[2] === null ? null : { type: a[2], id: String(a[3]) } };
}

/** A handler's result: `[typename, payload]` of `ctx.reply`, or nothing (empty bytes). */
export function encodeReply(reply: readonly [string, Uint8Array] | null): Uint8Array {
  return reply === null ? new Uint8Array(0) : packr.pack([reply[0], reply[1]]);
}

export function decodeReply(bytes: Uint8Array): [typename: string, payload: Uint8Array] | null {
  if (bytes.byteLength === 0) return null;
  const a = packr.unpack(bytes) as unknown[];
  if (!Array.isArray(a) || typeof a[0] !== 'string' || !(a[1] instanceof Uint8Array)) {
    throw new WeftError('ERR_WEFT_PROTOCOL', `a weft reply from Restate must be a msgpack array [typename, payload] (got ${describe(a)})`);
  }
  return [a[0], a[1]];
}

/** The buffered effects of one successful invocation, as journaled (see {@link encodeEffects}). */
export interface EffectsRecord {
  /** State writes: `[name, bytes]`, or `[name, null]` to delete. */
  readonly writes: Array<[name: string, bytes: Uint8Array | null]>;
  readonly sends: Array<[type: string, id: string, typename: string, payload: Uint8Array]>;
  /** In call order: a delayed send (`type` set) or a cancellation (`type` null). */
  readonly timers: Array<[delayMs: number, type: string | null, id: string, typename: string, payload: Uint8Array, token: string | null]>;
  readonly egress: Array<[name: string, typename: string, payload: Uint8Array]>;
  readonly reply: [typename: string, payload: Uint8Array] | null;
}

export function encodeEffects(r: EffectsRecord): Uint8Array {
  return packr.pack([r.writes, r.sends, r.timers, r.egress, r.reply]);
}

export function decodeEffects(bytes: Uint8Array): EffectsRecord {
  const [writes, sends, timers, egress, reply] = packr.unpack(bytes) as [
    EffectsRecord['writes'],
    EffectsRecord['sends'],
    EffectsRecord['timers'],
    EffectsRecord['egress'],
    EffectsRecord['reply'],
  ];
  return { writes, sends, timers, egress, reply };
}

/** An object's stored state as the handler loaded it: declared values by name, and the meta. */
export interface LoadedState {
  readonly values: ReadonlyMap<string, Uint8Array>;
  readonly meta: Meta;
}

export interface InvocationLimits {
  readonly maxMessageBytes: number;
  readonly maxStateValueBytes: number;
}

/**
 * Runs one weft invocation against loaded state at the (journaled) time `now`, with weft's own
 * context: validation, encodings and errors are the engine's. Resolves with the buffered effects;
 * rejects with what the function threw (then nothing of it is applied).
 */
export async function runInvocation(
  runtime: RuntimeModule,
  fn: CompiledFunction,
  self: Address,
  loaded: LoadedState,
  msg: WireMessage,
  now: number,
  limits: InvocationLimits,
  compute: (task: string, input: unknown) => Promise<unknown>,
): Promise<EffectsRecord> {
  const inst = new Instance(`${self.type}\u0000${self.id}`, self.type, self.id, 0);
  inst.calledAt = loaded.meta.c;
  for (const spec of fn.specs) {
    const bytes = loaded.values.get(spec.name);
    if (bytes !== undefined) inst.slots.set(spec.name, new Slot(bytes, loaded.meta.w[spec.name] ?? 0, undefined, false));
  }
  const host: ContextHost = {
    module: runtime,
    maxMessageBytes: limits.maxMessageBytes,
    maxStateValueBytes: limits.maxStateValueBytes,
    hasPendingToken: (_sender, token) => isPendingToken(loaded.meta, token, now),
    compute,
    // Restate runs invocations of different objects concurrently on one endpoint, so a late call
    // cannot be told apart from a running one's: it is reported, never thrown.
    inUserCode: false,
    lateCall: reportLateCall,
  };
  const fx = new Effects();
  const env: Envelope = envelope(self.type, self.id, msg.caller?.type ?? null, msg.caller?.id ?? null, msg.typename, msg.payload);
  const ctx = new InvocationContext(host, fn, inst, env, fx, now);
  const message = new MessageImpl(msg.typename, msg.payload, runtime);
  try {
    await (fn.fn as (c: unknown, m: unknown) => unknown)(ctx, message);
  } finally {
    ctx.end();
  }
  const writes: EffectsRecord['writes'] = [];
  for (let i = 0; i < fx.nWrites; i += 3) {
    const spec = fx.writes[i] as CompiledSpec;
    const slot = fx.writes[i + 1] as Slot | null | typeof IMMUTABLE;
    writes.push([spec.name, slot === null ? null : slot === IMMUTABLE ? spec.encode(fx.writes[i + 2]) : slot.bytes.slice()]);
  }
  const sends: EffectsRecord['sends'] = [];
  for (let i = 0; i < fx.nSends; i++) {
    const e = fx.sends[i] as Envelope;
    sends.push([e[E_TARGET_TYPE], e[E_TARGET_ID], e[E_TYPENAME], e[E_PAYLOAD].slice()]);
  }
  const timers: EffectsRecord['timers'] = (fx.timerOps ?? []).map((op) =>
    op.env === undefined
      ? [0, null, '', '', new Uint8Array(0), op.token]
      : [op.delayMs, op.env[E_TARGET_TYPE], op.env[E_TARGET_ID], op.env[E_TYPENAME], op.env[E_PAYLOAD], op.token],
  );
  // A copy: the payload of a one-byte reply is a shared array (Effects.replyPayload).
  return { writes, sends, timers, egress: fx.egress ?? [], reply: fx.replyType === null ? null : [fx.replyType, fx.replyPayload.slice()] };
}

/** A token names a pending delayed message while its send is recorded and not yet due. */
export function isPendingToken(meta: Meta, token: string, now: number): boolean {
  const t = meta.t[token];
  return t !== undefined && t[1] > now;
}

/** What to store at the end of a successful invocation. */
export interface CommitPlan {
  readonly puts: Array<[name: string, bytes: Uint8Array]>;
  readonly clears: string[];
  /** The new meta, without its token table (the endpoint adds tokens as it schedules). */
  readonly meta: Meta;
}

/**
 * The state changes of an invocation at time `now`: its writes, plus the deletion of values
 * whose TTL has passed (Restate has no TTL: expiry is lazy, by the stored write and call times,
 * exactly as weft's `isExpired` decides — a value read as expired is never seen again, even when
 * a later call would otherwise have refreshed it). Tokens of delayed messages already due are
 * forgotten (they fired: cancelling them is a no-op, as in weft).
 */
export function planCommit(fn: CompiledFunction, loaded: LoadedState, writes: EffectsRecord['writes'], now: number): CommitPlan {
  const meta: Meta = { c: loaded.meta.c, w: { ...loaded.meta.w }, t: {} };
  for (const [token, entry] of Object.entries(loaded.meta.t)) if (entry[1] > now) meta.t[token] = entry;
  const written = new Map(writes);
  const puts: CommitPlan['puts'] = [];
  const clears: string[] = [];
  for (const spec of fn.specs) {
    if (written.has(spec.name)) {
      const bytes = written.get(spec.name) as Uint8Array | null;
      if (bytes === null) {
        clears.push(spec.name);
        delete meta.w[spec.name];
      } else {
        puts.push([spec.name, bytes]);
        if (spec.expireAfterWrite > 0 || spec.expireAfterCall > 0) meta.w[spec.name] = now;
      }
      continue;
    }
    if (!loaded.values.has(spec.name)) continue;
    if (isExpired(spec, loaded.meta.w[spec.name] ?? 0, loaded.meta.c, now)) {
      clears.push(spec.name);
      delete meta.w[spec.name];
    }
  }
  if (fn.hasCallTtl) meta.c = now;
  return { puts, clears, meta };
}

/** Decodes a reply or egress payload with the module's types (raw bytes for a type it does not know). */
export function decodeValue(runtime: RuntimeModule, typename: string, payload: Uint8Array): unknown {
  const t: ValueType<unknown> | undefined = runtime.typeOf(typename);
  return t === undefined ? payload : t.decode(payload);
}

const lateContext = channel('weft:late-context');
let lateCalls = 0;

/** A `ctx` method called after its invocation ended: no effect, reported as the engine does. */
function reportLateCall(type: string, id: string, method: string): void {
  if (lateCalls++ === 0) {
    process.emitWarning(`weft: ctx.${method}() of ${type}/${id} was called after its invocation ended (did you forget to await?); it had no effect. Later ones are published on diagnostics channel weft:late-context.`);
  }
  if (lateContext.hasSubscribers) lateContext.publish({ address: { type, id }, method });
}
