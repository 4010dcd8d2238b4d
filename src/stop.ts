import { CTRL_ABORT, CTRL_BARRIER_GENERATION } from './protocol.js';

/**
 * Stops a run: every worker throws StoppedError at its next barrier instead of waiting. Called by a
 * worker that failed and by the coordinator (a task rejected, a worker hung, or the caller aborted).
 */
export function requestStop(control: Int32Array): void {
  Atomics.store(control, CTRL_ABORT, 1);
  Atomics.notify(control, CTRL_BARRIER_GENERATION);
}

/** Thrown in a worker whose run was stopped by another worker's failure or by the caller. */
export class StoppedError extends Error {
  override readonly name = 'StoppedError';
  /** How the coordinator tells it apart: errors cross threads as plain Errors, keeping their message. */
  static readonly MESSAGE = 'stopped: another worker failed or training was aborted';
  constructor() {
    super(StoppedError.MESSAGE);
  }
}
