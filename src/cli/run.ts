/**
 * `weft <command> [args]`: finds the command, runs it, and turns the outcome into an exit code
 * (0 ok, 1 runtime failure, 2 bad usage, 128 + signal number when SIGINT/SIGTERM interrupted it;
 * a command that runs until stopped, like `serve`, keeps its own code).
 * Kept apart from main.ts so it can be driven with other streams and argument lists.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, write, type CliContext, type Command } from './command.js';
import { COMMANDS } from './commands.js';

export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

function version(): string {
  // dist/src/cli/run.js and src/cli/run.ts sit at different depths below the package root.
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'weft' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      /* not at this depth */
    }
  }
  return 'unknown';
}

function generalHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: weft <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run "weft <command> --help" for a command\'s options.',
    'Other flags: --help, --version.',
    'Exit codes: 0 success, 1 runtime failure, 2 bad usage, 128+n when signal n interrupted a command',
    '(SIGINT 130, SIGTERM 143); serve, which runs until stopped, exits 0 after SIGINT/SIGTERM.',
  ].join('\n');
}

/**
 * Runs the CLI. While a command runs, the first SIGINT/SIGTERM aborts its signal (the command
 * closes what it opened, e.g. an engine, and returns); a second one exits at once.
 */
export async function runCli(argv: string[], io: CliIo, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    write(io.stderr, `weft: missing command\n\n${generalHelp(commands)}`);
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    const cmd = topic === undefined ? undefined : commands.find((c) => c.name === topic);
    if (topic !== undefined && cmd === undefined) {
      write(io.stderr, `weft: unknown command ${JSON.stringify(topic)}\n\n${generalHelp(commands)}`);
      return EXIT_USAGE;
    }
    write(io.stdout, cmd === undefined ? generalHelp(commands) : cmd.help);
    return EXIT_OK;
  }
  if (name === '--version' || name === '-v') {
    write(io.stdout, version());
    return EXIT_OK;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    write(io.stderr, `weft: unknown command ${JSON.stringify(name)}\n\n${generalHelp(commands)}`);
    return EXIT_USAGE;
  }

  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (received !== undefined) {
      write(io.stderr, `weft: ${sig} again, exiting without cleanup`);
      process.exit(128 + constants.signals[sig]);
    }
    received = sig;
    write(io.stderr, `weft: ${sig} received, closing (send it again to exit at once)`);
    controller.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: CliContext = { stdout: io.stdout, stderr: io.stderr, signal: controller.signal };
  try {
    const code = await command.run(rest, ctx);
    return received === undefined || command.runsUntilSignal === true ? code : 128 + constants.signals[received];
  } catch (err) {
    if (err instanceof UsageError) {
      write(io.stderr, `${err.message}\n\n${command.help.split('\n')[0] as string}\nRun "weft ${command.name} --help" for details.`);
      return EXIT_USAGE;
    }
    const e = err as Error & { code?: string };
    write(io.stderr, `weft ${command.name}: ${e.code === undefined ? '' : `${e.code}: `}${e.message ?? String(err)}`);
    return received === undefined ? EXIT_FAILURE : 128 + constants.signals[received];
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
