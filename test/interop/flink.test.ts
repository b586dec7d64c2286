/**
 * weft serving functions to the real runtime: Apache Flink StateFun 3.3.0 (Flink 1.16.2) started
 * in-process on a local mini cluster by the Maven project in interop/flink/, with the module.yaml
 * endpoint `front-desk/*` pointing at `weft serve dist/examples/front-desk/functions.js` (the
 * module the README's scale-out section serves).
 *
 * The JVM reads ingress messages from its stdin (one line each: function type, id, typename,
 * base64 value) and prints the records of the egress `front-desk/log` on stdout. StateFun owns
 * state, delivery, delayed messages and TTLs here; weft only answers its batches. Checked: state
 * across messages, the greeter's reply to the guest function that messaged it, a delayed message
 * and the cancellation of another, egress records, and the greeting's 2 s TTL.
 *
 * Needs Java 17 and Maven (the first build downloads about 300 MB from Maven Central into ~/.m2).
 * A missing tool or a failed build fails the suite with the command's output; nothing is skipped.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { unpack } from 'msgpackr';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ROOT, printOutputOnFailure, requireTool, run, servePort, startPeer, waitFor, type Peer } from './support.js';

const PROJECT = join(ROOT, 'interop/flink');
const MODULE = join(ROOT, 'dist/examples/front-desk/functions.js');
const EGRESS = 'front-desk/log';
/** `$JAVA_HOME/bin/java` when JAVA_HOME is set (Maven uses it too), else `java` from the PATH. */
const JAVA = process.env['JAVA_HOME'] ? join(process.env['JAVA_HOME'], 'bin/java') : 'java';

/** What Flink 1.16 reflects into on Java 17 (Kryo, its closure cleaner, the memory manager, Netty). */
const ADD_OPENS = [
  'java.base/java.lang',
  'java.base/java.lang.invoke',
  'java.base/java.lang.reflect',
  'java.base/java.io',
  'java.base/java.math',
  'java.base/java.net',
  'java.base/java.nio',
  'java.base/java.security',
  'java.base/java.text',
  'java.base/java.time',
  'java.base/java.util',
  'java.base/java.util.concurrent',
  'java.base/java.util.concurrent.atomic',
  'java.base/java.util.concurrent.locks',
  'java.base/sun.nio.ch',
  'java.sql/java.sql',
].map((p) => `--add-opens=${p}=ALL-UNNAMED`);

/** Startup on a busy 2-core machine: the mini cluster, the job graph, the first batches. */
const FIRST_RECORD_MS = 240_000;
const RECORD_MS = 60_000;

interface LogRecord {
  event: string;
  id: string;
  greeting?: string | null;
}

let serve: Peer | undefined;
let jvm: Peer | undefined;
let dir = '';

const peers = (): Peer[] => [serve, jvm].filter((p): p is Peer => p !== undefined);

/** The egress records the JVM printed so far, decoded. */
function records(): LogRecord[] {
  const out: LogRecord[] = [];
  for (const l of jvm?.lines ?? []) {
    if (!l.startsWith('WEFT-EGRESS\t')) continue;
    const [, egress, typename, b64] = l.split('\t');
    if (egress !== EGRESS) throw new Error(`record on an unexpected egress: ${l}`);
    if (typename !== 'weft.types/msgpack') throw new Error(`record with an unexpected typename: ${l}`);
    out.push(unpack(Buffer.from(b64!, 'base64')) as LogRecord);
  }
  return out;
}

/** Sends one message through the ingress to a front-desk function. */
function send(fn: string, id: string, value: unknown): void {
  const b64 = Buffer.from(JSON.stringify(value)).toString('base64');
  jvm!.child.stdin!.write(`${fn}\t${id}\tweft.types/json\t${b64}\n`);
}

function waitRecord(what: string, match: (r: LogRecord) => boolean, ms = RECORD_MS, from = 0): Promise<LogRecord> {
  return waitFor(what, ms, () => records().slice(from).find(match), peers());
}

