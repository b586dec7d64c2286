/**
 * A weft function module as Restate virtual objects (SDK `@restatedev/restate-sdk`, an optional
 * peer dependency). Each function type becomes one virtual object (named by ./names.ts) keyed
 * by the instance id, with one exclusive handler, `invoke`, taking one weft message. The
 * function code does not change: it runs on weft's own invocation context (./invocation.ts), and
 * this file maps the effects it buffered onto the Restate context:
 *
 * | weft | Restate |
 * |---|---|
 * | `ctx.now()` | `ctx.date.now()`, journaled once at the handler's start |
 * | `ctx.state` | declared values loaded with `ctx.get` at the start; writes buffered; `ctx.set`/`ctx.clear` at the end |
 * | the function body (with `ctx.compute`) | one `ctx.run` (journaled; a replay reuses its result), retried `maxAttempts` times |
 * | `ctx.send` | `ctx.genericSend` to the target's object |
 * | `ctx.sendAfter` / `ctx.cancelDelayed` | `genericSend` with `delay`; token → invocation id in object state; `ctx.cancel(id)` |
 * | `ctx.egress`, dead letters | the `egress` sink, each record in its own `ctx.run` (at-least-once) |
 * | `ctx.reply` | the handler's result (host requests), or a send to the calling function |
 */
import { createServer, type Http2Server, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type * as RestateSdk from '@restatedev/restate-sdk';
import type { Address } from '../core/address.js';
import { WeftError, describe } from '../core/errors.js';
import { isModuleDefinition, type ModuleDefinition } from '../module/definition.js';
import { DEFAULTS } from '../contract/options.js';
import { compileModule, DEAD_LETTER_EGRESS, loadModule, type CompiledFunction, type RuntimeModule } from '../module/runtime.js';
import { computeTask } from '../module/compute-task.js';
import {
  META_KEY,
  decodeEffects,
  decodeMeta,
  decodeValue,
  decodeWireMessage,
  encodeEffects,
  encodeMeta,
  encodeReply,
  encodeWireMessage,
  isPendingToken,
  planCommit,
  runInvocation,
  type EffectsRecord,
  type LoadedState,
  type WireMessage,
} from './invocation.js';
import { HANDLER, restateNames } from './names.js';
import { loadPeer } from './peer.js';

type Sdk = typeof RestateSdk;

/** One record for the egress sink: a function's `ctx.egress`, or a dead letter. */
export interface RestateEgressRecord {
  /** The egress name (`weft/dead-letters` for dead letters). */
  readonly egress: string;
  /** The function instance that produced it. */
  readonly source: Address;
  readonly typename: string;
  /** The value decoded with the module's types (a dead letter: `{ target, caller, typename, value, error, attempts, at }`). */
  readonly value: unknown;
  /** The encoded bytes, as weft's types wrote them. */
  readonly payload: Uint8Array;
}

/** Options of {@link restateObjects} and {@link serveRestate}. */
export interface RestateEndpointOptions {
  /**
   * Receives every egress record and dead letter. Runs inside `ctx.run`: at-least-once (a record
   * whose run was not yet journaled when the endpoint or server failed is delivered again), so make
   * it idempotent, or deduplicate downstream. A throw is retried by Restate with backoff.
   */
  readonly egress: (record: RestateEgressRecord) => void | Promise<void>;
  /** Explicit Restate names for function types (see the README's name mapping). */
  readonly serviceNames?: Readonly<Record<string, string>>;
  /** Attempts of a throwing invocation before it is dead-lettered. Default 3 (as the engine). */
  readonly maxAttempts?: number;
  /** First retry backoff (ms), doubling each attempt. Default 10 (as the engine). */
  readonly retryBackoffMs?: number;
  /** Largest encoded message value (bytes). Default 512 KiB. */
  readonly maxMessageBytes?: number;
  /** Largest encoded state value (bytes). Default 1 MiB. */
  readonly maxStateValueBytes?: number;
  /** Runs `ctx.compute(task, input)`. Default: the module's compute file, in-process. */
  readonly compute?: (task: string, input: unknown) => Promise<unknown>;
}

interface Resolved {
  readonly egress: (record: RestateEgressRecord) => void | Promise<void>;
  readonly serviceNames: Readonly<Record<string, string>> | undefined;
  readonly maxAttempts: number;
  readonly retryBackoffMs: number;
  readonly maxMessageBytes: number;
  readonly maxStateValueBytes: number;
  readonly compute: ((task: string, input: unknown) => Promise<unknown>) | undefined;
}

const KNOWN = ['egress', 'serviceNames', 'maxAttempts', 'retryBackoffMs', 'maxMessageBytes', 'maxStateValueBytes', 'compute'];

function intOption(o: Record<string, unknown>, name: string, dflt: number, min: number): number {
  const v = o[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `weft/restate options.${name} must be an integer of at least ${min} (got ${describe(v)})`);
  }
  return v;
}

