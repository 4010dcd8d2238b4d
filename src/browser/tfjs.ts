import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

/** Where the server (web/server.ts) serves tfjs-wasm's own .wasm files. */
const TFJS_WASM_PATH = '/tfjs/';

/**
 * Starts tfjs on its WebAssembly backend, single-threaded, with SIMD, in the page and in each
 * worker. Single-threaded on purpose: the threaded build would start pthreads of its own on a
 * shared memory, which the glue kernels cannot import (kernels.wat's memory is unshared), and the
 * cores are the trainer's workers' already. SIMD is required: the project's kernels use it.
 */
export async function startWasmBackend(): Promise<void> {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) {
    throw new Error("this browser's WebAssembly has no SIMD, which the trainer's kernels need");
  }
  setWasmPaths(new URL(TFJS_WASM_PATH, globalThis.location.href).href);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs could not start its WebAssembly backend');
}
