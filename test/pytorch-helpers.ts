/**
 * Helpers of the tests of the PyTorch export (test/pytorch.test.ts, test/ddp.test.ts): real data
 * cut to size, Python with torch, free ports for DDP's rendezvous.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { findTorchPython } from '../dist/bench/peers/sides.js';
import { type CliResult, DEBIAN_DIR, tempDir } from './helpers.js';

/** A Python that imports torch, as the peer comparison finds one; undefined without. */
export const python = await findTorchPython();

/** Set by .ci/run, which installs torch: there, a missing torch fails the tests instead of skipping them. */
export const TORCH_REQUIRED = process.env.PEERS_REQUIRE_TORCH === '1';

export const NO_TORCH =
  'skipped: no python3 with torch here (apt-get install -y python3-torch libopenblas0-pthread; .ci/run installs them)';

/**
 * A directory with the four IDX files (not gzipped) holding the first `train` training images and
 * the first `test` test images of the real Fashion-MNIST: the same bytes for both sides.
 */
export function realSubset(train: number, test: number): string {
  const dir = tempDir('fmnist-subset-');
  const cut = (name: string, count: number, rank: number) => {
    const bytes = gunzipSync(readFileSync(join(DEBIAN_DIR, `${name}.gz`)));
    const header = Buffer.from(bytes.subarray(0, 4 + 4 * rank));
    header.writeUInt32BE(count, 4);
    const per = rank === 3 ? 28 * 28 : 1;
    writeFileSync(join(dir, name), Buffer.concat([header, bytes.subarray(header.length, header.length + count * per)]));
  };
  cut('train-images-idx3-ubyte', train, 3);
  cut('train-labels-idx1-ubyte', train, 1);
  cut('t10k-images-idx3-ubyte', test, 3);
  cut('t10k-labels-idx1-ubyte', test, 1);
  return dir;
}

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
