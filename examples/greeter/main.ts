/**
 * Hello world: start an engine, greet a few people (one function instance per person), print the
 * greetings, close. Run it with `npm run build && node dist/examples/greeter/main.js`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Weft } from 'weft';

const dataDir = mkdtempSync(join(tmpdir(), 'weft-greeter-'));
const weft = await Weft.start({ module: new URL('./functions.js', import.meta.url), dataDir });
const greetings = weft.egress('example/greetings');
try {
  for (const name of ['Ada', 'Grace', 'Ada']) {
    const greeting = await weft.request({ type: 'example/greeter', id: name.toLowerCase() }, { name });
    console.log(greeting);
  }
  console.log('state of ada:', await weft.query({ type: 'example/greeter', id: 'ada' }));
} finally {
  // close() commits a final checkpoint: egress records are handed to the host only once committed.
  await weft.close();
  rmSync(dataDir, { recursive: true, force: true });
}
for await (const record of greetings) console.log('egress:', JSON.stringify(record));
