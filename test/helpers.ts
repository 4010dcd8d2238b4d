/**
 * Test helpers. Tests import the built package (`dist/`, built by `npm test` first): worker threads
 * load compiled JavaScript, so the tests exercise exactly what ships.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

export const ROOT = resolve(import.meta.dirname, '..');
export const TRAIN_CLI = join(ROOT, 'dist', 'scripts', 'train.js');
export const DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

export function tempDir(prefix = 'fmnist-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The bytes of an IDX file of unsigned bytes: magic, big-endian dimensions, payload. */
export function idxBytes(dims: number[], data: Uint8Array, magic = 0x0800 + dims.length): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

export function gzip(bytes: Uint8Array): Buffer {
  return gzipSync(bytes);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a compiled script with node and collects its output. */
export function runNode(
  script: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
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

/** A directory with the four files, holding `train` and `test` tiny 28x28 splits. */
export function tinyDataset(
  options: { trainLabels?: Uint8Array; testImages?: number; rawTest?: boolean } = {},
): string {
  const dir = tempDir();
  const trainLabels = options.trainLabels ?? Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  const testImages = options.testImages ?? 5;
  const images = (n: number) =>
    idxBytes(
      [n, 28, 28],
      Uint8Array.from({ length: n * 784 }, (_, i) => i % 251),
    );
  writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzip(images(12)));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzip(idxBytes([trainLabels.length], trainLabels)));
  const test = images(testImages);
  if (options.rawTest) writeFileSync(join(dir, 't10k-images-idx3-ubyte'), test);
  else writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzip(test));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzip(idxBytes([5], Uint8Array.from([9, 8, 7, 6, 5]))));
  return dir;
}

/** The OS threads of this process (Linux): every worker thread is one, so a leaked worker shows. */
export function osThreads(): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

/**
 * The thread count once it stops changing: a terminated worker's OS thread is joined a moment after
 * `terminate()` resolves. With `expected`, returns as soon as the count is that.
 */
export async function settledOsThreads(expected?: number): Promise<number> {
  let last = osThreads();
  for (let i = 0; i < 50 && last !== expected; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = osThreads();
    if (now === last && expected === undefined) return now;
    last = now;
  }
  return last;
}
