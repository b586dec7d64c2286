/**
 * The checkpoint coordinator (main thread): exactly-once state through unaligned asynchronous
 * barrier snapshots (Chandy–Lamport, as in Flink's unaligned checkpoints), committed in two phases.
 *
 * THE PROTOCOL, for epoch e
 *
 *   1. The coordinator writes BARRIER(e) into every main→shard ring. Host messages queued before
 *      it belong to epoch e; those after it to e+1.
 *   2. A shard, on the FIRST BARRIER(e) it receives (from main or from another shard), snapshots:
 *      the instances changed since its last snapshot (incremental), its timer changes, and its
 *      mailboxes, including the message of every invocation still running (it will run again on
 *      recovery, and its effects, not yet applied, are in no snapshot). It then forwards
 *      BARRIER(e) on every outbound ring — behind everything it sent before, spills included.
 *   3. From then until BARRIER(e) arrives on an inbound ring, the shard RECORDS every message
 *      arriving on that ring: they were sent before the sender's snapshot (so the sender's state
 *      already reflects having sent them) and arrive after ours (so our state does not reflect
 *      having processed them) — the channel state of Chandy–Lamport. Cycles need nothing more.
 *   4. When BARRIER(e) has arrived on every inbound ring, the shard writes its part — delta,
 *      mailboxes + recorded messages, timer changes — as PENDING(e) in ONE LMDB transaction, and
 *      reports DONE(e) on its ring to main once that is durable.
 *   5. When every shard reported DONE(e) (each after its BARRIER(e) on the same ring), the
 *      coordinator writes COMMITTED(e) to its metadata store. Only then: `send()` promises of
 *      host messages whose invocations completed in e resolve, egress records of e are handed to
 *      the host, durable replies are released, and COMMITTED(e) goes to the shards, which fold
 *      PENDING(e) into their base. Nothing waits for the shards to read it, so with periodic
 *      checkpoints at most {@link LATE_COMMITTED_MAX_INTERVAL_MS} apart a periodic COMMITTED does
 *      not wake them: they read it at their next wake, at the latest with the next BARRIER or when
 *      the coordinator's next tick finds nothing to checkpoint (hooks.idleTick), one interval
 *      later. One that a checkpoint() call awaits wakes them.
 *   5a. A periodic checkpoint falls between requests when it can. When one is due while nothing
 *      the host waits for depends on it (no send, durable request or egress record waits for a
 *      commit, no send waits for room) and one request is in flight, or none but a reply came
 *      since the last tick, it is HELD until a reply leaves no request in flight
 *      ({@link Coordinator.quiet}), for at most one more interval; as soon as the host starts
 *      waiting for a commit (a send, a durable request, an egress record or a durable reply
 *      reported: {@link Coordinator.wanted}) it starts instead. A service that sends its next
 *      request a while after the last reply (a closed loop, a quiet service) then rarely meets a
 *      checkpoint's work: the barrier's wake-ups, the snapshot, the PENDING writes and DONE happen
 *      in the gap, and the COMMITTED of such an epoch wakes the shards when no request is in
 *      flight, so that they read it (and fold) in the gap too rather than at the next request.
 *      Work without requests (messages between functions, timers) is never held.
 *   6. Recovery (a restart, or a shard worker dying): every shard folds PENDING ≤ E (the last
 *      committed epoch) and drops PENDING > E, replays the mailboxes of E before new input, and
 *      re-arms its timers; main re-sends the host messages it accepted after BARRIER(E) (it
 *      keeps them until their epoch commits). Nothing accepted is lost, nothing applied twice.
 *
 * Why the host's view is exactly-once: everything the host can observe (send() resolution,
 * egress, durable replies) is released only after the epoch that contains it is committed, and
 * a committed epoch is never rolled back. Non-durable replies are the documented exception.
 *
 * Only one epoch is in flight at a time; a checkpoint requested meanwhile runs right after.
 */

/**
 * Periodic checkpoints at most this far apart (ms) tell the shards of their commit without waking
 * them (see step 5 above): a shard then reads COMMITTED up to one interval late, and its fold of
 * that epoch, once the engine goes quiet, comes as much later. Further apart, the wake they save
 * is rare and the delay long.
 */
export const LATE_COMMITTED_MAX_INTERVAL_MS = 50;

