/**
 * What main does with each record a shard sends it (shard→main rings): replies and query answers
 * go to the waiting requests, acks, barriers, egress records and durable replies to the commit
 * gate, DONE(epoch) to the checkpoint coordinator, compute calls to the compute pool.
 */
import type { NameTable } from '../transport/names.js';
import { WeftError, type SerializedError } from '../core/errors.js';
import type { Coordinator } from '../checkpoint/coordinator.js';
import { Kind } from '../contract/envelope.js';
import type { InstanceRecord } from '../state/instance.js';
import { FrameDecoder } from '../transport/framing.js';
import type { CommitGate } from './commit-gate.js';
import type { ComputeBridge } from './compute-bridge.js';
import type { Requests } from './requests.js';
import type { ShardLink } from './shard-link.js';

export class Inbound {
  readonly #links: readonly ShardLink[];
  readonly #gate: CommitGate;
  readonly #requests: Requests;
  readonly #coordinator: Coordinator;
  readonly #compute: ComputeBridge;
  readonly #names: NameTable;
  readonly #decoder = new FrameDecoder();

  constructor(links: readonly ShardLink[], gate: CommitGate, requests: Requests, coordinator: Coordinator, compute: ComputeBridge, names: NameTable) {
    this.#names = names;
    this.#links = links;
    this.#gate = gate;
    this.#requests = requests;
    this.#coordinator = coordinator;
    this.#compute = compute;
  }

  /** Handles one frame from shard `shard`: `bytes[start, end)`, read in place (a ring's memory). */
  onFrame(shard: number, bytes: Uint8Array, start: number, end: number): void {
    const link = this.#links[shard]!;
    const decoder = this.#decoder;
    const count = decoder.decodeAt(bytes, start, end);
    const records = decoder.records;
    for (let i = 0; i < count; i++) {
      const rec = records[i]!;
      switch (rec[0] as Kind) {
        case Kind.Reply: {
          const requestId = rec[1] as number;
          // A durable request's reply waits for the commit of the invocation that replied.
          // The typename may travel as its name-table index (shard-loop.ts).
          const typename = this.#names.resolve(rec[2]) as string;
          if (this.#requests.isDurable(requestId)) this.#gate.holdReply(link, requestId, typename, rec[3] as Uint8Array);
          else this.#requests.reply(requestId, typename, rec[3] as Uint8Array);
          break;
        }
        case Kind.ReplyError:
          this.#requests.replyError(rec[1] as number, rec[2] as SerializedError);
          break;
        case Kind.Egress:
          this.#gate.onEgress(link, rec[1] as string, this.#names.resolve(rec[2]) as string, rec[3] as Uint8Array);
          break;
        case Kind.Ack:
          this.#gate.onAck(link, rec[1] as number, rec[2] as number[] | undefined);
          break;
        case Kind.Barrier:
          this.#gate.onBarrier(link, rec[1] as number);
          break;
        case Kind.Done:
          this.#coordinator.onDone(shard, rec[1] as number, rec[2] as { bytes: number; states: number });
          break;
        case Kind.QueryResult:
          this.#requests.queryResult(rec[1] as number, rec[2] as InstanceRecord | null);
          break;
        case Kind.Compute:
          this.#compute.run(link, rec[1] as number, rec[2] as string, rec[3] as Uint8Array);
          break;
        default:
          throw new WeftError('ERR_WEFT_INTERNAL', `main: unexpected record kind ${String(rec[0])} from shard ${shard}`);
      }
    }
    decoder.release();
  }
}
