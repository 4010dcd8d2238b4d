/**
 * What the machine itself allows: the trainer's own gradient computation for one shard, on 1 thread,
 * then on `threads` threads at once, with no barrier, all-reduce or optimizer. On a VM whose cores
 * share execution units or memory bandwidth, a second thread adds less than a core; the trainer's
 * speedup over 1 worker cannot beat this ratio.
 *
 * The threads start once and stay, blocked, between rounds: a benchmark takes a round (1 thread,
 * then all of them) between its other measurements, so that each round's ratio sees the machine as
 * it is then, and reports the median of the rounds' ratios.
 */
import { Worker } from 'node:worker_threads';
import type { Dataset } from '../src/data/dataset.js';
import type { LayerSpec } from '../src/model/kinds.js';
import { ACTIVE, CONTROL_WORDS, READY, ROUND } from './ceiling-control.js';
import { median } from './stats.js';

const WORKER = new URL('./ceiling-worker.js', import.meta.url);

export interface Ceiling {
  readonly threads: number;
  readonly rows: number;
  /** Throughput of `threads` threads over one thread's, for the trainer's shard gradient: the median of the rounds'. */
  readonly speedup: number;
  /** Each round's ratio, in order. */
  readonly rounds: number[];
  /** Milliseconds per shard on one thread alone, and on each of `threads` threads at once: medians of the rounds'. */
  readonly shardMs: { readonly one: number; readonly many: number };
}

export class CeilingMeter {
  readonly #workers: Worker[];
  readonly #control: Int32Array;
  readonly #ratios: number[] = [];
  readonly #oneMs: number[] = [];
  readonly #manyMs: number[] = [];

  private constructor(workers: Worker[], control: Int32Array) {
    this.#workers = workers;
    this.#control = control;
  }

  /** Starts `threads` threads computing the gradient of `rows`-image shards, and waits until they are warm. */
  static async start(
    data: Dataset,
    layers: readonly LayerSpec[],
    options: { threads: number; rows: number; ms: number; warmupMs: number },
  ): Promise<CeilingMeter> {
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    const job = {
      images: data.train.images,
      labels: data.train.labels,
      layers,
      rows: options.rows,
      ms: options.ms,
      warmupMs: options.warmupMs,
      control,
    };
    const workers = Array.from(
      { length: options.threads },
      (_, index) => new Worker(WORKER, { workerData: { ...job, index } }),
    );
    const failed = new Promise<never>((_, reject) => workers.forEach((w) => w.once('error', reject)));
    const ready = (async () => {
      while (Atomics.load(control, READY) < options.threads) await new Promise((r) => setTimeout(r, 10));
    })();
    await Promise.race([ready, failed]);
    return new CeilingMeter(workers, control);
  }

  get threads(): number {
    return this.#workers.length;
  }

  /** Shard gradients per second with `active` threads computing at once. */
  async #shardsPerSecond(active: number): Promise<number> {
    const rates = this.#workers.slice(0, active).map(
      (w) =>
        new Promise<number>((resolve, reject) => {
          w.once('error', reject);
          w.once('message', (rate: number) => {
            w.off('error', reject);
            resolve(rate);
          });
        }),
    );
    Atomics.store(this.#control, ACTIVE, active);
    Atomics.add(this.#control, ROUND, 1);
    Atomics.notify(this.#control, ROUND);
    return (await Promise.all(rates)).reduce((a, b) => a + b, 0);
  }

  /** One round: 1 thread, then all of them. */
  async round(): Promise<void> {
    const one = await this.#shardsPerSecond(1);
    const many = await this.#shardsPerSecond(this.threads);
    this.#ratios.push(many / one);
    this.#oneMs.push(1000 / one);
    this.#manyMs.push((1000 * this.threads) / many);
  }

  result(rows: number): Ceiling {
    return {
      threads: this.threads,
      rows,
      speedup: median(this.#ratios),
      rounds: [...this.#ratios],
      shardMs: { one: median(this.#oneMs), many: median(this.#manyMs) },
    };
  }

  async close(): Promise<void> {
    Atomics.store(this.#control, ACTIVE, -1);
    Atomics.add(this.#control, ROUND, 1);
    Atomics.notify(this.#control, ROUND);
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
