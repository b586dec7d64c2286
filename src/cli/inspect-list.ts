/**
 * `weft inspect --list <dataDir> --type <t>`: the instances of a function type in a data dir's
 * last committed checkpoint, streamed in id order — the same listing as `weft.instances`
 * (src/state/listing.ts), read from another process.
 *
 * Read-only like the rest of inspect (no lock taken, nothing written) and safe next to a live
 * engine. Consistency across shards from outside the engine's process: the committed epoch is
 * read from meta before and after one read snapshot per partition is taken; if it moved (a
 * checkpoint committed in between, so a shard might already have folded a newer epoch), the
 * snapshots are taken again. When the committed epoch is the same before and after, no shard
 * can have folded a later epoch, and every snapshot shows the state of that epoch.
 */
import { statSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WeftError, describe } from '../core/errors.js';
import { isValidTypename } from '../core/address.js';
import { shardOfKeyGroup } from '../contract/partitioner.js';
import { compileModule, loadModule, type RuntimeModule } from '../module/runtime.js';
import { Partition, type PartitionSnapshot } from '../state/partition.js';
import { listCommitted, moduleStateReader, resolveInstancesArgs, type CommittedView, type ResolvedInstancesOptions, type StateReader } from '../state/listing.js';
import { EXIT_OK, UsageError, numberFlag, parse, write, type CliContext } from './command.js';

export const LIST_HELP = `Usage: weft inspect --list <dataDir> --type <namespace>/<name> [--prefix P] [--after ID] [--limit N] [--module PATH [--with-state]] [--json]

Lists the ids of the instances of one function type in the data dir's last committed checkpoint,
in id order across all shards (streamed: a million ids are not held in memory). Changes after
that checkpoint are not listed; deleted instances are absent.

Options:
  --type T           the function type (required)
  --prefix P         only ids starting with P
  --after ID         only ids after ID (to resume where a page ended)
  --limit N          at most N ids
  --module PATH      the function module: values past their TTL (and undeclared state names) then
                     count as absent, as weft.query shows them; without it every stored instance
                     is listed
  --with-state       print each instance's state too (needs --module)
  --json             one JSON object per line: {"id": ..., "state": ...}

Text output is one id per line; an id holding control characters or leading/trailing spaces is
printed as a JSON string.`;

/** Times the committed epoch may move while the snapshots are taken before giving up. */
const SNAPSHOT_ATTEMPTS = 50;

function moduleUrl(raw: string): string {
  return raw.startsWith('file:') ? raw : pathToFileURL(resolvePath(raw)).href;
}

function openReadOnly(path: string): Promise<Partition> {
  return Partition.open(path, { durability: 'process', readOnly: true });
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A view of every shard's partition at one committed epoch (see the module comment). */
async function committedView(dir: string, opened: Partition[]): Promise<CommittedView> {
  if (!exists(dir)) throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(dir)} does not exist`);
  if (!exists(join(dir, 'meta'))) throw new WeftError('ERR_WEFT_DATA_DIR', `${describe(dir)} is not a weft data dir (it has no meta/ directory)`);
  const meta = await openReadOnly(join(dir, 'meta'));
  opened.push(meta);
  if (typeof meta.getMeta('format') !== 'number') throw new WeftError('ERR_WEFT_DATA_DIR', `${describe(dir)} is not an initialised weft data dir (meta has no format version)`);
  const keyGroups = meta.getMeta('keyGroups') as number;
  const shards = meta.getMeta('shards') as number;
  const layout = meta.getMeta('layout') as number;
  const partitions: Array<Partition | undefined> = [];
  for (let s = 0; s < shards; s++) {
    const path = join(dir, `partitions-${layout}`, `shard-${s}`);
    // A shard that never started wrote nothing: it holds no instances.
    const p = exists(path) ? await openReadOnly(path) : undefined;
    if (p !== undefined) opened.push(p);
    partitions.push(p);
  }
  const committed = (): number => {
    meta.refresh();
    return (meta.getMeta('committedEpoch') as number | undefined) ?? 0;
  };
  for (let attempt = 0; attempt < SNAPSHOT_ATTEMPTS; attempt++) {
    const before = committed();
    const snapshots: Array<PartitionSnapshot | undefined> = partitions.map((p) => p?.snapshot());
    if (committed() === before) {
      return { snapshots, committedEpoch: before, keyGroups, shardOf: (kg) => shardOfKeyGroup(kg, shards, keyGroups) };
    }
    for (const s of snapshots) s?.release();
  }
  throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(dir)}: the committed epoch moved during each of ${SNAPSHOT_ATTEMPTS} attempts to take a consistent snapshot`);
}

