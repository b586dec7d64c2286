/**
 * `weft/ui`: a minimal web view of a running engine (see handler.ts). No authentication: keep it
 * on loopback (startUi binds 127.0.0.1 unless told otherwise) or behind your own.
 */
export { weftUi, startUi } from './handler.js';
export type { WeftUiOptions, WeftUiHandler, StartUiOptions, RunningUi } from './handler.js';