function resolveOptions(options: unknown, extra: readonly string[]): Resolved {
  if (typeof options !== 'object' || options === null) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `weft/restate options must be an object with at least an egress sink (got ${describe(options)})`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.includes(key) && !extra.includes(key)) throw new WeftError('ERR_WEFT_INVALID_OPTION', `weft/restate options has an unknown key ${describe(key)}`);
  }
  if (typeof o.egress !== 'function') {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `weft/restate options.egress must be a function receiving egress records and dead letters (got ${describe(o.egress)})`);
  }
  if (o.compute !== undefined && typeof o.compute !== 'function') {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `weft/restate options.compute must be a function (got ${describe(o.compute)})`);
  }
  return {
    egress: o.egress as Resolved['egress'],
    serviceNames: o.serviceNames as Resolved['serviceNames'],
    maxAttempts: intOption(o, 'maxAttempts', DEFAULTS.maxAttempts, 1),
    retryBackoffMs: intOption(o, 'retryBackoffMs', DEFAULTS.retryBackoffMs, 0),
    maxMessageBytes: intOption(o, 'maxMessageBytes', DEFAULTS.maxMessageBytes, 1),
    maxStateValueBytes: intOption(o, 'maxStateValueBytes', DEFAULTS.maxStateValueBytes, 1),
    compute: o.compute as Resolved['compute'],
  };
}

async function moduleOf(module: ModuleDefinition | URL | string): Promise<ModuleDefinition> {
  if (isModuleDefinition(module)) return module;
  if (module instanceof URL) return loadModule(module.href);
  if (typeof module === 'string') return loadModule(module.startsWith('file:') ? module : new URL(module, `file://${process.cwd()}/`).href);
  throw new WeftError('ERR_WEFT_INVALID_MODULE', `weft/restate: module must be a defineModule() value, a file: URL or a path (got ${describe(module)})`);
}

