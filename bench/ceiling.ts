/**
 * What the machine itself allows: the same tfjs-wasm matMul (the size of one worker's forward pass
 * at batch 128) on 1 thread, then on `threads` threads at once. On a VM whose "cores" share
 * execution units the second thread adds far less than a core; the trainer cannot beat this ratio.
 */
import { Worker } from 'node:worker_threads';

const SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
tf.setBackend('wasm').then(() => {
  const a = tf.randomUniform([128, 784]);
  const b = tf.randomUniform([784, 128]);
  for (let i = 0; i < 100; i++) tf.tidy(() => tf.matMul(a, b).dataSync());
  const shared = new Int32Array(workerData.go);
  Atomics.add(shared, 1, 1);
  Atomics.wait(shared, 0, 0);
  let count = 0;
  const until = performance.now() + workerData.ms;
  while (performance.now() < until) { tf.tidy(() => tf.matMul(a, b).dataSync()); count++; }
  parentPort.postMessage(count);
});`;

/** MatMuls per second with `threads` threads running at once. */
async function matMulsPerSecond(threads: number, ms: number): Promise<number> {
  const go = new SharedArrayBuffer(8);
  const flags = new Int32Array(go);
  const workers = Array.from({ length: threads }, () => new Worker(SCRIPT, { eval: true, workerData: { go, ms } }));
  const counts = workers.map((w) => new Promise<number>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));
  while (Atomics.load(flags, 1) < threads) await new Promise((r) => setTimeout(r, 10));
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  const total = (await Promise.all(counts)).reduce((a, b) => a + b, 0);
  await Promise.all(workers.map((w) => w.terminate()));
  return total / (ms / 1000);
}

export interface Ceiling {
  readonly threads: number;
  /** Throughput of `threads` threads over one thread's, for the trainer's own matMul. */
  readonly speedup: number;
}

export async function measureCeiling(threads: number, ms: number): Promise<Ceiling> {
  const one = await matMulsPerSecond(1, ms);
  const many = await matMulsPerSecond(threads, ms);
  return { threads, speedup: many / one };
}
