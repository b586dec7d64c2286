/**
 * What every `weft` command is, and the parts they share: argument parsing with `node:util`
 * `parseArgs` (strict: unknown flags are usage errors), and the exit-code contract —
 * 0 success, 1 runtime failure, 2 bad usage, 128 + signal number after SIGINT/SIGTERM.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where a command writes, and the signal that asks it to stop (SIGINT/SIGTERM). */
export interface CliContext {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Aborted on SIGINT/SIGTERM: stop early, close what was opened, and return. */
  readonly signal: AbortSignal;
}

export interface Command {
  /** The word after `weft`. */
  readonly name: string;
  /** One line for `weft --help`. */
  readonly summary: string;
  /** The full `weft <name> --help` text (usage line, options, notes). */
  readonly help: string;
  /**
   * A command that runs until it is stopped (a server): SIGINT/SIGTERM is its normal end, so the
   * exit code it returns stands. For the others a signal means "interrupted": 128 + its number.
   */
  readonly runsUntilSignal?: boolean;
  /** Runs with the arguments after the command name; resolves with the exit code. */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Bad usage: printed with the command's usage line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  /** `--help` was given: print the help and exit 0, whatever else is there. */
  help: boolean;
}

/**
 * `parseArgs` with `--help`/`-h` added and its errors turned into {@link UsageError}s.
 * `maxPositionals` bounds the positional arguments (extra ones are usage errors).
 */
export function parse(command: string, args: string[], options: Options, maxPositionals: number): Parsed {
  // --help wins over everything else on the line, so `weft bench --bogus --help` still helps.
  if (args.includes('--help') || args.includes('-h')) return { values: {}, positionals: [], help: true };
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    // parseArgs's messages go on with advice about `--` that does not apply here: keep the first sentence.
    const first = (err as Error).message.split(/\.\s/)[0] as string;
    throw new UsageError(`weft ${command}: ${first.charAt(0).toLowerCase()}${first.slice(1)}`);
  }
  if (parsed.positionals.length > maxPositionals) {
    const extra = parsed.positionals[maxPositionals] as string;
    throw new UsageError(`weft ${command}: unexpected argument ${JSON.stringify(extra)}`);
  }
  return { values: parsed.values, positionals: parsed.positionals, help: false };
}

/** A numeric flag within `[min, max]`; `integer` refuses fractions. */
export function numberFlag(command: string, flag: string, raw: string | boolean | undefined, def: number, min: number, max: number, integer: boolean): number {
  if (raw === undefined) return def;
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`weft ${command}: --${flag} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return n;
}

export function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}
