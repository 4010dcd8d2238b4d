/**
 * What the machine itself allows: the trainer's own gradient computation for one shard, on 1 thread,
 * then on `threads` threads at once, with no barrier, all-reduce or optimizer. On a VM whose cores
 * share execution units or memory bandwidth, a second thread adds less than a core; the trainer's
 * speedup over 1 worker cannot beat this ratio.
 */
import { Worker } from 'node:worker_threads';
import type { Dataset } from '../src/data/dataset.js';
import type { LayerSpec } from '../src/model/spec.js';

const WORKER = new URL('./ceiling-worker.js', import.meta.url);

/** Shard gradients per second with `threads` threads computing at once. */
async function shardsPerSecond(
  data: Dataset,
  layers: readonly LayerSpec[],
  threads: number,
  rows: number,
  ms: number,
): Promise<number> {
  const go = new Int32Array(new SharedArrayBuffer(8));
  const job = { images: data.train.images, labels: data.train.labels, layers, rows, ms, go };
  const workers = Array.from({ length: threads }, () => new Worker(WORKER, { workerData: job }));
  const counts = workers.map(
    (w) =>
      new Promise<number>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  while (Atomics.load(go, 1) < threads) await new Promise((r) => setTimeout(r, 10));
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  const total = (await Promise.all(counts)).reduce((a, b) => a + b, 0);
  await Promise.all(workers.map((w) => w.terminate()));
  return total / (ms / 1000);
}

export interface Ceiling {
  readonly threads: number;
  readonly rows: number;
  /** Throughput of `threads` threads over one thread's, for the trainer's shard gradient. */
  readonly speedup: number;
}

export async function measureCeiling(
  data: Dataset,
  layers: readonly LayerSpec[],
  threads: number,
  rows: number,
  ms: number,
): Promise<Ceiling> {
  const one = await shardsPerSecond(data, layers, 1, rows, ms);
  const many = await shardsPerSecond(data, layers, threads, rows, ms);
  return { threads, rows, speedup: many / one };
}
