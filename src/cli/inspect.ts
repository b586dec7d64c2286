/**
 * `weft inspect <dataDir>`: what a data dir holds — format, key groups, shards, layout, the
 * committed epoch and checkpoint history, each partition's key groups and counts — and, with
 * `--address`, one instance's committed state. With `--verify`, the checks a start runs on the
 * dir (data-dir.ts `verifyLayout`): exit 0 with a one-line summary, or 1 with what is damaged.
 *
 * Read-only, and allowed while an engine runs. Inspect never takes the data dir's LOCK (even
 * briefly: an engine starting at that moment would be refused) and never writes: meta and
 * partitions are opened with LMDB's read-only flag. Whether an engine holds the lock is read from
 * the kernel's lock table (/proc/locks, Linux); the holder's pid from the lock file's note. LMDB
 * readers never block the writer and each read sees a committed transaction, so a running engine
 * is safe; the only cost is that lines may come from different moments (a checkpoint may commit
 * between reading meta and reading a partition). The report says when the lock is held by a live
 * process. Recovery work (folding committed pending epochs into the base) is NOT done here — that
 * would write — so an instance's state is computed the way recovery would: the partition base,
 * then the pending epochs up to the committed one, in order.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect as inspectValue } from 'node:util';
import { keyGroupOf, validateAddress, type Address } from '../core/address.js';
import { readDirMeta, verifyLayout, type CheckpointInfo } from '../checkpoint/data-dir.js';
import { lockNote } from '../checkpoint/dir-lock.js';
import { META_FOLDED_EPOCH, META_MAILBOX, PendingKind, decodeEnvelopes, decodeStates } from '../state/checkpoint-format.js';
import { WeftError, describe } from '../core/errors.js';
import { keyGroupRange, shardOfKeyGroup } from '../contract/partitioner.js';
import { compileModule, loadModule, type RuntimeModule } from '../module/runtime.js';
import { decodeRecord } from '../state/instance.js';
import { isExpired } from '../core/ttl.js';
import { Partition, lmdbFileProblem, lmdbTreeProblem } from '../state/partition.js';
import { EXIT_OK, UsageError, numberFlag, parse, write, type CliContext, type Command } from './command.js';
import { bytes, int, table } from './format.js';
import { LIST_HELP, runList } from './inspect-list.js';

const HELP = `Usage: weft inspect <dataDir> [--address <namespace>/<name>/<id>] [--module <path>] [--json]
       weft inspect --verify <dataDir>

Prints what a data dir holds: format version, key groups, shards, partition layout, the committed
epoch, the checkpoint history (epoch, time, bytes, ms) and each partition's key groups and counts
(states, timers, pending epochs, recovered mailbox). With --address, one instance's committed
state: per slot its bytes and write time, decoded when --module names the function module.

Read-only: inspect never writes and never takes the data dir's lock, so it may run while an
engine uses the dir (it then says so; lines may then come from different moments).

 With --verify, runs the checks an engine runs at start — meta and every partition of the
current layout present, readable and writable, sizes and page structure consistent with LMDB's
meta pages, each partition's identity and last epoch agreeing with meta — and exits 0 with a
one-line "ok" summary, or 1 with ERR_WEFT_DATA_DIR naming the file and what is wrong.

Options:
  --verify           verify the data dir (exit code 0: ok, 1: damaged)
  --address A        an instance, as <namespace>/<name>/<id> (the id may contain "/")
  --module PATH      the function module (file path or file: URL) to decode state values with
  --json             print one JSON object on stdout
  --checkpoints N    checkpoint history lines to print, 0–100 (default 10; --json prints all)
  -h, --help         show this help`;

const ISO = (ms: number): string => new Date(ms).toISOString();
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

export interface PartitionReport {
  shard: number;
  path: string;
  /** The key groups this shard owns under the current layout: [start, end). */
  keyGroups: { start: number; end: number };
  /** Owned key groups that hold any state or timer. */
  keyGroupsWithData: number;
  states: number;
  timers: number;
  /** Last epoch folded into the partition base. */
  foldedEpoch: number;
  /** Pending epochs written and committed, not yet folded (recovery folds them). */
  pendingCommitted: number[];
  /** Pending epochs no coordinator committed (recovery drops them). */
  pendingUncommitted: number[];
  /** Messages recorded in the last folded snapshot's mailbox (replayed at start). */
  mailbox: number;
}

