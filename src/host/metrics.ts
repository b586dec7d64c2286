/**
 * The engine's figures: {@link WeftMetrics} (what `weft.metrics()` returns, built by the host
 * facade from its parts and the shards' control block) and their Prometheus text exposition.
 */
import { HISTOGRAM_BUCKETS, METRICS, type ControlBlock, type MetricName } from '../contract/control-block.js';

/** Per-shard figures of `weft.metrics()`. */
export interface ShardMetrics extends Record<MetricName, number> {
  shard: number;
  /** Invocation latency histogram: `[upperBoundMicros, count]`, log2 buckets. */
  latencyHistogram: Array<[number, number]>;
  latencyP50Micros: number;
  latencyP99Micros: number;
}

export interface WeftMetrics {
  shards: ShardMetrics[];
  hostMessagesSent: number;
  hostMessagesUncommitted: number;
  requestsPending: number;
  /** Committed egress records not yet acknowledged by the host (they wait in the data dir). */
  egressBuffered: number;
  /** Dead letters deleted unacknowledged because `weft/dead-letters` held `egressMaxBacklog` (the only egress records weft ever drops). */
  egressDropped: number;
  /** Egress records handed to an iterator again after an earlier one ended without acknowledging them (this process). */
  egressRedelivered: number;
  /**
   * Egresses at `egressMaxBacklog` unacknowledged records not held by an iterator: host sends wait
   * while any is, at most `egressFullWaitMs`.
   */
  egressFull: number;
  /**
   * Times a full egress held host sends back for `egressFullWaitMs`: the waiting sends went on, and
   * that egress may hold more than `egressMaxBacklog` records until its backlog drops below it.
   */
  egressOverBacklog: number;
  committedEpoch: number;
  checkpointsCommitted: number;
  /**
   * Periodic checkpoints held for a request's reply, so that their work falls between requests
   * (nothing the host waited for depended on them), and those of them that started after one more
   * interval without a reply that left no request in flight.
   */
  checkpointsHeld: number;
  checkpointsHeldToLimit: number;
  lastCheckpoint: { epoch: number; ms: number; bytes: number; states: number } | null;
  recoveries: number;
  /** Recoveries that no message explains: these count against the restart budget. */
  unexplainedFailures: number;
  /** Messages isolated because their invocation ended or stalled its shard (see `weft:poison`). */
  poisonMessages: number;
  /** Shards main terminated because their event loop was blocked past `invocationTimeoutMs`. */
  stalledShards: number;
  /** Context methods called after their invocation ended (see `weft:late-context`). */
  lateContextCalls: number;
  /** Errors thrown in shards outside any invocation by code functions left behind (see `weft:uncaught-error`). */
  uncaughtErrors: number;
  messagesAlive: number;
  /** Host sends waiting for room in the main→shard rings (ingress backpressure). */
  ingressWaiting: number;
  /** Encoded frames main holds back because a main→shard ring is full (bounded). */
  ingressSpilledFrames: number;
  /**
   * Times main's loop woke to read the shards' rings (a shard rang it, or it read on after a full
   * slice). A quiet service wakes it about once per request and a few times per checkpoint.
   */
  mainWakeups: number;
}

/** Each shard's figures as the shards last published them in the control block. */
export function readShardMetrics(control: ControlBlock, shards: number): ShardMetrics[] {
  const out: ShardMetrics[] = [];
  for (let s = 0; s < shards; s++) {
    const { metrics, histogram } = control.readShard(s);
    const buckets: Array<[number, number]> = histogram.map((count, b) => [b === 0 ? 1 : 2 ** b, count]);
    out.push({ shard: s, ...metrics, latencyHistogram: buckets, latencyP50Micros: quantile(histogram, 0.5), latencyP99Micros: quantile(histogram, 0.99) });
  }
  return out;
}

function quantile(histogram: number[], q: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let acc = 0;
  for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
    acc += histogram[b]!;
    if (acc >= total * q) return b === 0 ? 1 : 2 ** b;
  }
  return 2 ** (HISTOGRAM_BUCKETS - 1);
}

/**
 * How each figure of {@link WeftMetrics} is exposed to Prometheus: its type, name and HELP text.
 * Monotonic counts are counters named `..._total` (they restart from 0 after a recovery or a
 * restart, which Prometheus's rate() treats as a counter reset); levels are gauges; durations are
 * in seconds (Prometheus's base unit). `latencySumMicros` is the latency histogram's `_sum`.
 */
