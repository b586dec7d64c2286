/**
 * The invocation context (`ctx`) and the message (`msg`) a function receives.
 *
 * Every effect is BUFFERED in an {@link Effects} record and applied by the dispatcher when the
 * function returns (or its promise resolves); if it throws, the record is dropped and nothing
 * happened. This is what makes an invocation atomic, and what lets a checkpoint treat "the
 * message of an invocation still running" as simply "a message still in the mailbox".
 *
 * Arguments are validated and values encoded AT THE CALL, so a bad call throws inside the user's
 * function (where the stack points at it) and the stored bytes are a copy the caller can no
 * longer mutate.
 */
import type { Address } from '../core/address.js';
import { checkTarget, encodeMessage, encodeSharedPayload, valueType } from '../module/validation.js';
import { WeftError, describe } from '../core/errors.js';
import type { ValueType } from '../module/definition.js';
import { Slot, type Instance } from '../state/instance.js';
import { isExpired } from '../core/ttl.js';
import { envelope, type Envelope } from '../contract/envelope.js';
import type { CompiledFunction, CompiledSpec, RuntimeModule, StateAccess } from '../module/runtime.js';

/** What the context needs from the dispatcher that runs it. */
export interface ContextHost {
  readonly module: RuntimeModule;
  readonly maxMessageBytes: number;
  readonly maxStateValueBytes: number;
  hasPendingToken(senderKey: string, token: string): boolean;
  compute(task: string, input: unknown): Promise<unknown>;
  /** True while the host runs a function synchronously (a late call there can be thrown). */
  readonly inUserCode: boolean;
  /** Reports a context method called after its invocation ended. */
  lateCall(type: string, id: string, method: string): void;
}

export interface DelayedOp {
  /** `undefined` for a cancellation */
  env: Envelope | undefined;
  delayMs: number;
  token: string | null;
}

/**
 * State writes of one invocation, three entries per written name:
 * `[spec, slot, value, spec, slot, value, ...]` where `slot` is a new {@link Slot}, `null` to
 * delete, or {@link IMMUTABLE} when the new value is an immutable one kept in `value` (no Slot is
 * made for it: the instance's slot takes it in place). A function writes a few names, so a scan
 * (pointer compares of compiled specs) beats allocating and hashing into a Map per invocation.
 * Only `Effects.nWrites` entries are live: the array is reused (see {@link Effects.reset}).
 */
export type StateWrites = unknown[];

/** Marks a write whose immutable value sits in the entry after it. */
export const IMMUTABLE: unique symbol = Symbol('weft.immutable-write');

/** Index of `spec`'s entry in the first `n` entries of `w`, or -1. */
export function writeIndex(w: StateWrites, n: number, spec: CompiledSpec): number {
  for (let i = 0; i < n; i += 3) if (w[i] === spec) return i;
  return -1;
}

/** {@link Effects.replyPayload} while there is no reply. */
const NO_REPLY = new Uint8Array(0);

/**
 * The buffered effects of one invocation, applied together at its end. The dispatcher reuses
 * them for later invocations once applied (or dropped): an ended context never reads them again.
 */
export class Effects {
  /** See {@link StateWrites}; live entries are `writes[0..nWrites)`. */
  readonly writes: StateWrites = [];
  nWrites = 0;
  /** Messages sent, in order; live entries are `sends[0..nSends)` (the array is reused). */
  readonly sends: Envelope[] = [];
  nSends = 0;
  /** sendAfter and cancelDelayed, in call order (a cancel may free a token a later send reuses) */
  timerOps: DelayedOp[] | null = null;
  egress: Array<[name: string, typename: string, payload: Uint8Array]> | null = null;
  /**
   * `ctx.reply`'s typename (null: no reply) and payload. Two fields, not a tuple per reply; the
   * payload of a one-byte value is a SHARED array (see `sharedOneBytePayload`): whoever keeps it
   * or hands it to user code copies it first (the frame a reply is encoded into, Dispatcher.route,
   * the idempotency record).
   */
  replyType: string | null = null;
  replyPayload: Uint8Array = NO_REPLY;
  /** token → pending after this invocation's own timer ops so far */
  tokens: Map<string, boolean> | null = null;

