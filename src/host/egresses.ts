/**
 * The engine's egresses: one {@link EgressChannel} per declared egress, over the data dir's
 * egress store. The commit gate hands each channel its committed records; host iterators read
 * them (`weft.egress(name)`); a channel at its backlog bound holds host sends back through the
 * router.
 */
import { WeftError, describe } from '../core/errors.js';
import { DEAD_LETTER_EGRESS, type RuntimeModule } from '../module/runtime.js';
import { decodeEgressValue } from './decode.js';
import { EgressChannel, type EgressIteratorOptions, type EgressRecord, type EgressStore } from './egress.js';
import type { Lifecycle } from './lifecycle.js';
import type { Router } from './router.js';

export class Egresses {
  readonly #module: RuntimeModule;
  readonly #store: EgressStore;
  readonly #maxBacklog: number;
  readonly #router: Router;
  readonly #life: Lifecycle;
  readonly #channels = new Map<string, EgressChannel>();

  constructor(module: RuntimeModule, store: EgressStore, maxBacklog: number, router: Router, life: Lifecycle) {
    this.#module = module;
    this.#store = store;
    this.#maxBacklog = maxBacklog;
    this.#router = router;
    this.#life = life;
    for (const name of module.egresses) this.channel(name);
  }

  /** An iterator of egress `name` (see Weft.egress), after checking the arguments. */
  iterator(name: string, options: EgressIteratorOptions | undefined): AsyncIterableIterator<EgressRecord> {
    if (typeof name !== 'string' || !this.#module.egresses.has(name)) {
      throw new WeftError('ERR_WEFT_UNKNOWN_EGRESS', `weft.egress: egress ${describe(name)} is not declared in the module's egresses`);
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.egress options must be an object (got ${describe(options)})`);
    }
    if (options?.autoAck !== undefined && typeof options.autoAck !== 'boolean') {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.egress autoAck must be a boolean (got ${describe(options.autoAck)})`);
    }
    return this.channel(name).iterator(options);
  }

  channel(name: string): EgressChannel {
    let ch = this.#channels.get(name);
    if (ch === undefined) {
      ch = new EgressChannel(name, this.#store, {
        maxBacklog: this.#maxBacklog,
        dropOldest: name === DEAD_LETTER_EGRESS,
        decode: (typename, payload) => decodeEgressValue(this.#module, name, typename, payload),
        onFull: (full, channel) => this.#router.egressFullChanged(full, channel),
      });
      this.#channels.set(name, ch);
      if (this.#life.closed) ch.end();
    }
    return ch;
  }

  /** Summed over the egresses: see WeftMetrics egressBuffered, egressDropped, egressRedelivered. */
  figures(): { egressBuffered: number; egressDropped: number; egressRedelivered: number } {
    let egressBuffered = 0;
    let egressDropped = 0;
    let egressRedelivered = 0;
    for (const ch of this.#channels.values()) {
      egressBuffered += ch.backlog;
      egressDropped += ch.dropped;
      egressRedelivered += ch.redelivered;
    }
    return { egressBuffered, egressDropped, egressRedelivered };
  }

  /** The engine closed: iterators end once they have taken what they hold. */
  end(): void {
    for (const ch of this.#channels.values()) ch.end();
  }
}
