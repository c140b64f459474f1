// Where a worker thread's script is: the compiled JS beside the caller (dist), else its TS source (tests under
// tap), run with our own execArgv so that the loader that compiles us (tap's `--import` of its TS hooks)
// compiles the worker too. Null when neither exists.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerScript(callerUrl: string, name: string): { url: URL; execArgv?: string[] } | null {
  const js = new URL(`./${name}.js`, callerUrl);
  if (existsSync(fileURLToPath(js))) return { url: js };
  const ts = new URL(`./${name}.ts`, callerUrl);
  if (existsSync(fileURLToPath(ts))) return { url: ts, execArgv: process.execArgv };
  return null;
}
