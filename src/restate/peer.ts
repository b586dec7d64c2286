/**
 * Loading an optional peer dependency: `weft/restate` needs `@restatedev/restate-sdk` (and its
 * client `@restatedev/restate-sdk-clients`), which a plain `npm install weft` does not pull in.
 * A missing package is reported as ERR_WEFT_MISSING_PEER naming the package and the install
 * command; any other load failure is passed on unchanged.
 */
import { WeftError } from '../core/errors.js';

/**
 * The versions weft/restate is built and tested with (pinned as peers). The SDK is 1.12.0: later
 * ones call `Promise.withResolvers`, which Node 20 does not have.
 */
export const RESTATE_SDK_VERSION = '1.12.0';
/** The version of the clients package (`@restatedev/restate-sdk-clients`). */
export const RESTATE_CLIENTS_VERSION = '1.17.2';

function isNotFound(err: unknown, specifier: string): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && typeof e.message === 'string' && e.message.includes(specifier);
}

export async function loadPeer<T>(specifier: string, feature: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (cause) {
    if (!isNotFound(cause, specifier)) throw cause;
    throw new WeftError(
      'ERR_WEFT_MISSING_PEER',
      `${feature} needs the optional peer dependency ${specifier}, which is not installed: npm install ${specifier}@${specifier.endsWith('-clients') ? RESTATE_CLIENTS_VERSION : RESTATE_SDK_VERSION}`,
      { cause },
    );
  }
}
