/**
 * Helpers of the tests of the PyTorch export (test/pytorch.test.ts, test/ddp.test.ts): real data
 * cut to size (from helpers.ts, which other tests share), Python with torch, free ports for DDP's
 * rendezvous.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { findTorchPython } from '../dist/bench/peers/sides.js';
import type { CliResult } from './helpers.js';

export { realSubset } from './helpers.js';

/** A Python that imports torch, as the peer comparison finds one; undefined without. */
export const python = await findTorchPython();

/** Set by .ci/run, which installs torch: there, a missing torch fails the tests instead of skipping them. */
export const TORCH_REQUIRED = process.env.PEERS_REQUIRE_TORCH === '1';

export const NO_TORCH =
  'skipped: no python3 with torch here (apt-get install -y python3-torch libopenblas0-pthread; .ci/run installs them)';

/** Runs the Python with torch on `args` (a script and its arguments, or `-c` and code), one OpenBLAS thread. */
export function runPython(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(python as string, args, {
      cwd: options.cwd,
      env: { ...process.env, OPENBLAS_NUM_THREADS: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** A TCP port nobody listens on now, for a rendezvous on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}
