/**
 * Rescaling: starting with another shard count re-partitions the data dir by key group.
 *
 * Every old partition is first brought to the last committed epoch (pending epochs folded or
 * dropped, as a recovery would), then each new shard's partition receives the key groups it owns
 * under the new layout — state and timers copied range by range, committed mailbox messages
 * re-routed to their target's new owner (per-address order is kept: an address's messages all
 * come from its one old owner, in order). The new partitions form a new generation
 * (`partitions-<layout+1>`) that becomes current in one durable metadata write; a crash before it
 * leaves the old generation in force and the new one is removed at the next start.
 */
import { rmSync } from 'node:fs';
import { keyGroupOf } from '../core/address.js';
import { Partition } from '../state/partition.js';
import { keyGroupRange, shardOfKeyGroup } from '../contract/partitioner.js';
import type { Envelope } from '../contract/envelope.js';
import type { Durability } from '../contract/options.js';
import { META_IDENTITY, type DataDir } from './data-dir.js';
import { recoverPartition } from './participant.js';
import { META_FOLDED_EPOCH, META_MAILBOX, META_TIMER_SEQ, encodeEnvelopes } from '../state/checkpoint-format.js';

export async function repartition(dir: DataDir, shards: number, durability: Durability): Promise<void> {
  const { shards: oldShards, layout, committedEpoch, keyGroups } = dir.info;
  const next = layout + 1;
  rmSync(dir.partitionsDir(next), { recursive: true, force: true });
  const olds: Partition[] = [];
  const news: Partition[] = [];
  try {
    const mailboxes: Envelope[][] = Array.from({ length: shards }, () => []);
    let timerSeq = 1;
    for (let s = 0; s < oldShards; s++) {
      // Verified when the data dir was opened.
      const p = await Partition.open(dir.partitionPath(s, layout), { durability, structureChecked: true });
      olds.push(p);
      const rec = await recoverPartition(p, committedEpoch);
      timerSeq = Math.max(timerSeq, rec.timerSeq);
      for (const env of rec.mailbox) {
        mailboxes[shardOfKeyGroup(keyGroupOf(env[1], env[2], keyGroups), shards, keyGroups)]!.push(env);
      }
    }
    for (let s = 0; s < shards; s++) {
      const p = await Partition.open(dir.partitionPath(s, next), { durability });
      news.push(p);
      const [start, end] = keyGroupRange(s, shards, keyGroups);
      const bySource = new Map<number, number[]>();
      for (let kg = start; kg < end; kg++) {
        const src = shardOfKeyGroup(kg, oldShards, keyGroups);
        let list = bySource.get(src);
        if (list === undefined) bySource.set(src, (list = []));
        list.push(kg);
      }
      for (const [src, kgs] of bySource) await p.copyKeyGroupsFrom(olds[src]!, kgs);
      await p.write((ops) => {
        ops.putMeta(META_IDENTITY, dir.identity(s, next, shards));
        ops.putMeta(META_MAILBOX, encodeEnvelopes(mailboxes[s]!));
        ops.putMeta(META_TIMER_SEQ, timerSeq);
        ops.putMeta(META_FOLDED_EPOCH, committedEpoch);
      });
    }
  } finally {
    for (const p of [...olds, ...news]) await p.close();
  }
  await dir.switchLayout(next, shards);
}
