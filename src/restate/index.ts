/**
 * weft/restate — the same function module, served as Restate virtual objects, and a host client
 * over Restate's ingress. Needs the optional peer dependencies `@restatedev/restate-sdk` (and
 * `@restatedev/restate-sdk-clients` for the client): importing this entry point without the SDK
 * installed fails with ERR_WEFT_MISSING_PEER.
 */
import { loadPeer } from './peer.js';

await loadPeer('@restatedev/restate-sdk', 'weft/restate');

export { restateObjects, serveRestate } from './endpoint.js';
export type { RestateEgressRecord, RestateEndpointOptions, RestateServer, ServeRestateOptions } from './endpoint.js';
export { connectRestate } from './client.js';
export type { RestateClient, RestateClientOptions } from './client.js';
export { defaultRestateName, restateNameProblem } from './names.js';
export { valueSerde, type ValueSerde } from './serde.js';
export { RESTATE_CLIENTS_VERSION, RESTATE_SDK_VERSION } from './peer.js';
