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
// Committed egress records, as { id, value }: each stays in the data dir until this loop asks for
// the next one (which acknowledges it), and is delivered again after a crash, with the same id.
const printed = (async () => {
  for await (const record of weft.egress('example/greetings')) console.log('egress:', JSON.stringify(record.value));
})();
try {
  for (const name of ['Ada', 'Grace', 'Ada']) {
    const greeting = await weft.request({ type: 'example/greeter', id: name.toLowerCase() }, { name });
    console.log(greeting);
  }
  console.log('state of ada:', await weft.query({ type: 'example/greeter', id: 'ada' }));
} finally {
  // close() commits a final checkpoint (egress records are handed to the host only once
  // committed), then ends the egress loop.
  await weft.close();
  await printed;
  rmSync(dataDir, { recursive: true, force: true });
}