export interface CoordinatorHooks {
  /** Write BARRIER(epoch) into every main→shard ring (and flush). */
  injectBarrier(epoch: number): void;
  /** Every shard is done with `epoch`: persist COMMITTED(epoch); resolves when durable. */
  commit(epoch: number, figures: { bytes: number; states: number; ms: number }): Promise<void>;
  /**
   * COMMITTED(epoch) is durable: release what the host may now see, tell the shards. `wake`:
   * ring them (a checkpoint() call awaits this epoch, or no periodic tick follows within
   * {@link LATE_COMMITTED_MAX_INTERVAL_MS}); else they may read it at their next wake.
   */
  committed(epoch: number, wake: boolean): void;
  /** Nothing happened since the last checkpoint: an epoch may be skipped. */
  quiescent(): boolean;
  /** A periodic tick found nothing to checkpoint: no BARRIER follows what the shards were sent. */
  idleTick(): void;
  /**
   * A periodic checkpoint is due: may it be held for a quiet moment (step 5a)? Yes when nothing
   * the host waits for depends on it and at most one request is in flight (and not durable).
   */
  mayHold(): boolean;
  /** No request is in flight (none waits for its reply). */
  idle(): boolean;
  failed(err: unknown): void;
}

/**
 * How an epoch starts: `forced` (a checkpoint() call, a retry), `periodic` (the interval's timer:
 * skipped when quiescent, maybe held), or the end of a hold: `quiet` (a reply left no request in
 * flight), `wanted` (the host began waiting for a commit) or `limit` (one more interval passed).
 */
type Start = 'forced' | 'periodic' | 'quiet' | 'wanted' | 'limit';

interface Waiter {
  resolve(epoch: number): void;
  reject(err: unknown): void;
}

export class Coordinator {
  readonly #shards: number;
  readonly #hooks: CoordinatorHooks;
  readonly #intervalMs: number;
  #committed: number;
  #next: number;
  #inFlight = 0;
  #started = 0;
  #done = new Set<number>();
  #figures = { bytes: 0, states: 0, ms: 0 };
  /** Waiters for the epoch in flight. */
  #current: Waiter[] = [];
  /** Waiters for the next epoch (requested while one was in flight). */
  #queued: Waiter[] = [];
  #forced = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Why the coordinator stopped: a checkpoint() asked afterwards is rejected with it. */
  #stopReason: unknown;
  /** A recovery is under way: no new epoch starts, no DONE counts. */
  #halted = false;
  /** The COMMITTED write in progress, if any. */
  #committing: Promise<void> | undefined;
  /** A periodic checkpoint held for a quiet moment (step 5a): the timer of its limit. */
  #hold: NodeJS.Timeout | undefined;
  /** The hold ended: the held checkpoint starts once the host has reacted (setImmediate). */
  #quietSoon = false;
  /** A reply left no request in flight since the last periodic tick. */
  #replied = false;
  /** The epoch in flight started at a quiet moment. */
  #startedQuiet = false;
  #held = 0;
  #heldToLimit = 0;

  constructor(shards: number, committed: number, intervalMs: number, hooks: CoordinatorHooks) {
    this.#shards = shards;
    this.#committed = committed;
    this.#next = committed + 1;
    this.#intervalMs = intervalMs;
    this.#hooks = hooks;
  }

  get committedEpoch(): number {
    return this.#committed;
  }

