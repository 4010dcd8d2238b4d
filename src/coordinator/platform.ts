import type { Dataset } from '../data/dataset.js';
import type { EvaluateResult, Task } from '../protocol.js';
import type { Checkpoint } from './config.js';

/**
 * The threads a Session runs its tasks on: Piscina's worker threads in Node (node-platform.ts), Web
 * Workers in a browser (browser/web-worker-pool.ts). Workers keep their state (tfjs, its wasm
 * module, the network's buffers) from one task to the next.
 */
export interface WorkerPool {
  /**
   * Runs a task on a free worker. Rejects with the worker's error, its message kept (the Session
   * tells a StoppedError by it), or when the worker dies.
   */
  run(task: Task): Promise<EvaluateResult | undefined>;
  /** Ends every worker, a hung one too. */
  destroy(): Promise<void>;
}

/**
 * What the trainer needs from where it runs; everything else (the step loop, the shared memory, the
 * workers' kernels, the barriers, the evaluation) is the same code in Node and in a browser.
 */
export interface Platform {
  /** Logical cores: the default worker count, and how many workers compute at once (see runSteps). */
  readonly cores: number;
  /** A pool of `workers` workers. */
  createPool(workers: number): WorkerPool;
  /** The dataset for a run given no `data` (Node: Fashion-MNIST, found by loadFashionMnist). */
  loadData(dataDir: string | undefined): Promise<Dataset>;
  /**
   * Throws an OptionError unless checkpoints can be written into `dir`: called before training, so
   * that a wrong directory is not found out at the first checkpoint, epochs later.
   */
  checkCheckpointDir(dir: string): void;
  /** Writes `checkpoint` into the directory `dir` and returns the file's path. */
  writeCheckpoint(dir: string, checkpoint: Checkpoint): string;
}
