/**
 * `weft inspect --list`, run as a child process (`node dist/src/cli/main.js`) against data dirs
 * written by a real engine: next to the live engine and after it closed, with the options, the
 * state, uncommitted PENDING epochs left out, and usage errors.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Weft } from '../../src/index.js';
import { PendingKind, encodeStates } from '../../src/state/checkpoint-format.js';
import { keyGroupOf, shardOfKeyGroup } from '../../src/contract/partitioner.js';
import { Partition } from '../../src/state/partition.js';
import { compareIds } from '../../src/state/listing.js';
import { within } from '../helpers/index.js';
import { fixture, removeDir, tempDir } from '../engine/helpers.js';

const MAIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const MODULE = fileURLToPath(fixture('listing'));

function weftCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return within(done, 30_000, `weft ${args.join(' ')}`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
}

const IDS = [...Array.from({ length: 60 }, (_, i) => `acct-${String(i).padStart(2, '0')}`), 'line\nbreak', 'ü'];
let dir: string;
let weft: Weft | undefined;

beforeAll(async () => {
  dir = tempDir('weft-cli-list-');
  weft = await Weft.start({ module: fixture('listing'), dataDir: dir, shards: 3, durability: 'process' });
  await Promise.all(IDS.map((id, i) => weft!.send({ type: 'list/item', id }, { op: 'set', n: i })));
  await weft.send({ type: 'list/item', id: 'acct-05' }, { op: 'delete' });
  await weft.send({ type: 'list/other', id: 'other' }, 1);
});

afterAll(async () => {
  await weft?.close();
  removeDir(dir);
});

const expected = IDS.filter((id) => id !== 'acct-05').sort(compareIds);
const printed = (ids: string[]): string => ids.map((id) => (id.includes('\n') ? JSON.stringify(id) : id)).join('\n') + '\n';

describe('weft inspect --list', () => {
  it('lists the committed ids of a type in id order next to a live engine, with prefix/after/limit', async () => {
    const all = await weftCli(['inspect', '--list', dir, '--type', 'list/item']);
    expect(all.stderr).toBe('');
    expect(all.code).toBe(0);
    expect(all.stdout).toBe(printed(expected));
    const page = await weftCli(['inspect', dir, '--list', '--type', 'list/item', '--prefix', 'acct-1', '--after', 'acct-12', '--limit', '3']);
    expect(page.stdout).toBe('acct-13\nacct-14\nacct-15\n');
    const json = await weftCli(['inspect', '--list', dir, '--type', 'list/item', '--limit', '2', '--module', MODULE, '--with-state', '--json']);
    expect(json.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { id: 'acct-00', state: { n: 0 } },
      { id: 'acct-01', state: { n: 1 } },
    ]);
    expect((await weftCli(['inspect', '--list', dir, '--type', 'list/other'])).stdout).toBe('other\n');
  });

  it('treats expired values as absent with --module, and leaves out uncommitted PENDING epochs', async () => {
    // Written just before the final checkpoint of close(): stored, and nothing sweeps it afterwards.
    await weft!.send({ type: 'list/ttl', id: 'fleeting' }, 'v');
    const writtenAt = Date.now();
    await weft!.close();
    weft = undefined;
    // Without the module the TTL is unknown: the stored instance is listed.
    expect((await weftCli(['inspect', '--list', dir, '--type', 'list/ttl'])).stdout).toBe('fleeting\n');
    // Past the 400 ms expireAfterWrite of list/ttl, the module's TTL makes it absent.
    await new Promise((r) => setTimeout(r, Math.max(0, writtenAt + 450 - Date.now())));
    expect((await weftCli(['inspect', '--list', dir, '--type', 'list/ttl', '--module', MODULE])).stdout).toBe('');
    // A PENDING epoch after the committed one (what a crash mid-checkpoint leaves): not listed.
    const meta = await Partition.open(join(dir, 'meta'), { durability: 'process', readOnly: true });
    const committed = meta.getMeta('committedEpoch') as number;
    const layout = meta.getMeta('layout') as number;
    await meta.close();
    const kg = keyGroupOf('list/item', 'ghost', 128);
    const shard = await Partition.open(join(dir, `partitions-${layout}`, `shard-${shardOfKeyGroup(kg, 3, 128)}`), { durability: 'process' });
    const record = new Uint8Array([1]);
    await shard.write((ops) => ops.putPending([committed + 1, PendingKind.States], encodeStates([[kg, 'list/item', 'ghost', record]] as never)));
    await shard.close();
    const after = await weftCli(['inspect', '--list', dir, '--type', 'list/item']);
    expect(after.stdout).toBe(printed(expected));
  });

  it('refuses bad usage (exit 2) and an unknown type (exit 1)', async () => {
    const noType = await weftCli(['inspect', '--list', dir]);
    expect(noType.code).toBe(2);
    expect(noType.stderr).toContain('weft inspect: --list needs --type <namespace>/<name>');
    const badType = await weftCli(['inspect', '--list', dir, '--type', 'nope']);
    expect(badType.code).toBe(2);
    expect(badType.stderr).toContain('--type must be a function typename "<namespace>/<name>" (got "nope")');
    const noModule = await weftCli(['inspect', '--list', dir, '--type', 'list/item', '--with-state']);
    expect(noModule.code).toBe(2);
    expect(noModule.stderr).toContain('--with-state needs --module');
    const badLimit = await weftCli(['inspect', '--list', dir, '--type', 'list/item', '--limit', '0']);
    expect(badLimit.code).toBe(2);
    const unknown = await weftCli(['inspect', '--list', dir, '--type', 'no/such', '--module', MODULE]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('weft inspect: ERR_WEFT_UNKNOWN_FUNCTION: weft inspect --list: no function of type "no/such" is defined\n');
    const missing = await weftCli(['inspect', '--list', join(dir, 'nope'), '--type', 'list/item']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ERR_WEFT_DATA_DIR');
  });
});