const SHARD_PROMETHEUS: Readonly<Record<MetricName, readonly ['counter' | 'gauge', string, string, number?] | null>> = {
  invocations: ['counter', 'weft_shard_invocations_total', 'Invocations run (attempts included).'],
  failures: ['counter', 'weft_shard_failures_total', 'Invocation attempts that threw.'],
  retries: ['counter', 'weft_shard_retries_total', 'Invocation attempts retried after a failure.'],
  deadLetters: ['counter', 'weft_shard_dead_letters_total', 'Messages sent to weft/dead-letters.'],
  localSends: ['counter', 'weft_shard_local_sends_total', 'Messages sent by functions to an address of the same shard.'],
  remoteSends: ['counter', 'weft_shard_remote_sends_total', 'Messages sent by functions to another shard.'],
  egress: ['counter', 'weft_shard_egress_records_total', 'Egress records written by functions.'],
  replies: ['counter', 'weft_shard_replies_total', 'ctx.reply calls.'],
  timersFired: ['counter', 'weft_shard_timers_fired_total', 'Delayed messages delivered.'],
  idempotentDuplicates: ['counter', 'weft_shard_idempotent_duplicates_total', 'Host messages not applied because their idempotency key was applied within idempotencyRetentionMs.'],
  mailboxBacklog: ['gauge', 'weft_shard_mailbox_backlog', 'Messages waiting in mailboxes.'],
  parkedInvocations: ['gauge', 'weft_shard_parked_invocations', 'Async invocations awaiting.'],
  pendingTimers: ['gauge', 'weft_shard_pending_timers', 'Delayed messages not yet due.'],
  cacheInstances: ['gauge', 'weft_shard_cache_instances', 'Instances decoded in the cache.'],
  cacheHits: ['counter', 'weft_shard_cache_hits_total', 'Instance lookups served by the cache.'],
  cacheMisses: ['counter', 'weft_shard_cache_misses_total', 'Instance lookups read from the partition.'],
  cacheEvictions: ['counter', 'weft_shard_cache_evictions_total', 'Instances evicted from the cache.'],
  dirtyInstances: ['gauge', 'weft_shard_dirty_instances', 'Instances changed since the last snapshot.'],
  ringSpilledFrames: ['counter', 'weft_shard_ring_spilled_frames_total', 'Outbound frames that had to wait for room in a ring.'],
  ringSpillDepth: ['gauge', 'weft_shard_ring_spill_depth', 'Outbound frames waiting for room in a ring now.'],
  inboundRingFill: ['gauge', 'weft_shard_inbound_ring_fill', 'Fill of the fullest inbound ring.'],
  checkpoints: ['counter', 'weft_shard_checkpoints_total', 'Snapshots this shard took.'],
  lastCheckpointMs: ['gauge', 'weft_shard_last_checkpoint_seconds', 'Duration of the last snapshot.', 1e-3],
  lastCheckpointBytes: ['gauge', 'weft_shard_last_checkpoint_bytes', 'Bytes written by the last snapshot.'],
  checkpointBytesTotal: ['counter', 'weft_shard_checkpoint_bytes_total', 'Bytes written by snapshots.'],
  hostMessagesPending: ['gauge', 'weft_shard_host_messages_pending', 'Host messages received and not yet finished.'],
  turns: ['counter', 'weft_shard_turns_total', 'Turns of the shard loop.'],
  remoteRetries: ['counter', 'weft_shard_remote_retries_total', 'Remote (StateFun) call attempts retried.'],
  remotePaused: ['gauge', 'weft_shard_remote_paused', 'Addresses paused because their remote endpoint failed.'],
  latencySumMicros: null,
  gcPauses: ['counter', 'weft_shard_gc_pauses_total', "Garbage-collector pauses of the shard's thread."],
  gcPausesOver2Ms: ['counter', 'weft_shard_gc_pauses_over_2ms_total', 'Garbage-collector pauses longer than 2 ms.'],
  gcPauseTotalMs: ['counter', 'weft_shard_gc_pause_seconds_total', 'Time the shard spent in garbage-collector pauses.', 1e-3],
  gcPauseMaxMs: ['gauge', 'weft_shard_gc_pause_max_seconds', 'Longest garbage-collector pause since the shard started.', 1e-3],
  loopGapsOver2Ms: ['counter', 'weft_shard_loop_gaps_over_2ms_total', 'Gaps longer than 2 ms between two turns of the shard loop while it had work.'],
  loopGapsOver50Ms: ['counter', 'weft_shard_loop_gaps_over_50ms_total', 'Gaps longer than 50 ms between two turns of the shard loop while it had work.'],
  loopGapMaxMs: ['gauge', 'weft_shard_loop_gap_max_seconds', 'Longest gap between two turns of the shard loop since the shard started.', 1e-3],
};

