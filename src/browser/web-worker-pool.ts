import type { WorkerPool } from '../coordinator/platform.js';
import { fromWireError } from '../errors.js';
import type { EvaluateResult, Task } from '../protocol.js';
import type { WorkerReply } from './messages.js';

interface Job {
  readonly task: Task;
  resolve(value: EvaluateResult | undefined): void;
  reject(error: Error): void;
}

/**
 * Piscina's part, in a browser: `workers` module Web Workers that keep their state between tasks,
 * each running one task at a time. A worker whose script fails is replaced, and its task rejected.
 */
export class WebWorkerPool implements WorkerPool {
  readonly #url: URL;
  readonly #idle: Worker[] = [];
  readonly #running = new Map<Worker, Job>();
  readonly #queue: Job[] = [];
  #destroyed = false;

  constructor(url: URL, workers: number) {
    this.#url = url;
    for (let i = 0; i < workers; i++) this.#idle.push(this.#start());
  }

  run(task: Task): Promise<EvaluateResult | undefined> {
    if (this.#destroyed) return Promise.reject(new Error('the worker pool is destroyed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ task, resolve, reject });
      this.#dispatch();
    });
  }

  async destroy(): Promise<void> {
    this.#destroyed = true;
    // terminate() stops a worker wherever it is, blocked at a barrier (Atomics.wait) or mid-step.
    const error = new Error('the worker pool was destroyed');
    for (const [worker, job] of this.#running) {
      worker.terminate();
      job.reject(error);
    }
    for (const worker of this.#idle) worker.terminate();
    for (const job of this.#queue) job.reject(error);
    this.#running.clear();
    this.#idle.length = 0;
    this.#queue.length = 0;
  }

  #start(): Worker {
    const worker = new Worker(this.#url, { type: 'module' });
    worker.onmessage = (event: MessageEvent<WorkerReply>) => this.#settle(worker, event.data);
    // An uncaught error: the worker's script failed to load, or threw outside a task.
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      const job = this.#running.get(worker);
      this.#running.delete(worker);
      this.#idle.splice(this.#idle.indexOf(worker) >>> 0, 1);
      if (!this.#destroyed) this.#idle.push(this.#start());
      job?.reject(new Error(`a worker failed: ${event.message || 'its script did not load'}`));
      this.#dispatch();
    };
    return worker;
  }

  #settle(worker: Worker, reply: WorkerReply): void {
    const job = this.#running.get(worker);
    if (job === undefined) return;
    this.#running.delete(worker);
    this.#idle.push(worker);
    if ('error' in reply) job.reject(fromWireError(reply.error, 'in a web worker'));
    else job.resolve(reply.value);
    this.#dispatch();
  }

  #dispatch(): void {
    while (!this.#destroyed && this.#idle.length > 0 && this.#queue.length > 0) {
      const worker = this.#idle.pop() as Worker;
      const job = this.#queue.shift() as Job;
      this.#running.set(worker, job);
      worker.postMessage(job.task);
    }
  }
}