describe('weft serve on Apache Flink StateFun 3.3.0', () => {
  beforeAll(async () => {
    const version = requireTool(JAVA, ['-version'], 'Java 17 (java on the PATH, or JAVA_HOME)');
    console.log(`interop/flink: ${version.split('\n')[0]}`);
    requireTool('mvn', ['-v'], 'Maven (mvn on PATH)');
    let t = Date.now();
    run('mvn', ['-q', '-B', 'package'], { cwd: PROJECT, ms: 20 * 60_000 });
    console.log(`interop/flink: mvn package took ${Date.now() - t} ms`);

    serve = startPeer('weft serve', process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'serve', MODULE, '--port', '0']);
    const port = await servePort(serve);

    dir = mkdtempSync(join(tmpdir(), 'weft-flink-'));
    const moduleYaml = join(dir, 'module.yaml');
    writeFileSync(
      moduleYaml,
      [
        'kind: io.statefun.endpoints.v2/http',
        'spec:',
        '  functions: front-desk/*',
        `  urlPathTemplate: http://127.0.0.1:${port}/statefun`,
        '  transport:',
        '    type: io.statefun.transports.v1/async',
        '    timeouts:',
        '      call: 1m',
        '',
      ].join('\n'),
    );
    const classpath = `${join(PROJECT, 'target/classes')}:${readFileSync(join(PROJECT, 'target/classpath.txt'), 'utf8').trim()}`;
    t = Date.now();
    jvm = startPeer('StateFun JVM', JAVA, [
      ...ADD_OPENS,
      '-Xmx768m',
      '-XX:+UseSerialGC',
      '-cp',
      classpath,
      'weft.interop.StatefunInterop',
      pathToFileURL(moduleYaml).href,
      EGRESS,
    ]);
    // Readiness is the first record through the whole path: ingress → StateFun → weft → egress.
    send('front-desk/guest', 'probe', { op: 'recall' });
    await waitRecord('the first egress record (StateFun up, weft reachable)', (r) => r.id === 'probe', FIRST_RECORD_MS);
    console.log(`interop/flink: StateFun started and answered its first batch after ${Date.now() - t} ms`);
  });

  beforeEach((ctx) => printOutputOnFailure(ctx, peers));

  afterAll(async () => {
    // Closing stdin ends the JVM (its ingress exits the process); a SIGKILL follows if it hangs.
    jvm?.child.stdin?.end();
    await jvm?.stop(10_000);
    await serve?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('keeps state across messages and delivers the greeter\'s replies to the guest function', async () => {
    const from = records().length;
    send('front-desk/guest', 'ada', { op: 'arrive', name: 'Ada' });
    await waitRecord('Ada greeted once', (r) => r.id === 'ada' && r.event === 'greeted', RECORD_MS, from);
    send('front-desk/guest', 'ada', { op: 'arrive', name: 'Ada' });
    await waitFor('Ada greeted twice', RECORD_MS, () => (records().slice(from).filter((r) => r.id === 'ada').length >= 2 ? true : undefined), peers());
    expect(records().slice(from).filter((r) => r.id === 'ada')).toEqual([
      { event: 'greeted', id: 'ada', greeting: 'Hello, Ada!' },
      { event: 'greeted', id: 'ada', greeting: 'Hello again, Ada! That makes 2 visits.' },
    ]);
  });

  it('fires a delayed message and drops a cancelled one', async () => {
    const from = records().length;
    // Grace's callback falls due first, Linus's second: when Linus's has fired, Grace's would have.
    send('front-desk/guest', 'grace', { op: 'arrive', name: 'Grace', callbackMs: 1_500 });
    send('front-desk/guest', 'grace', { op: 'leave' });
    send('front-desk/guest', 'linus', { op: 'arrive', name: 'Linus', callbackMs: 3_000 });
    await waitRecord('Linus\'s callback', (r) => r.id === 'linus' && r.event === 'callback', RECORD_MS, from);
    const got = records().slice(from);
    // The greeting comes back through the greeter, so it may land before or after 'left'; the
    // callback must not come at all.
    const byEvent = (a: LogRecord, b: LogRecord): number => a.event.localeCompare(b.event);
    expect(got.filter((r) => r.id === 'grace').sort(byEvent)).toEqual([
      { event: 'greeted', id: 'grace', greeting: 'Hello, Grace!' },
      { event: 'left', id: 'grace' },
    ]);
    expect(got.filter((r) => r.id === 'linus')).toEqual([
      { event: 'greeted', id: 'linus', greeting: 'Hello, Linus!' },
      { event: 'callback', id: 'linus' },
    ]);
  });

  it('expires state after its TTL (expireAfterWrite 2 s, enforced by StateFun)', async () => {
    let from = records().length;
    send('front-desk/guest', 'tim', { op: 'arrive', name: 'Tim' });
    await waitRecord('Tim greeted', (r) => r.id === 'tim' && r.event === 'greeted', RECORD_MS, from);
    from = records().length;
    send('front-desk/guest', 'tim', { op: 'recall' });
    const first = await waitRecord('Tim recalled', (r) => r.id === 'tim' && r.event === 'recall', RECORD_MS, from);
    // Read right after the write (well inside 2 s on any machine that gets here): still there.
    expect(first.greeting).toBe('Hello, Tim!');
    // Then ask every 500 ms until StateFun stops sending the value; bounded well past the TTL.
    const deadline = Date.now() + 30_000;
    let forgotten = false;
    while (!forgotten) {
      if (Date.now() > deadline) throw new Error(`the greeting did not expire within 30 s of a 2 s TTL\n${peers().map((p) => p.output()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 500));
      from = records().length;
      send('front-desk/guest', 'tim', { op: 'recall' });
      const r = await waitRecord('Tim recalled again', (x) => x.id === 'tim' && x.event === 'recall', RECORD_MS, from);
      forgotten = r.greeting === null;
    }
    // The greeter's count is untouched by the guest's TTL: a new arrival is the second visit.
    from = records().length;
    send('front-desk/guest', 'tim', { op: 'arrive', name: 'Tim' });
    const again = await waitRecord('Tim greeted again', (r) => r.id === 'tim' && r.event === 'greeted', RECORD_MS, from);
    expect(again.greeting).toBe('Hello again, Tim! That makes 2 visits.');
  });

  it('counts every message of a burst to one address, in order', async () => {
    // StateFun keeps one request in flight per address and batches what arrives meanwhile.
    const from = records().length;
    const n = 300;
    for (let i = 0; i < n; i++) send('front-desk/guest', 'crowd', { op: 'arrive', name: 'Crowd' });
    await waitFor(`${n} greetings for the crowd`, 120_000, () => (records().slice(from).filter((r) => r.id === 'crowd').length >= n ? true : undefined), peers());
    const greetings = records().slice(from).filter((r) => r.id === 'crowd').map((r) => r.greeting);
    // Each visit counted once, in order: the greeter's state went through every batch.
    expect(greetings).toEqual(Array.from({ length: n }, (_, i) => (i === 0 ? 'Hello, Crowd!' : `Hello again, Crowd! That makes ${i + 1} visits.`)));
  });
});