/** Engine-wide figures: [type, name, help, value]. */
function engineFigures(m: WeftMetrics): Array<readonly ['counter' | 'gauge', string, string, number]> {
  return [
    ['counter', 'weft_host_messages_sent_total', 'Messages the host sent (send and request).', m.hostMessagesSent],
    ['gauge', 'weft_host_messages_uncommitted', 'Host messages accepted and not yet committed.', m.hostMessagesUncommitted],
    ['gauge', 'weft_requests_pending', 'request() calls waiting for their reply.', m.requestsPending],
    ['gauge', 'weft_egress_buffered', 'Committed egress records not yet acknowledged by the host.', m.egressBuffered],
    ['counter', 'weft_egress_dropped_total', 'Dead letters deleted unacknowledged past egressMaxBacklog (the only egress records weft drops).', m.egressDropped],
    ['counter', 'weft_egress_redelivered_total', 'Egress records handed to an iterator again after an earlier one ended without acknowledging them.', m.egressRedelivered],
    ['gauge', 'weft_egress_full', 'Egresses at egressMaxBacklog unacknowledged records not held by an iterator (host sends wait while any is, at most egressFullWaitMs).', m.egressFull],
    ['counter', 'weft_egress_over_backlog_total', 'Times host sends waited egressFullWaitMs for a full egress and went on (that egress may then hold more than egressMaxBacklog records).', m.egressOverBacklog],
    ['gauge', 'weft_committed_epoch', 'Epoch of the last committed checkpoint.', m.committedEpoch],
    ['counter', 'weft_checkpoints_committed_total', 'Checkpoints committed since start.', m.checkpointsCommitted],
    ['counter', 'weft_checkpoints_held_total', "Periodic checkpoints held for a request's reply (nothing the host waited for depended on them).", m.checkpointsHeld],
    ['counter', 'weft_checkpoints_held_to_limit_total', 'Held periodic checkpoints that started after one more interval without a reply that left no request in flight.', m.checkpointsHeldToLimit],
    ['counter', 'weft_recoveries_total', 'In-process recoveries since start.', m.recoveries],
    ['counter', 'weft_unexplained_failures_total', 'Recoveries no message explains (they count against the restart budget).', m.unexplainedFailures],
    ['counter', 'weft_poison_messages_total', 'Messages isolated because their invocation ended or stalled its shard.', m.poisonMessages],
    ['counter', 'weft_stalled_shards_total', 'Shards terminated because their event loop was blocked past invocationTimeoutMs.', m.stalledShards],
    ['counter', 'weft_late_context_calls_total', 'Context methods called after their invocation ended.', m.lateContextCalls],
    ['counter', 'weft_uncaught_errors_total', 'Errors thrown in shards outside any invocation.', m.uncaughtErrors],
    ['gauge', 'weft_messages_alive', 'Messages queued or in flight anywhere in the engine.', m.messagesAlive],
    ['gauge', 'weft_ingress_waiting', 'Host sends waiting for room (backpressure).', m.ingressWaiting],
    ['gauge', 'weft_ingress_spilled_frames', 'Frames main holds back because a ring to a shard is full.', m.ingressSpilledFrames],
    ['counter', 'weft_main_wakeups_total', "Times main's loop woke to read the shards' rings.", m.mainWakeups],
  ];
}

/** Prometheus text exposition format 0.0.4 of one metrics snapshot. */
export function toPrometheus(m: WeftMetrics): string {
  const lines: string[] = [];
  for (const name of METRICS) {
    const spec = SHARD_PROMETHEUS[name];
    if (spec === null) continue;
    const [kind, metric, help, scale = 1] = spec;
    lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} ${kind}`);
    for (const s of m.shards) lines.push(`${metric}{shard="${s.shard}"} ${s[name] * scale}`);
  }
  // One engine-wide histogram (the shards' buckets added up; metrics() keeps them per shard).
  const hist = 'weft_invocation_latency_seconds';
  lines.push(`# HELP ${hist} Invocation latency (sampled: every invocation up to 1024 per shard, then one in 16, weighted).`, `# TYPE ${hist} histogram`);
  const bounds = m.shards[0]?.latencyHistogram.map(([le]) => le) ?? [];
  let acc = 0;
  let sum = 0;
  for (let b = 0; b < bounds.length; b++) {
    for (const s of m.shards) acc += s.latencyHistogram[b]![1];
    lines.push(`${hist}_bucket{le="${bounds[b]! / 1e6}"} ${acc}`);
  }
  for (const s of m.shards) sum += s.latencySumMicros;
  lines.push(`${hist}_bucket{le="+Inf"} ${acc}`, `${hist}_sum ${sum / 1e6}`, `${hist}_count ${acc}`);
  for (const [kind, name, help, value] of engineFigures(m)) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${kind}`, `${name} ${value}`);
  return `${lines.join('\n')}\n`;
}
