/**
 * The README's hello world runs as users run it: the compiled example in its own process.
 * Needs `npm run build` first (npm test does it).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from './run-node.js';

const MAIN = fileURLToPath(new URL('../../dist/examples/greeter/main.js', import.meta.url));


describe('examples/greeter', () => {
  it('greets, counts visits per id, and prints the committed egress records', async () => {
    const { code, stdout, stderr } = await runNode(MAIN, 30_000);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    // Replies come back in request order; egress records are printed as they are committed,
    // possibly between them.
    const isEgress = (l: string): boolean => l.startsWith('egress: ');
    expect(lines.filter((l) => !isEgress(l))).toEqual(['Hello, Ada!', 'Hello, Grace!', 'Hello again, Ada! That makes 2 visits.', 'state of ada: { visits: 2 }']);
    // Egress records cross shards, so their order is not fixed: compare as a set.
    const egress = lines.filter(isEgress).map((l) => JSON.parse(l.slice('egress: '.length)) as unknown);
    expect(egress).toHaveLength(3);
    expect(egress).toEqual(
      expect.arrayContaining([
        { id: 'ada', visits: 1, greeting: 'Hello, Ada!' },
        { id: 'ada', visits: 2, greeting: 'Hello again, Ada! That makes 2 visits.' },
        { id: 'grace', visits: 1, greeting: 'Hello, Grace!' },
      ]),
    );
  });
});
