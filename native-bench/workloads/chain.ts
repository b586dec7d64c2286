/**
 * Workload (b): function → function chains across shards. The host starts one chain at each of
 * the 10,000 ids of the hop ring (ids.ts), each message carrying the hops left; every hop
 * updates the instance's counter and sends to the successor, which lives on the other shard.
 * The figure counts function-sent messages (chains × hops) per second until `weft.idle()`.
 * weft: 2 shards, checkpoints every 50 ms (the chains cross many barriers, so in-flight
 * messages are recorded into snapshots, as they would be in production).
 */
import type { Address } from '../../src/index.js';
import { BASELINE_THREADS, baselines } from '../lib/baselines.js';
import { startEngine, sumShards } from '../lib/engine.js';
import { load1 } from '../lib/machine.js';
import { measured, medianOf, type RunFigures } from '../lib/measure.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { HOP } from '../modules/chain.js';
import { CHAIN_IDS, CHAIN_SHARDS_ENV, hopRing } from '../modules/ids.js';
import { cpuFigures } from './fire.js';

const SHARDS = 2;

export async function runChain(ctx: BenchContext): Promise<WorkloadResult> {
  const load0 = load1();
  // Full: 10k chains x 100 hops = 1M fn->fn messages per run, 5 runs; quick: x 30 hops, 3 runs.
  // Hops stay below 128 so every value is a one-byte msgpack fixint, as in the baselines.
  const hops = ctx.quick ? 30 : 100;
  const runs = ctx.quick ? 3 : 5;
  const ring = hopRing(HOP, CHAIN_IDS, SHARDS);
  const starts: Address[] = ring.map((id) => ({ type: HOP, id }));
  const messages = ring.length * hops;
  const b = ctx.baselines ? await baselines() : undefined;
  process.env[CHAIN_SHARDS_ENV] = String(SHARDS);
  const engine = await startEngine('chain', { module: 'chain', shards: SHARDS, checkpointIntervalMs: 50 });
  const weft = engine.weft;
  const go = async (h: number): Promise<number> => {
    const acks = new Set<Promise<void>>();
    const t0 = performance.now();
    for (const a of starts) acks.add(weft.send(a, h));
    await weft.idle();
    const processedMs = performance.now() - t0;
    await Promise.all(acks);
    return processedMs;
  };
  await go(10);
  if (b !== undefined) {
    b.inProcess.chains(ring, 10);
    await b.post.chains(ring, 10);
    await b.ring.chains(ring, 10);
  }
  const weftRuns: RunFigures[] = [];
  const inProc: RunFigures[] = [];
  const post: RunFigures[] = [];
  const raw: RunFigures[] = [];
  const remote0 = sumShards(weft, 'remoteSends');
  const local0 = sumShards(weft, 'localSends');
  for (let r = 0; r < runs; r++) {
    if (b !== undefined) {
      inProc.push(await measured(messages, () => b.inProcess.chains(ring, hops)));
      post.push(await measured(messages, () => b.post.chains(ring, hops)));
      raw.push(await measured(messages, () => b.ring.chains(ring, hops)));
    }
    weftRuns.push(await measured(messages, () => go(hops)));
    const last = (xs: RunFigures[]): number => Math.round((xs.at(-1) as RunFigures).rate);
    ctx.log(`(b) run ${r + 1}/${runs}: weft ${last(weftRuns)} fn->fn msg/s` + (b === undefined ? '' : `, in-proc ${last(inProc)}, post ${last(post)}, ring ${last(raw)}`));
  }
  const remote = sumShards(weft, 'remoteSends') - remote0;
  const local = sumShards(weft, 'localSends') - local0;
  await engine.close();
  const rate = (xs: RunFigures[]): number => medianOf(xs, (x) => x.rate);
  const rates = (xs: RunFigures[]): number[] => xs.map((x) => x.rate);
  const v = rate(weftRuns);
  const figures: Figure[] = [
    {
      key: 'b.fnToFn',
      label: 'weft 2 shards, fn->fn messages (idle)',
      value: v,
      unit: 'msg/s',
      runs: rates(weftRuns),
      ratios: b === undefined ? undefined : { inProcess: v / rate(inProc), postMessage: v / rate(post), rawRing: v / rate(raw) },
      target: { kind: 'min', bound: 1_500_000, text: '>= 1.5M msg/s' },
    },
    ...cpuFigures('b.weft', 'weft', weftRuns, 'shard'),
    { key: 'b.remoteShare', label: 'share of sends that crossed shards', value: remote / Math.max(1, remote + local), unit: 'ratio' },
  ];
  if (b !== undefined) {
    figures.push(
      { key: 'b.inProcess', label: 'baseline: in-process dispatcher, 1 thread', value: rate(inProc), unit: 'msg/s', runs: rates(inProc) },
      { key: 'b.postMessage', label: `baseline: postMessage actors, ${BASELINE_THREADS} threads`, value: rate(post), unit: 'msg/s', runs: rates(post) },
      ...cpuFigures('b.post', 'postMessage', post, 'post-worker'),
      { key: 'b.rawRing', label: `baseline: raw ring, ${BASELINE_THREADS} threads`, value: rate(raw), unit: 'msg/s', runs: rates(raw) },
      ...cpuFigures('b.ring', 'raw ring', raw, 'ring-worker'),
    );
  }
  return {
    id: 'b',
    title: `fn -> fn chains across shards (${ring.length} chains x ${hops} hops)`,
    figures,
    setup: `${messages} fn->fn messages per run, ${runs} runs (median), one warm-up run of 10 hops; weft: ${SHARDS} shards, checkpointIntervalMs 50, durability 'process'`,
    notMeasured: 'host ingress (10k start messages only), acknowledgements (the figure stops at idle), same-shard sends (every hop crosses), payloads bigger than 1 byte',
    load: [load0, load1()],
    extra: { remoteSends: remote, localSends: local, startMs: engine.startMs },
  };
}
