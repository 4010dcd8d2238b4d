/**
 * The Piscina worker: sets tfjs up on its WebAssembly backend once, when the thread starts, then
 * runs the coordinator's tasks. Everything it reads and writes in bulk lives in shared memory.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { EvaluateResult, Task } from '../protocol.js';
import { runTask } from './steps.js';

// Top-level await: Piscina sends the first task only after the module has loaded.
await tf.setBackend('wasm');

export default function handle(task: Task): EvaluateResult | undefined {
  return runTask(task, (code) => process.exit(code));
}
