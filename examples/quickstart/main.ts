import { Weft } from 'weft';

const weft = await Weft.start({ module: new URL('../greeter/functions.js', import.meta.url), dataDir: './weft-data' });
console.log(await weft.request({ type: 'example/greeter', id: 'ada' }, { name: 'Ada' })); // Hello, Ada!
await weft.send({ type: 'example/greeter', id: 'grace' }, { name: 'Grace' }); // resolves once committed
console.log(await weft.query({ type: 'example/greeter', id: 'ada' })); // { visits: 1 }
await weft.close();
