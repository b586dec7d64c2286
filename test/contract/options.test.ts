import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { DEFAULTS, resolveOptions, resolveShards } from '../../src/contract/options.js';

const err = (f: () => unknown): WeftError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    expect((e as WeftError).code).toBe('ERR_WEFT_INVALID_OPTION');
    return e as WeftError;
  }
  throw new Error('expected an error');
};

describe('options', () => {
  it('fills defaults', () => {
    const o = resolveOptions({ module: '/tmp/m.js', shards: 2 });
    expect(o.moduleUrl).toBe('file:///tmp/m.js');
    expect(o.shards).toBe(2);
    expect(o.checkpointIntervalMs).toBe(DEFAULTS.checkpointIntervalMs);
    expect(o.durability).toBe('fsync');
    expect(o.keyGroups).toBe(128);
    expect(o.shardYoungGenerationMb).toBe(128);
    expect(o.egressMaxBacklog).toBe(1_000_000);
    expect(o.egressFullWaitMs).toBe(5_000);
    expect(Object.isFrozen(o)).toBe(true);
  });

  it('resolves shards: numbers, auto, perCore, WEFT_SHARDS', () => {
    expect(resolveShards(3, {}, 8)).toBe(3);
    expect(resolveShards('auto', {}, 8)).toBe(8);
    expect(resolveShards(undefined, {}, 2)).toBe(2);
    expect(resolveShards('auto', { WEFT_SHARDS: '5' }, 8)).toBe(5);
    expect(resolveShards(3, { WEFT_SHARDS: '5' }, 8)).toBe(3);
    expect(resolveShards({ perCore: 2 }, {}, 2)).toBe(4);
    expect(resolveShards({ perCore: 0.5 }, {}, 2)).toBe(1);
  });

  it('names the bad value in every message', () => {
    expect(err(() => resolveOptions({ module: '/m.js', shards: -1 })).message).toBe(
      "options.shards must be a positive integer up to 256, 'auto' or { perCore: n } (got -1)",
    );
    expect(err(() => resolveOptions({ module: '/m.js', shards: 'many' })).message).toBe(
      "options.shards must be a positive integer up to 256, 'auto' or { perCore: n } (got \"many\")",
    );
    expect(err(() => resolveOptions({ module: '/m.js', shards: { perCore: -2 } })).message).toBe(
      'options.shards.perCore must be a positive number (got {"perCore":-2})',
    );
    expect(err(() => resolveShards('auto', { WEFT_SHARDS: 'x' })).message).toBe(
      'environment variable WEFT_SHARDS must be an integer from 1 to 256 (got "x")',
    );
    expect(err(() => resolveOptions({ module: '/m.js', durability: 'sometimes' })).message).toBe(
      "options.durability must be 'fsync' or 'process' (got \"sometimes\")",
    );
    expect(err(() => resolveOptions({ module: '/m.js', checkpointIntervalMs: 1.5 })).message).toBe(
      'options.checkpointIntervalMs must be an integer from 0 to 86400000 (got 1.5)',
    );
    expect(err(() => resolveOptions({ module: '/m.js', invocationTimeoutMs: 10 })).message).toBe(
      'options.invocationTimeoutMs must be an integer from 50 to 86400000 (got 10)',
    );
    expect(err(() => resolveOptions({ module: '/m.js', invocationTimeoutMs: '5s' })).message).toBe(
      'options.invocationTimeoutMs must be an integer from 50 to 86400000 (got "5s")',
    );
    expect(resolveOptions({ module: '/m.js' }).invocationTimeoutMs).toBe(10_000);
    expect(resolveOptions({ module: '/m.js', invocationTimeoutMs: 300 }).invocationTimeoutMs).toBe(300);
    expect(err(() => resolveOptions({ module: '/m.js', shard: 2 })).message).toBe('unknown option "shard"');
    expect(err(() => resolveOptions({})).message).toBe('options.module is required: the URL or path of the function module');
    expect(err(() => resolveOptions({ module: 42 })).message).toBe('options.module must be a file: URL or a non-empty path string (got 42)');
    expect(err(() => resolveOptions({ module: new URL('https://x/m.js') })).message).toBe(
      'options.module must be a file: URL or a path (got "https://x/m.js")',
    );
    expect(err(() => resolveOptions({ module: '/m.js', dataDir: '' })).message).toBe('options.dataDir must be a non-empty path string (got "")');
    expect(err(() => resolveOptions({ module: '/m.js', ringBytes: 100_000 })).message).toBe('options.ringBytes must be a power of two (got 100000)');
    expect(err(() => resolveOptions({ module: '/m.js', ringBytes: 1 << 20, maxMessageBytes: 1 << 19 })).message).toBe(
      'options.ringBytes (1048576) must be at least 4 × options.maxMessageBytes (524288)',
    );
    expect(err(() => resolveOptions({ module: '/m.js', remote: [{ functions: 'ns', url: 'http://x' }] })).message).toBe(
      "options.remote[0].functions must be 'namespace/*' or 'namespace/name' (got \"ns\")",
    );
    expect(err(() => resolveOptions({ module: '/m.js', remote: [{ functions: 'ns/*', url: 'ftp://x' }] })).message).toBe(
      'options.remote[0].url must be an http:// or https:// URL (got "ftp://x")',
    );
    expect(err(() => resolveOptions({ module: '/m.js', remote: [{ functions: 'ns/*', url: 'http://x', onExhausted: 'drop' }] })).message).toBe(
      "options.remote[0].onExhausted must be 'pause' or 'dead-letter' (got \"drop\")",
    );
    expect(err(() => resolveOptions({ module: '/m.js', remote: [{ functions: 'ns/*', url: 'http://x', pauseMs: 0 }] })).message).toBe(
      'options.remote[0].pauseMs must be an integer from 1 to 3600000 (got 0)',
    );
    expect(resolveOptions({ module: '/m.js', remote: [{ functions: 'ns/*', url: 'http://x/' }] }).remote).toEqual([
      { functions: 'ns/*', url: 'http://x/', timeoutMs: 60_000, maxBatch: 1000, onExhausted: 'pause', pauseMs: 1000 },
    ]);
    expect(err(() => resolveOptions({ module: '/m.js', shardYoungGenerationMb: 0 })).message).toBe(
      'options.shardYoungGenerationMb must be an integer from 1 to 4096 (got 0)',
    );
    expect(err(() => resolveOptions({ module: '/m.js', shardSemiSpaceMb: -1 })).message).toBe('options.shardSemiSpaceMb must be an integer from 0 to 1024 (got -1)');
    expect(err(() => resolveOptions({ module: '/m.js', shardSemiSpaceMb: 2.5 })).message).toBe('options.shardSemiSpaceMb must be an integer from 0 to 1024 (got 2.5)');
    expect(err(() => resolveOptions({ module: '/m.js', shardSemiSpaceMb: '32' })).message).toBe('options.shardSemiSpaceMb must be an integer from 0 to 1024 (got "32")');
    expect(resolveOptions({ module: '/m.js', shardSemiSpaceMb: 0 }).shardSemiSpaceMb).toBe(0);
    expect(err(() => resolveOptions({ module: '/m.js', shardMemoryReducer: 'yes' })).message).toBe('options.shardMemoryReducer must be true or false (got "yes")');
    expect(err(() => resolveOptions({ module: '/m.js', shardMemoryReducer: 1 })).message).toBe('options.shardMemoryReducer must be true or false (got 1)');
    expect(resolveOptions({ module: '/m.js' }).shardMemoryReducer).toBe(false);
    expect(resolveOptions({ module: '/m.js', shardMemoryReducer: true }).shardMemoryReducer).toBe(true);
    expect(err(() => resolveOptions({ module: '/m.js', egressFullWaitMs: -1 })).message).toBe('options.egressFullWaitMs must be an integer from 0 to 86400000 (got -1)');
    expect(resolveOptions({ module: '/m.js', egressFullWaitMs: 0 }).egressFullWaitMs).toBe(0);
    expect(err(() => resolveOptions(null)).message).toBe('Weft.start options must be an object (got null)');
  });
});
