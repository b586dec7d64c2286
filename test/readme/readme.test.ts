import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../engine/helpers.js';

const root = new URL('../../', import.meta.url);
const read = (p: string): string => readFileSync(new URL(p, root), 'utf8');

/** The ```ts blocks of the README, in order. */
function tsBlocks(md: string): string[] {
  return [...md.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** A source file without its leading doc comment. */
function body(src: string): string {
  return src.replace(/^\/\*\*[\s\S]*?\*\/\n/, '');
}

describe('README examples are the tested files', () => {
  const blocks = tsBlocks(read('README.md'));

  it('the 30-second module is examples/greeter/functions.ts', () => {
    expect(blocks[0]).toBe(body(read('examples/greeter/functions.ts')));
  });

  it('the 30-second host is examples/quickstart/main.ts, and it runs', () => {
    expect(blocks[1]).toBe(read('examples/quickstart/main.ts'));
    const cwd = tempDir('weft-readme-');
    try {
      const out = execFileSync(process.execPath, [fileURLToPath(new URL('dist/examples/quickstart/main.js', root))], { cwd, encoding: 'utf8', timeout: 60_000 });
      expect(out.split('\n').slice(0, 2)).toEqual(['Hello, Ada!', '{ visits: 1 }']);
    } finally {
      removeDir(cwd);
    }
  });

  it('documents the set-up and test commands', () => {
    const md = read('README.md');
    expect(md).toContain('npm install && npm start');
    expect(md).toContain('npm test');
  });
});
