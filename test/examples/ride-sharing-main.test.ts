/**
 * `npm start`'s simulation, shortened to 2 seconds of requests: it must wind down on its own and
 * exit 0, which it does only when its consistency check of the final state passes.
 * Needs `npm run build` first (npm test does it).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from './run-node.js';

const MAIN = fileURLToPath(new URL('../../dist/examples/ride-sharing/main.js', import.meta.url));


describe('examples/ride-sharing main', () => {
  it('simulates a city for 2 s and passes its consistency check', { timeout: 70_000 }, async () => {
    const { code, stdout, stderr } = await runNode(MAIN, 60_000, { RIDES_SECONDS: '2' });
    const context = `stdout:\n${stdout}\nstderr:\n${stderr}`;
    expect(code, context).toBe(0);
    expect(stdout).toContain('all checks passed');
    for (const check of [
      'every completed ride appears exactly once in the egress',
      'no driver is in two rides',
      'every passenger who got a ride has it completed',
      "drivers' ride counts sum to completed rides",
      'cell membership matches driver locations',
    ]) {
      expect(stdout, context).toMatch(new RegExp(`ok +${check.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:`));
    }
    // The live line reports throughput and latency; the summary the rides that actually ran.
    expect(stdout).toMatch(/\[ *\d+s\] rides requested [\d,]+, completed [\d,]+.*msg\/s \| request p50 /);
    const completed = /(\d+) completed rides, (\d+) egress records/.exec(stdout);
    expect(completed, context).not.toBeNull();
    expect(Number(completed![1])).toBeGreaterThan(0);
  });
});
