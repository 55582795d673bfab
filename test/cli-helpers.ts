/** Running the compiled CLI as a child process (not a test file itself). */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'moe-placer.js');

function newestMtime(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) t = Math.max(t, newestMtime(p));
    else if (name.endsWith('.ts')) t = Math.max(t, st.mtimeMs);
  }
  return t;
}

/** Compile to dist/ when dist/src/cli.js is missing or older than a source file (npm test builds first). */
export function ensureBuilt(): void {
  const cli = join(ROOT, 'dist', 'src', 'cli.js');
  const src = newestMtime(join(ROOT, 'src'));
  if (existsSync(cli) && statSync(cli).mtimeMs >= src) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Called with each stderr chunk and the child (e.g. to send SIGINT). */
  onStderr?: (chunk: string, kill: (sig: NodeJS.Signals) => void) => void;
}

/** Run `node bin/moe-placer.js ...args`. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, MOE_PLACER_PROGRESS: '0', MOE_PLACER_DEBUG: '0', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      opts.onStderr?.(c, (sig) => child.kill(sig));
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
