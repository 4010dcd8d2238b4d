import { CTRL_ABORT, CTRL_BARRIER_COUNT, CTRL_BARRIER_GENERATION } from '../protocol.js';

/** Thrown in a worker whose run was stopped by another worker's failure or by the caller. */
export class StoppedError extends Error {
  override readonly name = 'StoppedError';
  constructor() {
    super('stopped: another worker failed or training was aborted');
  }
}

/**
 * How long a waiting worker sleeps before it looks at the abort word again. A stop also wakes it
 * with Atomics.notify; this bound only covers the race where the notify comes before the wait.
 */
const WAIT_SLICE_MS = 50;

/**
 * Blocks until all `parties` workers have called it (a generation-counting barrier in shared
 * memory). Throws StoppedError instead of waiting forever once the run is stopped.
 */
export function barrier(control: Int32Array, parties: number): void {
  if (Atomics.load(control, CTRL_ABORT) !== 0) throw new StoppedError();
  const generation = Atomics.load(control, CTRL_BARRIER_GENERATION);
  if (Atomics.add(control, CTRL_BARRIER_COUNT, 1) === parties - 1) {
    // Last to arrive: reset the count before releasing the others, so none of them can count into
    // the next barrier before it is reset.
    Atomics.store(control, CTRL_BARRIER_COUNT, 0);
    Atomics.add(control, CTRL_BARRIER_GENERATION, 1);
    Atomics.notify(control, CTRL_BARRIER_GENERATION);
    return;
  }
  while (Atomics.load(control, CTRL_BARRIER_GENERATION) === generation) {
    if (Atomics.load(control, CTRL_ABORT) !== 0) throw new StoppedError();
    Atomics.wait(control, CTRL_BARRIER_GENERATION, generation, WAIT_SLICE_MS);
  }
}