  /** The epoch host messages queued now belong to. */
  get openEpoch(): number {
    return this.#next;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Periodic checkpoints held for a quiet moment (step 5a), and those of them that started at their limit. */
  get holds(): { held: number; heldToLimit: number } {
    return { held: this.#held, heldToLimit: this.#heldToLimit };
  }

  start(): void {
    this.#arm();
  }

  #arm(): void {
    if (this.#stopped || this.#intervalMs === 0 || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#trigger('periodic');
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Forces a checkpoint; resolves with its epoch once committed. */
  checkpoint(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.#stopped) {
        reject(this.#stopReason);
        return;
      }
      if (this.#inFlight !== 0) {
        this.#queued.push({ resolve, reject });
        this.#forced = true;
        return;
      }
      this.#current.push({ resolve, reject });
      this.#trigger('forced');
    });
  }

  /**
   * A request left the pending table empty (its reply, a timeout, a refusal): a held periodic
   * checkpoint (step 5a) starts, once the host's reaction to that reply has run (its promise's
   * callbacks: they may answer a client).
   */
  quiet(): void {
    this.#replied = true;
    this.#endHold('quiet');
  }

  /**
   * The host began waiting for the next commit (a send, a durable request, an egress record or a
   * durable reply reported): a held periodic checkpoint (step 5a) starts.
   */
  wanted(): void {
    this.#endHold('wanted');
  }

  #endHold(start: 'quiet' | 'wanted'): void {
    if (this.#hold === undefined || this.#quietSoon) return;
    this.#quietSoon = true;
    setImmediate(() => {
      this.#quietSoon = false;
      // A checkpoint() that started an epoch meanwhile, a halt or a stop cleared the hold.
      if (this.#hold === undefined) return;
      this.#clearHold();
      this.#trigger(start);
    }).unref();
  }

  #clearHold(): void {
    if (this.#hold === undefined) return;
    clearTimeout(this.#hold);
    this.#hold = undefined;
  }

  #trigger(start: Start): void {
    if (this.#stopped || this.#halted || this.#inFlight !== 0) return;
    if (start === 'periodic' && this.#current.length === 0) {
      const replied = this.#replied;
      this.#replied = false;
      if (this.#hooks.quiescent()) {
        this.#hooks.idleTick();
        this.#arm();
        return;
      }
      // With no request in flight, only a load of requests has a reply to wait for.
      if (this.#hooks.mayHold() && (replied || !this.#hooks.idle())) {
        this.#held++;
        this.#hold = setTimeout(() => {
          this.#hold = undefined;
          this.#heldToLimit++;
          this.#trigger('limit');
        }, this.#intervalMs);
        this.#hold.unref();
        return;
      }
    }
    this.#clearHold();
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#startedQuiet = start === 'quiet';
    const epoch = this.#next++;
    this.#inFlight = epoch;
    this.#started = performance.now();
    this.#done.clear();
    this.#figures = { bytes: 0, states: 0, ms: 0 };
    this.#hooks.injectBarrier(epoch);
  }

  /** A shard reported DONE(epoch). */
  onDone(shard: number, epoch: number, figures: { bytes: number; states: number }): void {
    // #inFlight 0 means none: a DONE(0) never counts. After stop() nothing commits (close() may
    // be closing the data dir).
    if (this.#stopped || this.#halted || this.#inFlight === 0 || epoch !== this.#inFlight || this.#done.has(shard)) return;
    this.#done.add(shard);
    this.#figures.bytes += figures.bytes;
    this.#figures.states += figures.states;
    if (this.#done.size < this.#shards) return;
    this.#figures.ms = performance.now() - this.#started;
    // A commit that started completes even if a recovery begins meanwhile: every shard's part is
    // durable, so the epoch is valid; the recovery waits for it (halt) and starts from it.
    const committing = this.#hooks.commit(epoch, this.#figures).then(
      () => {
        this.#committing = undefined;
        this.#committed = epoch;
        this.#inFlight = 0;
        const waiters = this.#current;
        const wake =
          waiters.length > 0 ||
          this.#intervalMs === 0 ||
          this.#intervalMs > LATE_COMMITTED_MAX_INTERVAL_MS ||
          // An epoch started at a quiet moment: the shards read its commit in the same gap (step 5a).
          (this.#startedQuiet && this.#hooks.idle());
        this.#hooks.committed(epoch, wake);
        this.#current = this.#queued;
        this.#queued = [];
        for (const w of waiters) w.resolve(epoch);
        if (this.#halted) return;
        if (this.#forced || this.#current.length > 0) {
          this.#forced = false;
          this.#trigger('forced');
        } else this.#arm();
      },
      (err: unknown) => {
        this.#committing = undefined;
        this.#hooks.failed(err);
      },
    );
    this.#committing = committing;
  }

  /**
   * A recovery begins: stop starting epochs and counting DONEs, and wait for a COMMITTED write
   * already under way, so the recovery reads the final committed epoch.
   */
  async halt(): Promise<void> {
    this.#halted = true;
    this.#clearHold();
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#committing !== undefined) await this.#committing.catch(() => {});
  }

  /**
   * Every shard is back at the committed epoch: the epoch that was in flight is abandoned (its
   * PENDING parts were dropped by the shards) and its waiters get the next one.
   */
  resume(): void {
    this.#halted = false;
    const retry = this.#inFlight !== 0 || this.#current.length > 0 || this.#queued.length > 0;
    this.#inFlight = 0;
    this.#done.clear();
    this.#current.push(...this.#queued);
    this.#queued = [];
    // The queued requests ride the retried epoch now: none is left to force another one.
    this.#forced = false;
    if (retry) this.#trigger('forced');
    else this.#arm();
  }

  /** Stops scheduling; rejects waiters. */
  stop(err: unknown): void {
    this.#stopped = true;
    this.#stopReason = err;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clearHold();
    for (const w of [...this.#current, ...this.#queued]) w.reject(err);
    this.#current = [];
    this.#queued = [];
  }
}