export interface SlotReport {
  name: string;
  bytes: number;
  hex: string;
  writtenAt: number;
  /** With --module: the declared type's typename (undefined for an undeclared name). */
  typename?: string;
  value?: unknown;
  /** With --module: past its TTL at the time of inspection (reads as undefined). */
  expired?: boolean;
}

export interface AddressReport {
  type: string;
  id: string;
  keyGroup: number;
  shard: number;
  found: boolean;
  /** Where the committed record came from. */
  source: string;
  calledAt: number | null;
  slots: SlotReport[];
  /** Uncommitted pending epochs that hold a newer version (not shown; recovery drops them). */
  uncommittedEpochs: number[];
}

export interface InspectReport {
  command: 'inspect';
  dataDir: string;
  /** Null when no engine holds the lock and the lock file has no note. */
  lock: { pid: number | null; running: boolean } | null;
  format: number;
  keyGroups: number;
  shards: number;
  layout: number;
  committedEpoch: number;
  checkpoints: CheckpointInfo[];
  /** Committed egress records not yet acknowledged by the host, per egress. */
  egress: Array<{ name: string; records: number }>;
  partitions: PartitionReport[];
  address?: AddressReport;
}

/**
 * Whether an flock is held on `file`, from the kernel's lock table (Linux /proc/locks: "id: FLOCK
 * ADVISORY WRITE pid major:minor:inode start end", device numbers in hex). Undefined where there
 * is no such table.
 */
function flockHeld(file: string): boolean | undefined {
  let table: string;
  let st;
  try {
    table = readFileSync('/proc/locks', 'utf8');
    st = statSync(file, { bigint: true });
  } catch {
    return undefined;
  }
  const dev = st.dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  return table.split('\n').some((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === 'FLOCK' && f[5] === id;
  });
}

function readLock(dir: string): InspectReport['lock'] {
  const note = lockNote(dir);
  const held = flockHeld(join(dir, 'LOCK'));
  if (held === true) return { pid: note?.pid ?? null, running: true };
  if (note === undefined) return null;
  // A note without a lock: what a killed engine leaves (or, without a lock table, unknown).
  return { pid: note.pid, running: held === undefined };
}

function parseAddress(raw: string): Address {
  const parts = raw.split('/');
  const addr = { type: `${parts[0]}/${parts[1]}`, id: parts.slice(2).join('/') };
  try {
    if (parts.length < 3) throw new Error('too few parts');
    validateAddress(addr, '--address');
  } catch (err) {
    const why = err instanceof WeftError ? `: ${err.message}` : '';
    throw new UsageError(`weft inspect: --address must be <namespace>/<name>/<id> (got ${JSON.stringify(raw)})${why}`);
  }
  return addr;
}

function openReadOnly(path: string): Promise<Partition> {
  // 'process' only selects LMDB's no-sync flag, which a read-only environment never uses.
  return Partition.open(path, { durability: 'process', readOnly: true });
}

async function partitionReport(p: Partition, shard: number, shards: number, keyGroups: number, committed: number): Promise<PartitionReport> {
  const [start, end] = keyGroupRange(shard, shards, keyGroups);
  const pending = p.pendingEpochs();
  return {
    shard,
    path: p.path,
    keyGroups: { start, end },
    keyGroupsWithData: p.keyGroups().filter((kg) => kg >= start && kg < end).length,
    states: p.countState(),
    timers: p.countTimers(),
    foldedEpoch: (p.getMeta(META_FOLDED_EPOCH) as number | undefined) ?? 0,
    pendingCommitted: pending.filter((e) => e <= committed),
    pendingUncommitted: pending.filter((e) => e > committed),
    mailbox: decodeEnvelopes(p.getMeta(META_MAILBOX) as Uint8Array | undefined).length,
  };
}

