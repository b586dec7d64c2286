/**
 * `weft/restate` in an install without the optional Restate SDK: the compiled package is laid out
 * in a temp dir whose node_modules hold weft's own dependencies only, and a child process imports
 * `weft/restate` from there. It must fail with ERR_WEFT_MISSING_PEER naming the package, while
 * `weft` itself loads.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'weft-no-peer-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('importing weft/restate without @restatedev/restate-sdk fails with ERR_WEFT_MISSING_PEER', async () => {
  const app = join(dir, 'app');
  const weft = join(app, 'node_modules', 'weft');
  mkdirSync(weft, { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(weft, 'package.json'));
  cpSync(join(ROOT, 'dist', 'src'), join(weft, 'dist', 'src'), { recursive: true });
  // weft's own dependencies (and what they need), but no @restatedev package.
  for (const dep of ['lmdb', 'msgpackr', 'msgpackr-extract', 'piscina', 'node-gyp-build-optional-packages', 'detect-libc', 'ordered-binary', 'weak-lru-cache', '@lmdb']) {
    try {
      symlinkSync(join(ROOT, 'node_modules', dep), join(app, 'node_modules', dep), 'dir');
    } catch {
      // Not every one exists on every platform; the import below shows what is missing.
    }
  }
  writeFileSync(
    join(app, 'main.mjs'),
    [
      "const weft = await import('weft');",
      "console.log('weft', typeof weft.Weft);",
      "try { await import('weft/restate'); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }",
    ].join('\n'),
  );
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['main.mjs'], { cwd: app, timeout: 30_000 }, (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`))));
  });
  const [first, second] = out.trim().split('\n');
  expect(first).toBe('weft function');
  const failure = JSON.parse(second as string) as { code: string; message: string };
  expect(failure.code).toBe('ERR_WEFT_MISSING_PEER');
  expect(failure.message).toContain('weft/restate needs the optional peer dependency @restatedev/restate-sdk, which is not installed: npm install @restatedev/restate-sdk@1.12.0');
});
