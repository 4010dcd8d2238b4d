/**
 * A trainer's worker in a browser, the Web Worker twin of the Piscina worker (worker/worker.ts):
 * starts tfjs-wasm and the project's kernels once, then runs the coordinator's tasks with the same
 * code (runTask). Everything it reads and writes in bulk lives in shared memory.
 */
import { toWireError } from '../errors.js';
import { glueKernels } from '../model/kernels.js';
import type { Task } from '../protocol.js';
import { provideWasmModule, WASM_FILES, type WasmName } from '../wasm.js';
import { runTask } from '../worker/steps.js';
import { startWasmBackend } from './tfjs.js';
import type { WorkerReply } from './messages.js';

/** Where the server (web/server.ts) serves the project's own .wasm files. */
const WASM_PATH = '/wasm/';

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<Task>) => void) | null;
  postMessage(reply: WorkerReply): void;
};

const ready = (async () => {
  await startWasmBackend();
  await Promise.all(
    (Object.keys(WASM_FILES) as WasmName[]).map(async (name) => {
      const url = new URL(WASM_PATH + WASM_FILES[name], globalThis.location.href);
      provideWasmModule(name, await WebAssembly.compileStreaming(fetch(url)));
    }),
  );
  // Checks tfjs-wasm's internals that the kernels rely on now, rather than at the first step.
  glueKernels();
})();

// Set at once, before any await: tasks posted while tfjs starts wait for it here.
scope.onmessage = async (event) => {
  try {
    await ready;
    scope.postMessage({ value: runTask(event.data, exitUnsupported) });
  } catch (error) {
    scope.postMessage({ error: toWireError(error) });
  }
};

/** Faults are injected by Node's tests only (trainWithFaults): a Web Worker never gets an `exit`. */
function exitUnsupported(): never {
  throw new Error('an injected exit fault is for Node worker threads only');
}
