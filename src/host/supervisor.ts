/**
 * Recovery policy and user-code isolation on the main thread: decides what a shard failure means
 * (a poison message to quarantine, or a failure no message explains, which counts against the
 * restart budget), runs the watchdog that terminates shards whose event loop is blocked, and
 * counts and reports what user code did wrong outside any invocation. The rollback itself is the
 * host facade's (Weft's #recover): the supervisor only says whether to recover, and what the next
 * generation of shards is started with (quarantined messages, careful mode).
 */
import { debuglog } from 'node:util';
import { WeftError, type SerializedError } from '../core/errors.js';
import type { Running } from '../contract/control-block.js';
import { channels } from './channels.js';
import type { ShardPool } from './shard-pool.js';
import type { Lifecycle } from './lifecycle.js';
import type { ShardLink } from './shard-link.js';

const debug = debuglog('weft');

/**
 * Shard failures that no message explains, tolerated within RECOVERY_WINDOW_MS before the engine
 * gives up (a failure that comes back right after every recovery is a bug, not a crash).
 */
const MAX_RECOVERIES = 5;
const RECOVERY_WINDOW_MS = 60_000;
/** Suspected messages (see Supervisor#suspects) remembered at most. */
const MAX_SUSPECTS = 1024;
/**
 * A shard whose event loop is blocked while no function is recorded as running is terminated
 * after this many times invocationTimeoutMs (see #watch): the engine's long steps beat the
 * heartbeat, but a GC pause, or a step that cannot (one LMDB call), may take a while.
 */
const ENGINE_STALL_FACTOR = 10;

interface Failure {
  at: number;
  suspect: string | undefined;
}

export class Supervisor {
  readonly #invocationTimeoutMs: number;
  readonly #links: readonly ShardLink[];
  readonly #life: Lifecycle;
  /** Unexplained failures of the last RECOVERY_WINDOW_MS (`suspect`: the message running then). */
  #recentFailures: Failure[] = [];
  #unexplained = 0;
  /**
   * Messages (fingerprints, see Dispatcher's messageFingerprint) that ended or stalled a shard,
   * with the error of their dead letter and the generation that isolated them: shards
   * dead-letter them instead of running them, so no poison message can stop the engine. An entry
   * holds for the replay of the recovery it was made for only: it leaves when its dead letter is
   * committed, or at the first checkpoint committed after that recovery (the replay has then
   * reached it, or it was not sent again: see Dispatcher.scopeQuarantine, the shards' side).
   */
  readonly #quarantine = new Map<string, { error: SerializedError; generation: number }>();
  /**
   * Messages that were running when a shard died once (fingerprint → when): a second death inside
   * the same message quarantines it (one death could be a coincidence: memory another message
   * filled, a signal), and takes back the failure the first one counted.
   */
  readonly #suspects = new Map<string, number>();
  #poisonMessages = 0;
  #stalledShards = 0;
  #lateContextCalls = 0;
  #uncaughtErrors = 0;
  /**
   * The unexplained failure the next (or current) generation runs careful for (see
   * Dispatcher.careful); when that generation then isolates a message, this one is explained too.
   */
  #carefulFor: Failure | undefined;
  #nextCareful = false;
  /** The generation that runs careful for #carefulFor. */
  #carefulGeneration = 0;
  /**
   * Shards of this generation main terminated for a blocked event loop, with the invocation
   * recorded when #watch decided (undefined: none): judge() blames it only if it is still the one
   * recorded when the worker exited.
   */
  readonly #stalled = new Map<number, Running | undefined>();
  #watchdog: NodeJS.Timeout | undefined;
  #watchedAt = 0;

  constructor(invocationTimeoutMs: number, links: readonly ShardLink[], life: Lifecycle) {
    this.#invocationTimeoutMs = invocationTimeoutMs;
    this.#links = links;
    this.#life = life;
  }

  get figures(): { unexplainedFailures: number; poisonMessages: number; stalledShards: number; lateContextCalls: number; uncaughtErrors: number } {
    return {
      unexplainedFailures: this.#unexplained,
      poisonMessages: this.#poisonMessages,
      stalledShards: this.#stalledShards,
      lateContextCalls: this.#lateContextCalls,
      uncaughtErrors: this.#uncaughtErrors,
    };
  }

