/**
 * The Piscina worker: sets tfjs up on its WebAssembly backend once, when the thread starts, then
 * runs the coordinator's tasks. Everything it reads and writes in bulk lives in shared memory.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { CTRL_TASKS_STARTED, type EvaluateResult, type Task } from '../protocol.js';
import { runEvaluate, runSteps } from './steps.js';

// Top-level await: Piscina sends the first task only after the module has loaded.
await tf.setBackend('wasm');

export default function handle(task: Task): EvaluateResult | undefined {
  // This worker has started: from here on, the coordinator's watchdog times its steps.
  Atomics.add(task.shared.control, CTRL_TASKS_STARTED, 1);
  switch (task.kind) {
    case 'steps':
      runSteps(task);
      return undefined;
    case 'evaluate':
      return runEvaluate(task);
  }
}