function inProcessCompute(url: URL | undefined): (task: string, input: unknown) => Promise<unknown> {
  let tasks: Promise<Record<string, unknown>> | undefined;
  return async (task, input) => {
    if (url === undefined) throw new WeftError('ERR_WEFT_COMPUTE', `ctx.compute(${describe(task)}): the module declares no compute file`);
    tasks ??= import(url.href) as Promise<Record<string, unknown>>;
    return computeTask(await tasks, task)(input);
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : describe(err);
}

/** Builds the virtual object of one function type. */
function objectFor(sdk: Sdk, runtime: RuntimeModule, fn: CompiledFunction, names: ReadonlyMap<string, string>, opts: Resolved, compute: (task: string, input: unknown) => Promise<unknown>) {
  const binary = sdk.serde.binary;
  const type = fn.typename;
  const limits = { maxMessageBytes: opts.maxMessageBytes, maxStateValueBytes: opts.maxStateValueBytes };
  const none = new Uint8Array(0);

  const sendTo = (ctx: RestateSdk.ObjectContext, to: Address, msg: WireMessage, delayMs?: number): RestateSdk.InvocationHandle => {
    const service = names.get(to.type);
    if (service === undefined) throw new sdk.TerminalError(`weft/restate: no Restate object serves function type ${describe(to.type)}`);
    return ctx.genericSend({
      service,
      method: HANDLER,
      key: to.id,
      parameter: encodeWireMessage(msg),
      inputSerde: binary,
      ...(delayMs === undefined ? {} : { delay: delayMs }),
    });
  };

  const sink = (ctx: RestateSdk.ObjectContext, what: string, record: RestateEgressRecord): Promise<Uint8Array> =>
    ctx.run(
      what,
      async () => {
        await opts.egress(record);
        return none;
      },
      { serde: binary },
    );

  const invoke = async (ctx: RestateSdk.ObjectContext, input: Uint8Array): Promise<Uint8Array> => {
    let msg: WireMessage;
    try {
      msg = decodeWireMessage(input);
    } catch (err) {
      throw new sdk.TerminalError(errorText(err));
    }
    const self: Address = Object.freeze({ type, id: ctx.key });
    const now = await ctx.date.now();
    const values = new Map<string, Uint8Array>();
    for (const spec of fn.specs) {
      const bytes = await ctx.get<Uint8Array>(spec.name, binary);
      if (bytes !== null) values.set(spec.name, bytes);
    }
    const storedMeta = await ctx.get<Uint8Array>(META_KEY, binary);
    const loaded: LoadedState = { values, meta: decodeMeta(storedMeta) };

    let fx: EffectsRecord;
    try {
      const bytes = await ctx.run('weft invocation', async () => encodeEffects(await runInvocation(runtime, fn, self, loaded, msg, now, limits, compute)), {
        serde: binary,
        maxRetryAttempts: opts.maxAttempts,
        initialRetryInterval: Math.max(1, opts.retryBackoffMs),
        retryIntervalFactor: 2,
      });
      fx = decodeEffects(bytes);
    } catch (err) {
      if (!(err instanceof sdk.TerminalError)) throw err;
      // Every attempt threw: the message goes to the dead letters, and a host request hears why.
      const error = { name: 'WeftError', code: 'ERR_WEFT_USER_CODE', message: err.message };
      const letter = {
        target: self,
        caller: msg.caller,
        typename: msg.typename,
        value: decodeValue(runtime, msg.typename, msg.payload),
        error,
        attempts: opts.maxAttempts,
        at: now,
      };
      const t = runtime.defaultType;
      await sink(ctx, 'weft dead letter', { egress: DEAD_LETTER_EGRESS, source: self, typename: t.typename, value: letter, payload: t.encode(letter) });
      throw new sdk.TerminalError(`function ${type} (id ${describe(self.id)}) failed ${opts.maxAttempts} times: ${err.message}`);
    }

    const plan = planCommit(fn, loaded, fx.writes, now);
    for (const [name, bytes] of plan.puts) ctx.set(name, bytes, binary);
    for (const name of plan.clears) ctx.clear(name);
    for (const [to, id, typename, payload] of fx.sends) sendTo(ctx, { type: to, id }, { typename, payload, caller: self });
    const meta = plan.meta;
    for (const [delayMs, to, id, typename, payload, token] of fx.timers) {
      if (to === null) {
        const pending = meta.t[token as string];
        if (pending !== undefined && isPendingToken(meta, token as string, now)) ctx.cancel(sdk.InvocationIdParser.fromString(pending[0]));
        delete meta.t[token as string];
        continue;
      }
      const handle = sendTo(ctx, { type: to, id }, { typename, payload, caller: self }, delayMs);
      if (token !== null) meta.t[token] = [await handle.invocationId, now + delayMs];
    }
    const metaBytes = encodeMeta(meta);
    if (metaBytes !== null) ctx.set(META_KEY, metaBytes, binary);
    else if (storedMeta !== null) ctx.clear(META_KEY);
    for (const [name, typename, payload] of fx.egress) {
      await sink(ctx, `weft egress ${name}`, { egress: name, source: self, typename, value: decodeValue(runtime, typename, payload), payload });
    }
    if (fx.reply === null) return none;
    if (msg.caller === null) return encodeReply(fx.reply);
    // A function called: the reply is a message to it (dropped when no object serves its type).
    if (names.has(msg.caller.type)) sendTo(ctx, msg.caller, { typename: fx.reply[0], payload: fx.reply[1], caller: self });
    return none;
  };

  const name = names.get(type) as string;
  return sdk.object({
    name,
    handlers: { [HANDLER]: sdk.handlers.object.exclusive({ input: binary, output: binary }, invoke) },
  });
}

/**
 * The module's function types as Restate virtual objects, to bind to an endpoint of your own
 * (`restate.endpoint().bind(...)`, `createEndpointHandler({ services })`).
 */
export async function restateObjects(module: ModuleDefinition | URL | string, options: RestateEndpointOptions): Promise<RestateSdk.VirtualObjectDefinition<string, unknown>[]> {
  return build(module, resolveOptions(options, []));
}

async function build(module: ModuleDefinition | URL | string, opts: Resolved): Promise<RestateSdk.VirtualObjectDefinition<string, unknown>[]> {
  const sdk = await loadPeer<Sdk>('@restatedev/restate-sdk', 'weft/restate');
  const def = await moduleOf(module);
  const runtime = compileModule(def);
  const names = restateNames(runtime.functions.keys(), opts.serviceNames, 'weft/restate');
  const compute = opts.compute ?? inProcessCompute(def.compute);
  return [...runtime.functions.values()].map((fn) => objectFor(sdk, runtime, fn, names, opts, compute) as unknown as RestateSdk.VirtualObjectDefinition<string, unknown>);
}

/** A running Restate endpoint serving a weft module (HTTP/2, what the Restate server expects). */
export interface RestateServer {
  /** The port it listens on. */
  readonly port: number;
  /** The URL to register with the Restate server (`POST /deployments { uri }` on its admin API). */
  readonly url: string;
  /** Stops accepting connections and closes open ones. */
  close(): Promise<void>;
}

/** Options of {@link serveRestate}: the endpoint's, plus where to listen. */
export interface ServeRestateOptions extends RestateEndpointOptions {
  /** TCP port; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Address to bind. Default 127.0.0.1. */
  readonly host?: string;
  /**
   * Request identity public keys (`publickeyv1_...`) of the Restate servers allowed to call; with
   * none, any caller that reaches the port can invoke the functions (the SDK warns once).
   */
  readonly identityKeys?: readonly string[];
  /**
   * Receives the SDK's warnings and errors (an invocation failing an attempt, ...). Default:
   * `console.error`. The SDK's per-invocation info lines are not passed on.
   */
  readonly log?: (level: 'warn' | 'error', message: string) => void;
}

function formatLog(message: unknown, rest: unknown[]): string {
  return [message, ...rest].map((m) => (m instanceof Error ? (m.stack ?? m.message) : typeof m === 'string' ? m : describe(m))).join(' ');
}

/** Serves a weft module as Restate virtual objects over HTTP/2 (h2c). */
export async function serveRestate(module: ModuleDefinition | URL | string, options: ServeRestateOptions): Promise<RestateServer> {
  const opts = resolveOptions(options, ['port', 'host', 'identityKeys', 'log']);
  const log = options.log ?? ((level: string, message: string) => console.error(`[weft/restate] ${level}: ${message}`));
  if (typeof log !== 'function') throw new WeftError('ERR_WEFT_INVALID_OPTION', `serveRestate options.log must be a function (got ${describe(log)})`);
  const identityKeys = options.identityKeys;
  if (identityKeys !== undefined && (!Array.isArray(identityKeys) || identityKeys.some((k) => typeof k !== 'string'))) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `serveRestate options.identityKeys must be an array of strings (got ${describe(identityKeys)})`);
  }
  const port = options.port ?? 0;
  const host = options.host ?? '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new WeftError('ERR_WEFT_INVALID_OPTION', `serveRestate options.port must be an integer from 0 to 65535 (got ${describe(port)})`);
  if (typeof host !== 'string' || host === '') throw new WeftError('ERR_WEFT_INVALID_OPTION', `serveRestate options.host must be a non-empty string (got ${describe(host)})`);
  const services = await build(module, opts);
  const sdk = await loadPeer<Sdk>('@restatedev/restate-sdk', 'weft/restate');
  const handler = sdk.createEndpointHandler({
    services,
    ...(identityKeys === undefined || identityKeys.length === 0 ? {} : { identityKeys: [...identityKeys] }),
    logger: (meta, message, ...rest) => {
      const level = String(meta.level).toLowerCase();
      if (level === 'warn' || level === 'error') log(level, formatLog(message, rest));
    },
  });
  const server: Http2Server = createServer(handler);
  const sessions = new Set<Http2Session>();
  server.on('session', (s: Http2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    port: bound,
    url: `http://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.destroy();
      }),
  };
}