  /**
   * Generation `generation` is about to start: what its shards start with. It runs careful
   * when the last failure was unexplained.
   */
  generationStarting(generation: number): { quarantined: Array<readonly [string, SerializedError]>; careful: boolean } {
    this.#stalled.clear();
    if (this.#nextCareful) this.#carefulGeneration = generation;
    return { quarantined: [...this.#quarantine].map(([fp, q]) => [fp, q.error] as const), careful: this.#nextCareful };
  }

  /** The shards of `generation` run: watch them. */
  generationStarted(generation: number, pool: ShardPool): void {
    this.#nextCareful = false;
    this.#startWatchdog(generation, pool);
  }

  /** The first commit after a recovery ends the quarantine made for it (see #quarantine). */
  committed(generation: number): void {
    for (const [fp, q] of this.#quarantine) if (q.generation < generation) this.#quarantine.delete(fp);
  }

  /** A dead letter of a quarantined message (by fingerprint) is committed: it is isolated for good. */
  released(fingerprint: string): void {
    this.#quarantine.delete(fingerprint);
  }

  /**
   * A shard worker of `generation` ended (or main ended it: see #watch). When it died inside a
   * function (the shard records the running message in shared memory, see ControlBlock.enter),
   * the message explains it: one whose function ran synchronously through the whole stall is
   * quarantined at once; one that ended its shard, or that was only awaiting (careful mode) when
   * its shard stalled, is quarantined the second time (see #suspects): a timer left behind by
   * another function, a GC pause or the engine's own work may be what blocked the loop.
   * Quarantined messages are dead-lettered by the recovered shards, and cost no restart budget:
   * only failures no message explains count (MAX_RECOVERIES). Returns the error to fail the
   * engine with when that budget is spent, else undefined: recover.
   */
  judge(generation: number, shard: number, err: Error, pool: ShardPool): WeftError | undefined {
    const now = Date.now();
    this.#recentFailures = this.#recentFailures.filter((f) => now - f.at < RECOVERY_WINDOW_MS);
    for (const [fp, at] of this.#suspects) if (now - at >= RECOVERY_WINDOW_MS) this.#suspects.delete(fp);
    const stalled = this.#stalled.has(shard);
    const recorded = pool.control.current(shard);
    // A stall is blamed on the invocation #watch saw, if it is still the one recorded now (the
    // shard could have started another one between the decision and its termination).
    let running: Running | undefined = recorded;
    if (stalled) {
      const seen = this.#stalled.get(shard);
      running = seen !== undefined && recorded !== undefined && seen.fingerprint === recorded.fingerprint && seen.synchronous === recorded.synchronous ? seen : undefined;
    }
    const fp = running?.fingerprint;
    const timeoutMs = this.#invocationTimeoutMs;
    let poison: SerializedError | undefined;
    if (fp !== undefined && stalled && running!.synchronous) {
      poison = { name: 'WeftError', code: 'ERR_WEFT_TIMEOUT', message: `ran synchronously for more than ${timeoutMs} ms (invocationTimeoutMs): its shard ${shard} was terminated, and its message dead-lettered without running again` };
    } else if (fp !== undefined && this.#suspects.has(fp)) {
      this.#suspects.delete(fp);
      // Its first death was counted as unexplained: it is explained now.
      const first = this.#recentFailures.findIndex((f) => f.suspect === fp);
      if (first >= 0) {
        this.#recentFailures.splice(first, 1);
        this.#unexplained--;
      }
      poison = stalled
        ? { name: 'WeftError', code: 'ERR_WEFT_TIMEOUT', message: `was awaiting, in a careful replay, each of two times its shard's event loop was blocked for more than ${timeoutMs} ms (invocationTimeoutMs; its continuation, or code it left behind, is presumed to block it): its shard ${shard} was terminated, and its message dead-lettered without running again` }
        : { name: 'WeftError', code: 'ERR_WEFT_SHARD_FAILED', message: `ended its shard worker twice (exit, crash or out of memory; last: ${err.message}): its message was dead-lettered without running again` };
    }
    if (fp !== undefined && poison !== undefined) {
      this.#quarantine.set(fp, { error: poison, generation });
      this.#poisonMessages++;
      // The failure this careful generation was started for is explained by the same message.
      // (Unless it was another message's first death: that one is explained by its own.)
      const cause = generation === this.#carefulGeneration && (this.#carefulFor?.suspect === undefined || this.#carefulFor.suspect === fp) ? this.#carefulFor : undefined;
      this.#carefulFor = undefined;
      const at = cause === undefined ? -1 : this.#recentFailures.indexOf(cause);
      if (at >= 0) {
        this.#recentFailures.splice(at, 1);
        this.#unexplained--;
      }
      debug('shard %d: quarantining message %s: it %s', shard, fp, poison.message);
      return undefined;
    }
    // No message explains it (yet): past MAX_RECOVERIES in RECOVERY_WINDOW_MS, the engine
    // fails for good rather than spin.
    if (this.#recentFailures.length >= MAX_RECOVERIES) {
      return new WeftError('ERR_WEFT_SHARD_FAILED', `shard ${shard} failed ${MAX_RECOVERIES + 1} times within ${RECOVERY_WINDOW_MS} ms, for no message in particular; last error: ${err.message}`, { cause: err });
    }
    this.#unexplained++;
    const failure = { at: now, suspect: fp };
    this.#recentFailures.push(failure);
    // The next generation runs careful, to find the message if one is to blame.
    this.#nextCareful = true;
    if (generation !== this.#carefulGeneration || this.#carefulFor === undefined) this.#carefulFor = failure;
    if (fp !== undefined) {
      if (this.#suspects.size >= MAX_SUSPECTS) this.#suspects.delete(this.#suspects.keys().next().value as string);
      this.#suspects.set(fp, now);
    }
    return undefined;
  }

  /** A function's `ctx` was used after its invocation ended (a forgotten `await`). */
  lateCall(generation: number, shard: number, address: { type: string; id: string }, method: string): void {
    if (!this.#life.isCurrent(generation)) return;
    if (this.#lateContextCalls++ === 0) {
      process.emitWarning(`weft: ctx.${method}() of ${address.type}/${address.id} was called after its invocation ended (did you forget to await?); it had no effect. Later ones are counted in metrics lateContextCalls and published on diagnostics channel weft:late-context.`);
    }
    debug('shard %d: ctx.%s() of %s/%s called after its invocation ended', shard, method, address.type, address.id);
    if (channels.lateContext.hasSubscribers) channels.lateContext.publish({ shard, address, method });
  }

  /** Code a function left behind (a timer or callback) threw in a shard outside any invocation. */
  uncaught(generation: number, shard: number, error: Error): void {
    if (!this.#life.isCurrent(generation)) return;
    if (this.#uncaughtErrors++ === 0) {
      process.emitWarning(`weft: shard ${shard}: code a function left behind (a timer or callback) threw outside any invocation: ${error.message}. The shard goes on; later ones are counted in metrics uncaughtErrors and published on diagnostics channel weft:uncaught-error.`);
    }
    debug('shard %d: uncaught error outside any invocation: %s', shard, error.message);
    if (channels.uncaughtError.hasSubscribers) channels.uncaughtError.publish({ shard, error });
  }

  /**
   * Main's watchdog: every shard bumps a heartbeat word while its event loop runs (at every
   * invocation and turn, from a timer, and every few thousand records of the engine's own long
   * loops: snapshot encode, fold). One that does not change means the shard is stuck. Main
   * terminates the worker (worker.terminate() stops a busy loop) and the engine recovers:
   * - after invocationTimeoutMs when a function is recorded as running (synchronously, or, in a
   *   careful generation, awaiting: see ControlBlock.current); the message is blamed as
   *   {@link judge} decides;
   * - otherwise after ENGINE_STALL_FACTOR × invocationTimeoutMs: the loop is blocked outside any
   *   function's synchronous code (a timer or callback a function left behind, a long GC pause,
   *   an engine step that does not beat), which no message explains.
   */
  #startWatchdog(generation: number, pool: ShardPool): void {
    clearInterval(this.#watchdog);
    const deadline = this.#invocationTimeoutMs;
    this.#watchedAt = performance.now();
    for (const link of this.#links) {
      link.beat = pool.control.heartbeat(link.shard);
      link.beatSeenAt = this.#watchedAt;
    }
    this.#watchdog = setInterval(() => this.#watch(generation, pool, deadline), Math.max(10, Math.floor(deadline / 4)));
    this.#watchdog.unref();
  }

  /** The generation watched ends (a recovery or close()). */
  stopWatchdog(): void {
    clearInterval(this.#watchdog);
  }

  #watch(generation: number, pool: ShardPool, deadline: number): void {
    if (!this.#life.isCurrent(generation)) return;
    const now = performance.now();
    // Main itself did not run for a while (a busy host, a suspended process): what it did not
    // see says nothing about the shards; start watching again.
    const late = now - this.#watchedAt > deadline / 2;
    this.#watchedAt = now;
    for (const link of this.#links) {
      const s = link.shard;
      const beat = pool.control.heartbeat(s);
      if (late || beat !== link.beat || !pool.isReady(s)) {
        link.beat = beat;
        link.beatSeenAt = now;
        continue;
      }
      const blockedMs = now - link.beatSeenAt;
      if (blockedMs < deadline || this.#stalled.has(s)) continue;
      const running = pool.control.current(s);
      if (running === undefined && blockedMs < deadline * ENGINE_STALL_FACTOR) continue;
      const err =
        running === undefined
          ? new WeftError('ERR_WEFT_TIMEOUT', `shard ${s}'s event loop was blocked for more than ${deadline * ENGINE_STALL_FACTOR} ms (${ENGINE_STALL_FACTOR} × invocationTimeoutMs) outside any function's synchronous code; the shard was terminated`)
          : running.synchronous
            ? new WeftError('ERR_WEFT_TIMEOUT', `shard ${s} ran one function synchronously for more than ${deadline} ms (invocationTimeoutMs); the shard was terminated, and that message will be dead-lettered`)
            : new WeftError('ERR_WEFT_TIMEOUT', `shard ${s}'s event loop was blocked for more than ${deadline} ms (invocationTimeoutMs) while a function awaited in a careful replay; the shard was terminated, and that message is suspected (dead-lettered if it happens again)`);
      this.#stalled.set(s, running);
      this.#stalledShards++;
      debug('shard %d stalled: %s', s, err.message);
      pool.kill(s, err);
    }
  }
}
