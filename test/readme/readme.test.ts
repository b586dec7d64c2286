import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
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

  it('the 30-second host is examples/quickstart/main.ts, and the command printed after it runs it', () => {
    expect(blocks[1]).toBe(read('examples/quickstart/main.ts'));
    const md = read('README.md');
    const hostAt = md.indexOf(blocks[1]!);
    const command = /```sh\n([^\n]+)\n```/.exec(md.slice(hostAt))?.[1];
    expect(command).toBe('node dist/examples/quickstart/main.js');
    // Exactly as printed, from the repository root; it leaves nothing there.
    const before = readdirSync(fileURLToPath(root)).sort();
    const [exe, ...args] = command!.split(' ');
    expect(exe).toBe('node');
    const out = execFileSync(process.execPath, args, { cwd: fileURLToPath(root), encoding: 'utf8', timeout: 60_000 });
    expect(out).toBe('Hello, Ada!\n{ visits: 1 }\n');
    expect(readdirSync(fileURLToPath(root)).sort()).toEqual(before);
  });

  it('documents the set-up and test commands', () => {
    const md = read('README.md');
    expect(md).toContain('npm install && npm start');
    expect(md).toContain('npm test');
  });
});

describe('README StateFun snippet', () => {
  it('serves the greeter over the StateFun protocol as shown', async () => {
    const md = read('README.md');
    const js = [...md.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!)[0]!;
    expect(js).toContain("statefunHandler(functions)");
    // Run the snippet as written, with the module path made absolute and an OS-chosen port.
    const greeter = new URL('dist/examples/greeter/functions.js', root).href;
    const source = js
      .replace("'./functions.js'", JSON.stringify(greeter))
      .replace('.listen(8000);', '.listen(0, "127.0.0.1", function () { process.stdout.write(String(this.address().port) + "\\n"); });');
    const { spawn } = await import('node:child_process');
    const dir = tempDir('weft-readme-js-');
    const { writeFileSync } = await import('node:fs');
    const file = `${dir}/serve.mjs`;
    // Resolve 'weft/statefun' from this package: run the snippet with the repo as its cwd-free import root.
    writeFileSync(file, source.replace("'weft/statefun'", JSON.stringify(new URL('dist/src/statefun/index.js', root).href)));
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('snippet server did not start')), 20_000);
        child.stdout.once('data', (d: Buffer) => {
          clearTimeout(timer);
          resolve(Number(String(d).trim()));
        });
      });
      const res = await fetch(`http://127.0.0.1:${port}/statefun`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
      // A live StateFun endpoint: it refuses a wrong content type with 415.
      expect(res.status).toBe(415);
    } finally {
      child.kill();
      removeDir(dir);
    }
  });
});
