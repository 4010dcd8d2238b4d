import {
  CTRL_ABORT,
  CTRL_BARRIER_COUNT,
  CTRL_BARRIER_GENERATION,
  CTRL_STOP_DECISION,
  CTRL_STOP_REQUEST,
} from '../protocol.js';
import { StoppedError } from '../stop.js';

/**
 * How long a waiting worker sleeps before it looks at the abort word again. A stop also wakes it
 * with Atomics.notify; this bound only covers the race where the notify comes before the wait.
 */
const WAIT_SLICE_MS = 50;

/**
 * How long a worker polls before it sleeps. Every worker at a barrier has a core to itself (no more
 * workers compute than there are cores), so polling costs nothing, while sleeping and being woken
 * (futex) cost 0.1-0.3 ms per barrier on this kind of VM (measured), more than the whole all-reduce
 * and Adam step.
 */
const SPIN_MS = 2;

/** What a barrier does as it opens, while every worker is at it. */
export interface BarrierOptions {
  /** A control word to zero: the part counter of the phase that follows. */
  readonly reset?: number;
  /** Fix the stop decision that every worker then reads (CTRL_STOP_DECISION). */
  readonly decideStop?: boolean;
}

const NOTHING: BarrierOptions = {};

/**
 * Blocks until all `parties` workers have called it (a generation-counting barrier in shared
 * memory), doing what `options` say as it opens. Every barrier of a run uses the same words: all
 * computing workers pass the same barriers in the same order. Polls for a moment before sleeping.
 * Throws StoppedError instead of waiting forever once the run is stopped.
 */
export function barrier(control: Int32Array, parties: number, options: BarrierOptions = NOTHING): void {
  if (Atomics.load(control, CTRL_ABORT) !== 0) throw new StoppedError();
  const generation = Atomics.load(control, CTRL_BARRIER_GENERATION);
  if (Atomics.add(control, CTRL_BARRIER_COUNT, 1) === parties - 1) {
    // Last to arrive: reset the count before releasing the others, so none of them can count into
    // the next barrier before it is reset; and reset the next phase's part counter, which nobody
    // touches while everyone is here.
    Atomics.store(control, CTRL_BARRIER_COUNT, 0);
    if (options.reset !== undefined) Atomics.store(control, options.reset, 0);
    if (options.decideStop === true)
      Atomics.store(control, CTRL_STOP_DECISION, Atomics.load(control, CTRL_STOP_REQUEST));
    Atomics.add(control, CTRL_BARRIER_GENERATION, 1);
    Atomics.notify(control, CTRL_BARRIER_GENERATION);
    return;
  }
  const until = performance.now() + SPIN_MS;
  while (Atomics.load(control, CTRL_BARRIER_GENERATION) === generation && performance.now() < until);
  while (Atomics.load(control, CTRL_BARRIER_GENERATION) === generation) {
    if (Atomics.load(control, CTRL_ABORT) !== 0) throw new StoppedError();
    Atomics.wait(control, CTRL_BARRIER_GENERATION, generation, WAIT_SLICE_MS);
  }
}