/** How an id is printed in text mode: as is, or as a JSON string when it could be misread. */
function printable(id: string): string {
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|^\s|\s$|^"/.test(id) ? JSON.stringify(id) : id;
}

function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Writes `text`, waiting for the stream to drain when it asks to (a large listing into a pipe). */
function writeChunk(stream: NodeJS.WritableStream, text: string): Promise<void> | undefined {
  if (stream.write(text)) return undefined;
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

/** Runs `weft inspect --list ...` (the arguments include `--list`). */
export async function runList(args: string[], ctx: CliContext): Promise<number> {
  const p = parse(
    'inspect',
    args,
    {
      list: { type: 'boolean' },
      type: { type: 'string' },
      prefix: { type: 'string' },
      after: { type: 'string' },
      limit: { type: 'string' },
      module: { type: 'string' },
      'with-state': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    1,
  );
  if (p.help) {
    write(ctx.stdout, LIST_HELP);
    return EXIT_OK;
  }
  const dirArg = p.positionals[0];
  if (dirArg === undefined) throw new UsageError('weft inspect: missing <dataDir>');
  const type = p.values.type;
  if (typeof type !== 'string') throw new UsageError('weft inspect: --list needs --type <namespace>/<name>');
  if (!isValidTypename(type)) throw new UsageError(`weft inspect: --type must be a function typename "<namespace>/<name>" (got ${JSON.stringify(type)})`);
  const withState = p.values['with-state'] === true;
  const modulePath = p.values.module as string | undefined;
  if (withState && modulePath === undefined) throw new UsageError('weft inspect: --with-state needs --module <path> to decode the state with');
  const limit = numberFlag('inspect', 'limit', p.values.limit, Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER, true);
  let module: RuntimeModule | undefined;
  if (modulePath !== undefined) module = compileModule(await loadModule(moduleUrl(modulePath)));
  const raw = { prefix: p.values.prefix, after: p.values.after, limit, withState };
  let opts: ResolvedInstancesOptions;
  if (module !== undefined) opts = resolveInstancesArgs(module, type, raw, 'weft inspect --list');
  else {
    // Without a module any well-formed type may be listed: the same option checks, against a module that knows it.
    const anyType = { isKnownFunction: () => true } as unknown as RuntimeModule;
    opts = resolveInstancesArgs(anyType, type, raw, 'weft inspect --list');
  }
  const read: StateReader = module !== undefined ? moduleStateReader(module, Date.now()) : () => ({});
  const json = p.values.json === true;

  const opened: Partition[] = [];
  try {
    const view = await committedView(resolvePath(dirArg), opened);
    let buffer = '';
    for (const { id, state } of listCommitted(view, type, opts, read)) {
      if (ctx.signal.aborted) break;
      if (json) buffer += `${JSON.stringify(withState ? { id, state } : { id }, jsonValue)}\n`;
      else buffer += withState ? `${printable(id)}\t${JSON.stringify(state, jsonValue)}\n` : `${printable(id)}\n`;
      if (buffer.length >= 65_536) {
        const drained = writeChunk(ctx.stdout, buffer);
        buffer = '';
        if (drained !== undefined) await drained;
      }
    }
    if (buffer.length > 0) await writeChunk(ctx.stdout, buffer);
    for (const s of view.snapshots) s?.release();
  } finally {
    for (const part of opened.reverse()) await part.close();
  }
  return EXIT_OK;
}
