export { WeftError, ErrorCodes, isWeftError } from './errors.js';
export type { WeftErrorCode, SerializedError } from './errors.js';