function addressReport(p: Partition, addr: Address, kg: number, shard: number, committed: number, module: RuntimeModule | undefined): AddressReport {
  const folded = (p.getMeta(META_FOLDED_EPOCH) as number | undefined) ?? 0;
  let record = p.getState(kg, addr.type, addr.id);
  let source = `base of shard ${shard} (folded epoch ${folded})`;
  const uncommitted: number[] = [];
  for (const epoch of p.pendingEpochs()) {
    if (epoch <= folded) continue;
    for (const { key, value } of p.pendingEntries(epoch)) {
      if (key[1] !== PendingKind.States) continue;
      const change = decodeStates(value).find(([k, t, i]) => k === kg && t === addr.type && i === addr.id);
      if (change === undefined) continue;
      if (epoch > committed) {
        uncommitted.push(epoch);
        continue;
      }
      record = change[3] ?? undefined;
      source = `pending epoch ${epoch} of shard ${shard} (committed, not yet folded)`;
    }
  }
  const report: AddressReport = { type: addr.type, id: addr.id, keyGroup: kg, shard, found: record !== undefined, source, calledAt: null, slots: [], uncommittedEpochs: uncommitted };
  if (record === undefined) return report;
  const rec = decodeRecord(record);
  report.calledAt = rec.calledAt === 0 ? null : rec.calledAt;
  const fn = module?.functions.get(addr.type);
  const now = Date.now();
  for (const [name, b, writtenAt] of rec.slots) {
    const slot: SlotReport = { name, bytes: b.byteLength, hex: hex(b), writtenAt };
    const spec = fn?.specByName.get(name);
    if (spec !== undefined) {
      slot.typename = spec.type.typename;
      slot.value = spec.type.decode(b);
      slot.expired = isExpired(spec, writtenAt, rec.calledAt, now);
    }
    report.slots.push(slot);
  }
  return report;
}

