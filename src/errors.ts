/**
 * Errors a caller can cause or act on, each a class a program can test for with `instanceof`
 * (also after crossing from a trainer thread: see trainer-thread.ts). Each message is one line that
 * says what is wrong and what to do; the command line prints it as it is, without a stack trace.
 */

/** An option (or command-line flag) has a value the trainer cannot use. */
export class OptionError extends Error {
  override readonly name = 'OptionError';
}

/** Data is missing, unreadable or not what it claims to be. */
export class DataError extends Error {
  override readonly name = 'DataError';
}

/** Training was stopped through the caller's AbortSignal. */
export class AbortError extends Error {
  override readonly name = 'AbortError';
  constructor(message = 'training was aborted') {
    super(message);
  }
}

/** A worker thread failed during training; the message is the worker's. */
export class WorkerError extends Error {
  override readonly name = 'WorkerError';
}

/** The loss or the parameters became NaN or infinite: training diverged. */
export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';
}

/** Training stopped after a step because the caller asked (SIGINT); a checkpoint was written if asked for. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  readonly epoch: number;
  /** Steps of `epoch` done. */
  readonly step: number;
  /** The checkpoint file written, if the run had a checkpoint directory. */
  readonly checkpoint: string | undefined;
  constructor(where: { epoch: number; step: number; checkpoint: string | undefined }) {
    super(
      `training was interrupted at epoch ${where.epoch}, step ${where.step}` +
        (where.checkpoint ? `; checkpoint written to ${where.checkpoint}` : ''),
    );
    ({ epoch: this.epoch, step: this.step, checkpoint: this.checkpoint } = where);
  }
}

/** The classes above by name, to rebuild them when they cross a thread as plain errors. */
export const ERROR_CLASSES = { OptionError, DataError, AbortError, WorkerError, NonFiniteError } as const;

/** True for the errors a user causes: the command line prints their message alone. */
export function isUserError(error: unknown): error is OptionError | DataError | AbortError | NonFiniteError {
  return (
    error instanceof OptionError ||
    error instanceof DataError ||
    error instanceof AbortError ||
    error instanceof NonFiniteError
  );
}
