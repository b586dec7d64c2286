/**
 * How the dispatcher calls functions that run outside the engine (remote-functions.ts implements
 * it over the StateFun protocol). The dispatcher decides what goes in a batch, when, and what
 * a failure does to the address; the invoker carries the batch there and brings its effects back
 * in engine terms, which the dispatcher checks and applies like one invocation's.
 */
import type { Envelope } from '../contract/envelope.js';
import type { Instance } from '../state/instance.js';

/** What a remote batch did; byte arrays are the caller's to keep. */
export interface RemoteEffects {
  /** State changes, in order: a value to store (with its typename), or null to delete. */
  readonly mutations: ReadonlyArray<{ readonly name: string; readonly value: { readonly typename: string; readonly bytes: Uint8Array } | null }>;
  /** Messages to functions (or to itself), in order. */
  readonly sends: ReadonlyArray<{ readonly type: string; readonly id: string; readonly typename: string; readonly payload: Uint8Array }>;
  /** Answers to the host requests among the batch's messages, by request id. */
  readonly replies: ReadonlyArray<{ readonly requestId: number; readonly typename: string; readonly payload: Uint8Array }>;
  /**
   * Delayed messages (`cancel` false: target, typename and payload set) and cancellations of
   * pending ones by token, in call order (a cancel may free a token a later message reuses).
   */
  readonly delayed: ReadonlyArray<{
    readonly cancel: boolean;
    readonly delayMs: number;
    readonly target: { readonly type: string; readonly id: string } | null;
    readonly typename: string | null;
    readonly payload: Uint8Array | null;
    readonly cancellationToken: string | null;
  }>;
  /** Egress records. */
  readonly egress: ReadonlyArray<{ readonly name: string; readonly typename: string; readonly payload: Uint8Array }>;
  /** A state of the function expires after a call: the batch's time becomes the instance's call time. */
  readonly callTimeMatters: boolean;
}

/** An endpoint serving a remote function type. */
export interface RemoteTarget {
  /** Most messages in one batch. */
  readonly maxBatch: number;
  /** What a failed batch does: kept while its address pauses, or dead-lettered. */
  readonly onExhausted: 'pause' | 'dead-letter';
  /** How long an address pauses after its `failures`-th failed call in a row (ms). */
  pauseMs(failures: number): number;
  /**
   * Runs `messages` (all to `type`/`id`, in order) with the instance's stored state, values
   * expired at `now` left out. Rejects when the call failed (the batch had no effect).
   */
  invoke(type: string, id: string, messages: readonly Envelope[], instance: Instance, now: number): Promise<RemoteEffects>;
  /** An address paused after a failed call (for a warning). */
  paused(type: string, id: string, err: unknown, pauseMs: number): void;
}

export interface RemoteInvoker {
  /** The endpoint serving function type `type`, or undefined when none does. */
  for(type: string): RemoteTarget | undefined;
}
