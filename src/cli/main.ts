#!/usr/bin/env node
/** The `weft` executable: boots the CLI (see run.ts) and exits with its code. */
import { runCli } from './run.js';

const code = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
process.exitCode = code;