async function collect(dir: string, addr: Address | undefined, module: RuntimeModule | undefined): Promise<InspectReport> {
  try {
    statSync(dir);
  } catch {
    throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(dir)} does not exist`);
  }
  try {
    statSync(join(dir, 'meta'));
  } catch {
    throw new WeftError('ERR_WEFT_DATA_DIR', `${describe(dir)} is not a weft data dir (it has no meta/ directory)`);
  }
  const lock = readLock(dir);
  const opened: Partition[] = [];
  try {
    const meta = await openReadOnly(join(dir, 'meta'));
    opened.push(meta);
    const format = meta.getMeta('format');
    if (typeof format !== 'number') throw new WeftError('ERR_WEFT_DATA_DIR', `${describe(dir)} is not an initialised weft data dir (meta has no format version)`);
    const keyGroups = meta.getMeta('keyGroups') as number;
    const shards = meta.getMeta('shards') as number;
    const layout = meta.getMeta('layout') as number;
    const committedEpoch = (meta.getMeta('committedEpoch') as number | undefined) ?? 0;
    const checkpoints = (meta.getMeta('checkpoints') as CheckpointInfo[] | undefined) ?? [];
    const report: InspectReport = { command: 'inspect', dataDir: dir, lock, format, keyGroups, shards, layout, committedEpoch, checkpoints, egress: meta.egressCounts(), partitions: [] };
    const layoutDir = join(dir, `partitions-${layout}`);
    for (let s = 0; s < shards; s++) {
      const path = join(layoutDir, `shard-${s}`);
      let p: Partition;
      try {
        statSync(path);
      } catch {
        // A shard that never started writes nothing: report it empty rather than failing.
        const [start, end] = keyGroupRange(s, shards, keyGroups);
        report.partitions.push({ shard: s, path, keyGroups: { start, end }, keyGroupsWithData: 0, states: 0, timers: 0, foldedEpoch: 0, pendingCommitted: [], pendingUncommitted: [], mailbox: 0 });
        continue;
      }
      p = await openReadOnly(path);
      opened.push(p);
      report.partitions.push(await partitionReport(p, s, shards, keyGroups, committedEpoch));
      if (addr !== undefined) {
        const kg = keyGroupOf(addr.type, addr.id, keyGroups);
        if (shardOfKeyGroup(kg, shards, keyGroups) === s) report.address = addressReport(p, addr, kg, s, committedEpoch, module);
      }
    }
    if (addr !== undefined && report.address === undefined) {
      const kg = keyGroupOf(addr.type, addr.id, keyGroups);
      const shard = shardOfKeyGroup(kg, shards, keyGroups);
      report.address = { type: addr.type, id: addr.id, keyGroup: kg, shard, found: false, source: `shard ${shard} has no partition yet`, calledAt: null, slots: [], uncommittedEpochs: [] };
    }
    return report;
  } finally {
    for (const p of opened.reverse()) await p.close();
  }
}

/**
 * `--verify`: the checks a start runs (see data-dir.ts), read-only. Throws ERR_WEFT_DATA_DIR on
 * damage; returns the "ok" summary.
 */
async function verify(dir: string): Promise<string> {
  try {
    statSync(dir);
  } catch {
    throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(dir)} does not exist`);
  }
  const metaPath = join(dir, 'meta');
  // With an engine running, a commit can reuse a page while the walk reads it (the walk is no
  // LMDB reader), or fold an epoch newer than the meta read: damage must be seen three times in
  // a row (meta read again each time) to be reported.
  let info: ReturnType<typeof readDirMeta>;
  for (let attempt = 1; ; attempt++) {
    try {
      const problem = lmdbFileProblem(metaPath, { required: true, writable: true }) ?? lmdbTreeProblem(metaPath);
      if (problem !== undefined) throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(dir)} is damaged: ${problem}`);
      const meta = await openReadOnly(metaPath);
      try {
        if (meta.getMeta('format') === undefined) throw new WeftError('ERR_WEFT_DATA_DIR', `${describe(dir)} is not an initialised weft data dir (meta has no format version)`);
        info = readDirMeta(dir, meta);
      } finally {
        await meta.close();
      }
      await verifyLayout(dir, info);
      break;
    } catch (err) {
      if (attempt >= 3 || readLock(dir)?.running !== true) throw err;
    }
  }
  const lock = readLock(dir);
  const running = lock?.running === true ? `; an engine (process ${lock.pid ?? 'unknown'}) is running on it` : '';
  return `ok: data dir ${dir} verified: format ${info.format}, ${info.keyGroups} key groups, ${info.shards} shards (layout ${info.layout}), committed epoch ${info.committedEpoch}; meta and ${info.shards} partitions checked (files against LMDB's meta pages, page structure, identity, last epoch)${running}`;
}

function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: hex(value) };
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function text(r: InspectReport, checkpointLines: number): string {
  const out: string[] = [];
  const engine =
    r.lock === null
      ? 'not running (no lock)'
      : r.lock.running
        ? `RUNNING: process ${r.lock.pid ?? '(unknown)'} holds the lock; this is a live read-only view, lines may come from different moments`
        : `not running (the lock file names process ${r.lock.pid ?? '(unknown)'}, which no longer holds it)`;
  out.push(
    table([
      ['data dir', r.dataDir],
      ['engine', engine],
      ['format', String(r.format)],
      ['key groups', String(r.keyGroups)],
      ['shards', String(r.shards)],
      ['layout', `${r.layout} (partitions-${r.layout}/)`],
      ['committed', `epoch ${r.committedEpoch}`],
    ]),
  );
  const shown = checkpointLines === 0 ? [] : r.checkpoints.slice(-checkpointLines);
  out.push('', `checkpoints (${shown.length === r.checkpoints.length ? `all ${r.checkpoints.length}` : `last ${shown.length} of ${r.checkpoints.length}`} in meta)`);
  if (shown.length > 0) {
    const rows = [['  epoch', 'committed at (UTC)', 'bytes', 'states', 'ms']];
    for (const c of shown) rows.push([`  ${c.epoch}`, ISO(c.at), bytes(c.bytes), int(c.states), c.ms.toFixed(1)]);
    out.push(table(rows));
  }
  out.push('', `egress (committed records not yet acknowledged)${r.egress.length === 0 ? ': none' : ''}`);
  if (r.egress.length > 0) out.push(table([['  egress', 'records'], ...r.egress.map((e) => [`  ${e.name}`, int(e.records)])]));
  out.push('', 'partitions');
  const rows = [['  shard', 'key groups', 'with data', 'states', 'timers', 'folded', 'pending committed', 'pending uncommitted', 'mailbox']];
  const list = (l: number[]): string => (l.length === 0 ? '-' : l.join(','));
  for (const p of r.partitions) {
    rows.push([`  ${p.shard}`, `${p.keyGroups.start}-${p.keyGroups.end - 1}`, int(p.keyGroupsWithData), int(p.states), int(p.timers), String(p.foldedEpoch), list(p.pendingCommitted), list(p.pendingUncommitted), int(p.mailbox)]);
  }
  out.push(table(rows));
  const a = r.address;
  if (a !== undefined) {
    out.push('', `address ${a.type}/${a.id} (key group ${a.keyGroup}, shard ${a.shard})`);
    if (!a.found) out.push(`  no committed state (${a.source})`);
    else {
      out.push(`  from       ${a.source}`, `  last call  ${a.calledAt === null ? '-' : ISO(a.calledAt)}`);
      const decoded = a.slots.some((s) => s.typename !== undefined);
      const slotRows = [['  name', 'typename', 'bytes', 'written at (UTC)', decoded ? 'value' : 'raw bytes (hex)']];
      for (const s of a.slots) {
        const value = s.typename === undefined ? s.hex.replace(/(..)(?=.)/g, '$1 ').slice(0, 96) + (s.hex.length > 64 ? ' ...' : '') : inspectValue(s.value, { depth: 4, breakLength: Number.POSITIVE_INFINITY }) + (s.expired === true ? '  (expired)' : '');
        slotRows.push([`  ${s.name}`, s.typename ?? '?', int(s.bytes), ISO(s.writtenAt), value]);
      }
      out.push(table(slotRows));
      if (!decoded) out.push('  (records keep bytes only; pass --module <path> to decode them with their declared types)');
    }
    if (a.uncommittedEpochs.length > 0) out.push(`  newer uncommitted version(s) in pending epoch(s) ${a.uncommittedEpochs.join(', ')}: not shown, recovery drops them`);
  }
  return out.join('\n');
}

