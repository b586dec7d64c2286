/**
 * Child processes of the suite: workloads whose figures include the process's memory run in a
 * process of their own (run.ts's isolated workloads, the large store's populate.ts, workload
 * (c)'s send loops). The child sends one result over IPC and exits; the parent gets that result.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Runs `script` with `argv` in a child process (stdout and stderr inherited) and resolves with the
 * message it sent ({@link sendResult}) once it exited with code 0; rejects naming `what` otherwise.
 */
export function forkResult<T>(script: URL, argv: readonly string[], what: string, options: { env?: NodeJS.ProcessEnv; execArgv?: string[] } = {}): Promise<T> {
  const child = fork(fileURLToPath(script), argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...options });
  return new Promise((resolve, reject) => {
    let result: T | undefined;
    child.on('message', (m: unknown) => {
      result = m as T;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0 && result !== undefined) resolve(result);
      else reject(new Error(`${what} exited with code ${String(code)}`));
    });
  });
}

/** Child side: sends `result` to the parent and lets the process end. */
export async function sendResult(result: unknown): Promise<void> {
  await new Promise<void>((resolve) => process.send?.(result, () => resolve()) ?? resolve());
  process.disconnect?.();
}
