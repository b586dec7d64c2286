/**
 * A user's install: `npm pack` a clean checkout (the files git tracks, no dist/: its `prepare`
 * script must build it), install the tarball into an empty project, then import 'weft' there and
 * run the `weft` executable. `npm run test:install` (~25-60 s: a full build and an install; not
 * in `npm test`, whose other files use the dist/ a concurrent build would rewrite).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'weft-install-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 4 * 60_000, env: { ...process.env, npm_config_update_notifier: 'false' } });

describe('npm pack, then npm install of the tarball', () => {
  it('ships dist, so the package imports and `weft` is on the project path', () => {
    // A checkout: the tracked files only, with the repository's node_modules (typescript) linked.
    const checkout = join(work, 'checkout');
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter((f) => f !== '');
    for (const f of tracked) {
      mkdirSync(join(checkout, f, '..'), { recursive: true });
      cpSync(join(root, f), join(checkout, f));
    }
    symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'));
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], checkout)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain('dist/src/shard/worker.js');
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('dist/test/'))).toBe(false);

    const project = join(work, 'app');
    rmSync(project, { recursive: true, force: true });
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
    npm(['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project);

    const imported = execFileSync(process.execPath, ['--input-type=module', '-e', "const w = await import('weft'); const t = await import('weft/testing'); console.log(typeof w.Weft.start, typeof w.defineModule, typeof t.createTestHarness);"], { cwd: project, encoding: 'utf8' });
    expect(imported.trim()).toBe('function function function');
    const help = execFileSync('npx', ['--no-install', 'weft', '--help'], { cwd: project, encoding: 'utf8' });
    expect(help).toMatch(/weft/);
    expect(help).toMatch(/serve/);
  });
});
