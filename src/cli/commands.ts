/**
 * The command table. A new command is one file exporting a {@link Command} and one line here;
 * `weft --help` lists them in this order.
 */
import { bench } from './bench.js';
import type { Command } from './command.js';
import { inspect } from './inspect.js';
import { serve } from './serve.js';

export const COMMANDS: readonly Command[] = [bench, { ...serve, runsUntilSignal: true }, inspect];