  /** Forgets everything, keeping the writes array's memory (its stale entries are cleared). */
  reset(): void {
    const w = this.writes;
    for (let i = 0; i < this.nWrites; i++) w[i] = undefined;
    this.nWrites = 0;
    const sends = this.sends;
    for (let i = 0; i < this.nSends; i++) sends[i] = undefined as unknown as Envelope;
    this.nSends = 0;
    this.timerOps = null;
    this.egress = null;
    this.replyType = null;
    this.replyPayload = NO_REPLY;
    this.tokens = null;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

const MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000;
const MAX_TOKEN_LENGTH = 1024;

function frozenAddress(type: string, id: string): Address {
  return Object.freeze({ type, id });
}

export class MessageImpl {
  readonly typename: string;
  readonly #payload: Uint8Array;
  readonly #module: RuntimeModule;
  #value: unknown;
  #decoded = false;

  constructor(typename: string, payload: Uint8Array, module: RuntimeModule) {
    this.typename = typename;
    this.#payload = payload;
    this.#module = module;
  }

  /** The decoded value, by the type its typename names; raw bytes when the module does not know it. */
  get value(): unknown {
    if (!this.#decoded) {
      const t = this.#module.typeOf(this.typename);
      this.#value = t === undefined ? this.#payload : t.decode(this.#payload);
      this.#decoded = true;
    }
    return this.#value;
  }

  is(type: ValueType<unknown>): boolean {
    return type.typename === this.typename;
  }

  as<T>(type: ValueType<T>): T {
    if (type.typename !== this.typename) {
      throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `message has type ${describe(this.typename)}, not ${describe(type.typename)}`);
    }
    return type.decode(this.#payload);
  }

  /** The encoded bytes (for forwarding and for the StateFun protocol). */
  get payload(): Uint8Array {
    return this.#payload;
  }
}

export class InvocationContext implements StateAccess {
  readonly #host: ContextHost;
  readonly #fn: CompiledFunction;
  readonly #inst: Instance;
  readonly #env: Envelope;
  readonly #fx: Effects;
  readonly #now: number;
  #ended = false;
  #state: object | undefined;
  /**
   * Object values handed out by this invocation, three entries per name: `[spec, value, base]`.
   * A read keeps handing out the same object (so `ctx.state.items.push(x)` then a read sees it),
   * and {@link settle} writes what was changed in place. `base` is the stored bytes the value was
   * decoded from, or the Slot an assignment made.
   */
  #handed: unknown[] | null = null;

  constructor(host: ContextHost, fn: CompiledFunction, inst: Instance, env: Envelope, fx: Effects, now: number) {
    this.#host = host;
    this.#fn = fn;
    this.#inst = inst;
    this.#env = env;
    this.#fx = fx;
    this.#now = now;
  }

  /**
   * Marks the invocation over. A later call on this context is reported (ContextHost.lateCall)
   * and has no effect; it throws ERR_WEFT_INVOCATION_ENDED only while some function runs
   * synchronously (then the throw fails that invocation, which the user can see and catch),
   * never from a timer or callback, where a throw would be uncaught and end the shard.
   */
  end(): void {
    this.#ended = true;
  }

  get self(): Address {
    // Made once per instance, not per invocation: the address never changes.
    return (this.#inst.self ??= frozenAddress(this.#inst.type, this.#inst.id));
  }

  get caller(): Address | undefined {
    const t = this.#env[3];
    return t === null ? undefined : frozenAddress(t, this.#env[4] as string);
  }

  get state(): Record<string, unknown> {
    return (this.#state ??= new this.#fn.StateView(this)) as Record<string, unknown>;
  }

  set state(_value: unknown) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', 'ctx.state cannot be replaced: assign its declared names instead (ctx.state.name = value)');
  }

  /** False (after reporting it, or throwing) when the invocation has ended: the call must do nothing. */
  #live(what: string): boolean {
    if (!this.#ended) return true;
    this.#host.lateCall(this.#inst.type, this.#inst.id, what);
    if (this.#host.inUserCode) {
      throw new WeftError('ERR_WEFT_INVOCATION_ENDED', `ctx.${what}() called after the invocation of ${this.#inst.type}/${this.#inst.id} ended (did you forget to await?)`);
    }
    return false;
  }

  #expired(spec: CompiledSpec, slot: Slot): boolean {
    return isExpired(spec, slot.writtenAt, this.#inst.calledAt, this.#now);
  }

  readState(spec: CompiledSpec): unknown {
    if (this.#ended && !this.#live(`state.${spec.name} read`)) return undefined;
    const fx = this.#fx;
    const at = fx.nWrites === 0 ? -1 : writeIndex(fx.writes, fx.nWrites, spec);
    let slot: Slot | null | undefined;
    if (at >= 0) {
      const written = fx.writes[at + 1];
      if (written === IMMUTABLE) return fx.writes[at + 2];
      slot = written as Slot | null;
      if (slot === null) return undefined;
    } else {
      slot = this.#inst.slots.get(spec.name);
      if (slot === undefined || this.#expired(spec, slot)) return undefined;
    }
    if (slot === undefined) return undefined;
    if (slot.hasDecoded) return slot.decoded;
    if (spec.type.immutable) {
      const value = spec.type.decode(slot.bytes);
      slot.settle(value, spec.encode);
      return value;
    }
    // An object value: the one this invocation already has (assigned or read), else a copy of the
    // stored one, kept for the rest of the invocation.
    const h = this.#handed;
    if (h !== null) for (let i = 0; i < h.length; i += 3) if (h[i] === spec) return h[i + 1];
    const value = spec.type.decode(slot.bytes);
    this.#hand(spec, value, slot.bytes);
    return value;
  }

  #hand(spec: CompiledSpec, value: unknown, base: Uint8Array | Slot): void {
    const h = (this.#handed ??= []);
    for (let i = 0; i < h.length; i += 3) {
      if (h[i] === spec) {
        h[i + 1] = value;
        h[i + 2] = base;
        return;
      }
    }
    h.push(spec, value, base);
  }

  /**
   * Writes the object values this invocation changed in place (`ctx.state.items.push(x)`, or an
   * assigned object changed after the assignment), as if assigned again: each is encoded and
   * compared with the bytes it came from. Called once the function succeeded, before its effects
   * apply; a value that no longer encodes (or is now too large) fails the invocation.
   */
  settle(): void {
    const h = this.#handed;
    if (h === null) return;
    this.#handed = null;
    for (let i = 0; i < h.length; i += 3) {
      const spec = h[i] as CompiledSpec;
      const value = h[i + 1];
      const base = h[i + 2];
      const bytes = spec.type.encode(value, spec.path);
      const was = base instanceof Slot ? base.bytes : (base as Uint8Array);
      if (sameBytes(bytes, was)) continue;
      // Bytes differ: changed, unless the type does not re-encode what it decoded byte for byte
      // (a custom serializer may not): compare with a re-encoding of the stored value.
      if (!(base instanceof Slot) && sameBytes(bytes, spec.type.encode(spec.type.decode(was), spec.path))) continue;
      if (bytes.byteLength > this.#host.maxStateValueBytes) {
        throw new WeftError('ERR_WEFT_TOO_LARGE', `state ${describe(spec.name)} of ${this.#inst.type}/${this.#inst.id}, changed in place, encodes to ${bytes.byteLength} bytes, over the limit of ${this.#host.maxStateValueBytes} (maxStateValueBytes)`);
      }
      this.#put(spec, new Slot(bytes, this.#now, value, false), undefined);
    }
  }

  writeState(spec: CompiledSpec, value: unknown): void {
    if (this.#ended && !this.#live(`state.${spec.name} write`)) return;
    if (value === undefined) {
      this.#put(spec, null, undefined);
      this.#unhand(spec);
      return;
    }
    const type: ValueType<unknown> = spec.type;
    // Immutable values are validated now and encoded lazily (see Slot.bytes), unless they could
    // be over the size limit (only long strings can), which needs the exact encoded size now.
    if (type.immutable && !(typeof value === 'string' && value.length * 3 + 16 > this.#host.maxStateValueBytes)) {
      type.check(value, spec.path);
      this.#put(spec, IMMUTABLE, value);
      this.#unhand(spec);
      return;
    }
    const bytes = type.encode(value, spec.path);
    if (bytes.byteLength > this.#host.maxStateValueBytes) {
      throw new WeftError('ERR_WEFT_TOO_LARGE', `state ${describe(spec.name)} of ${this.#inst.type}/${this.#inst.id} encodes to ${bytes.byteLength} bytes, over the limit of ${this.#host.maxStateValueBytes} (maxStateValueBytes)`);
    }
    const slot = new Slot(bytes, this.#now, value, type.immutable);
    this.#put(spec, slot, undefined);
    // Reads hand out the assigned object itself; what it becomes by the end is what is stored.
    if (!type.immutable) this.#hand(spec, value, slot);
    else this.#unhand(spec);
  }

  #unhand(spec: CompiledSpec): void {
    const h = this.#handed;
    if (h === null) return;
    for (let i = 0; i < h.length; i += 3) {
      if (h[i] === spec) {
        h.splice(i, 3);
        return;
      }
    }
  }

  #put(spec: CompiledSpec, slot: Slot | null | typeof IMMUTABLE, value: unknown): void {
    const fx = this.#fx;
    const w = fx.writes;
    let at = writeIndex(w, fx.nWrites, spec);
    if (at < 0) {
      at = fx.nWrites;
      fx.nWrites += 3;
      w[at] = spec;
    }
    w[at + 1] = slot;
    w[at + 2] = value;
  }

  #target(to: unknown, what: string): Address {
    return checkTarget(this.#host.module, to, what);
  }

  #encode(value: unknown, type: ValueType<unknown> | undefined, what: string): [string, Uint8Array] {
    return encodeMessage(this.#host.module, value, type, what, this.#host.maxMessageBytes);
  }

  send(to: Address, value: unknown, opts?: { type?: ValueType<unknown> }): void {
    if (!this.#live('send')) return;
    const a = this.#target(to, 'ctx.send');
    const t = valueType(this.#host.module, opts?.type, 'ctx.send');
    // A one-byte value is a shared array until the dispatcher routes it: a message to another
    // shard is copied into a frame, a local one gets its own copy (Dispatcher.route).
    const payload = encodeSharedPayload(t, value, 'ctx.send value', this.#host.maxMessageBytes);
    const fx = this.#fx;
    fx.sends[fx.nSends++] = envelope(a.type, a.id, this.#inst.type, this.#inst.id, t.typename, payload);
  }

  sendAfter(delayMs: number, to: Address, value: unknown, opts?: { type?: ValueType<unknown>; cancellationToken?: string }): void {
    if (!this.#live('sendAfter')) return;
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `ctx.sendAfter delayMs must be a finite number from 0 to ${MAX_DELAY_MS} (got ${describe(delayMs)})`);
    }
    const a = this.#target(to, 'ctx.sendAfter');
    const token = opts?.cancellationToken;
    if (token !== undefined) this.#checkToken(token, 'ctx.sendAfter');
    const [typename, payload] = this.#encode(value, opts?.type, 'ctx.sendAfter');
    if (token !== undefined) {
      if (this.#tokenPending(token)) {
        throw new WeftError('ERR_WEFT_DUPLICATE_TOKEN', `ctx.sendAfter: cancellation token ${describe(token)} of ${this.#inst.type}/${this.#inst.id} is already used by a pending delayed message`);
      }
      (this.#fx.tokens ??= new Map()).set(token, true);
    }
    const env = envelope(a.type, a.id, this.#inst.type, this.#inst.id, typename, payload);
    (this.#fx.timerOps ??= []).push({ env, delayMs: Math.ceil(delayMs), token: token ?? null });
  }

  cancelDelayed(token: string): void {
    if (!this.#live('cancelDelayed')) return;
    this.#checkToken(token, 'ctx.cancelDelayed');
    (this.#fx.tokens ??= new Map()).set(token, false);
    (this.#fx.timerOps ??= []).push({ env: undefined, delayMs: 0, token });
  }

  #checkToken(token: unknown, what: string): void {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `${what}: cancellation token must be a non-empty string of at most ${MAX_TOKEN_LENGTH} characters (got ${describe(token)})`);
    }
  }

  #tokenPending(token: string): boolean {
    const own = this.#fx.tokens?.get(token);
    return own ?? this.#host.hasPendingToken(this.#inst.key, token);
  }

  egress(name: string, value: unknown, opts?: { type?: ValueType<unknown> }): void {
    if (!this.#live('egress')) return;
    if (typeof name !== 'string' || !this.#host.module.egresses.has(name)) {
      throw new WeftError('ERR_WEFT_UNKNOWN_EGRESS', `ctx.egress: egress ${describe(name)} is not declared in the module's egresses (declared: ${[...this.#host.module.egresses].map((e) => JSON.stringify(e)).join(', ')})`);
    }
    const [typename, payload] = this.#encode(value, opts?.type, 'ctx.egress');
    (this.#fx.egress ??= []).push([name, typename, payload]);
  }

  reply(value: unknown, opts?: { type?: ValueType<unknown> }): void {
    if (!this.#live('reply')) return;
    const fx = this.#fx;
    if (fx.replyType !== null) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `ctx.reply called twice in one invocation of ${this.#inst.type}/${this.#inst.id}: an invocation answers once`);
    }
    const t = valueType(this.#host.module, opts?.type, 'ctx.reply');
    // A one-byte value is a shared array: a reply's bytes are copied into a frame (or by
    // Dispatcher.route for a calling function on this shard) before any code can see them.
    fx.replyPayload = encodeSharedPayload(t, value, 'ctx.reply value', this.#host.maxMessageBytes);
    fx.replyType = t.typename;
  }

  now(): number {
    return this.#now;
  }

  compute(task: string, input: unknown): Promise<unknown> {
    if (!this.#live('compute')) return handled(new WeftError('ERR_WEFT_INVOCATION_ENDED', `ctx.compute() called after the invocation of ${this.#inst.type}/${this.#inst.id} ended (did you forget to await?)`));
    if (typeof task !== 'string' || task.length === 0) {
      return Promise.reject(new WeftError('ERR_WEFT_INVALID_ARG', `ctx.compute task must be the name of an export of the module's compute file (got ${describe(task)})`));
    }
    return this.#host.compute(task, input);
  }
}

/** A rejected promise that is no unhandled rejection when nobody awaits it. */
function handled(err: Error): Promise<never> {
  const p = Promise.reject(err);
  p.catch(() => {});
  return p;
}
