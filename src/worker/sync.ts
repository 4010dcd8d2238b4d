import { CTRL_ABORT, CTRL_BARRIER_COUNT, CTRL_BARRIER_GENERATION, CTRL_CORES_FREE } from '../protocol.js';

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
 * How long a worker polls before it sleeps, when it has a core to itself. Waking a sleeping thread
 * (futex) costs 50-300 us on this kind of VM, several times the whole all-reduce and Adam step;
 * polling costs nothing when no other thread wants the core.
 */
const SPIN_MS = 2;

/**
 * Blocks until all `parties` workers have called it (a generation-counting barrier in shared
 * memory). With `spin`, polls for a moment before sleeping: for when every worker has a core, never
 * when workers outnumber cores (a polling thread would take the core from one still computing).
 * Throws StoppedError instead of waiting forever once the run is stopped.
 */
export function barrier(control: Int32Array, parties: number, spin: boolean): void {
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
  if (spin) {
    const until = performance.now() + SPIN_MS;
    while (Atomics.load(control, CTRL_BARRIER_GENERATION) === generation && performance.now() < until);
  }
  while (Atomics.load(control, CTRL_BARRIER_GENERATION) === generation) {
    if (Atomics.load(control, CTRL_ABORT) !== 0) throw new StoppedError();
    Atomics.wait(control, CTRL_BARRIER_GENERATION, generation, WAIT_SLICE_MS);
  }
}

/**
 * Takes one of the machine's cores (a counting semaphore in shared memory) before heavy work, when
 * workers outnumber cores. Without it, every barrier wakes all the workers at once and the kernel
 * time-slices them, each preempting the others mid-matMul; with it, as many compute as there are
 * cores and each runs to the end of its shard with its data in cache.
 */
export function acquireCore(control: Int32Array): void {
  for (;;) {
    const free = Atomics.load(control, CTRL_CORES_FREE);
    if (free > 0) {
      if (Atomics.compareExchange(control, CTRL_CORES_FREE, free, free - 1) === free) return;
      continue;
    }
    if (Atomics.load(control, CTRL_ABORT) !== 0) throw new StoppedError();
    Atomics.wait(control, CTRL_CORES_FREE, 0, WAIT_SLICE_MS);
  }
}

export function releaseCore(control: Int32Array): void {
  Atomics.add(control, CTRL_CORES_FREE, 1);
  Atomics.notify(control, CTRL_CORES_FREE, 1);
}