function moduleUrl(raw: string): string {
  return raw.startsWith('file:') ? raw : pathToFileURL(resolvePath(raw)).href;
}

async function run(args: string[], ctx: CliContext): Promise<number> {
  if (args.includes('--list')) return runList(args, ctx);
  const p = parse('inspect', args, { address: { type: 'string' }, module: { type: 'string' }, json: { type: 'boolean' }, checkpoints: { type: 'string' }, verify: { type: 'boolean' } }, 1);
  if (p.help) {
    write(ctx.stdout, inspect.help);
    return EXIT_OK;
  }
  const dirArg = p.positionals[0];
  if (dirArg === undefined) throw new UsageError('weft inspect: missing <dataDir>');
  if (p.values.verify === true) {
    if (p.values.address !== undefined || p.values.module !== undefined || p.values.json !== undefined || p.values.checkpoints !== undefined) {
      throw new UsageError('weft inspect: --verify takes no other option');
    }
    write(ctx.stdout, await verify(resolvePath(dirArg)));
    return EXIT_OK;
  }
  const addr = typeof p.values.address === 'string' ? parseAddress(p.values.address) : undefined;
  const modulePath = p.values.module as string | undefined;
  if (modulePath !== undefined && addr === undefined) throw new UsageError('weft inspect: --module is only used with --address');
  // meta keeps the last 100 checkpoints (src/checkpoint/data-dir.ts).
  const checkpointLines = numberFlag('inspect', 'checkpoints', p.values.checkpoints, 10, 0, 100, true);
  const module = modulePath === undefined ? undefined : compileModule(await loadModule(moduleUrl(modulePath)));
  if (addr !== undefined && module !== undefined && !module.functions.has(addr.type)) {
    throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `the module ${describe(modulePath)} defines no function of type ${describe(addr.type)}`);
  }
  const report = await collect(resolvePath(dirArg), addr, module);
  write(ctx.stdout, p.values.json === true ? JSON.stringify(report, jsonValue) : text(report, checkpointLines));
  return EXIT_OK;
}

export const inspect: Command = {
  name: 'inspect',
  summary: 'show a data dir: checkpoints, partitions, one instance\'s state (read-only); --verify checks it',
  help: `${HELP}\n\n${LIST_HELP}`,
  run,
};
