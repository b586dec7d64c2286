import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Weft } from 'weft';

const dataDir = mkdtempSync(join(tmpdir(), 'weft-quickstart-')); // an app keeps its own, e.g. './weft-data'
const weft = await Weft.start({ module: new URL('../greeter/functions.js', import.meta.url), dataDir });
console.log(await weft.request({ type: 'example/greeter', id: 'ada' }, { name: 'Ada' })); // Hello, Ada!
await weft.send({ type: 'example/greeter', id: 'grace' }, { name: 'Grace' }); // resolves once committed
console.log(await weft.query({ type: 'example/greeter', id: 'ada' })); // { visits: 1 }
await weft.close();
rmSync(dataDir, { recursive: true, force: true });
