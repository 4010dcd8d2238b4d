/**
 * Errors a caller can cause or act on, each a class a program can test for with `instanceof`
 * (also after crossing from a trainer thread: see trainer-thread.ts). Each message is one line that
 * says what is wrong and what to do; the command line prints it as it is, without a stack trace.
 */

/** An option (or command-line flag) has a value the trainer cannot use. */
export class OptionError extends Error {
  override readonly name: string = 'OptionError';
}

/**
 * A layer of a tf.Sequential given as the model that the trainer cannot train as it is: its kind or
 * its configuration. The message names it and lists what is supported.
 */
export class UnsupportedLayerError extends OptionError {
  override readonly name = 'UnsupportedLayerError';
  constructor(
    message: string,
    /** The layer's class name, e.g. `BatchNormalization`. */
    readonly layerClass: string,
  ) {
    super(message);
  }
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

/**
 * Results could not be written (a full disk, say): the message says in one line what was saved and
 * what was not. Thrown by the command line's writers, not by the library.
 */
export class SaveError extends Error {
  override readonly name = 'SaveError';
}

/** The classes above whose one argument is the message, by name, to rebuild them when they cross a thread. */
const MESSAGE_CLASSES = { OptionError, DataError, AbortError, WorkerError, NonFiniteError } as const;

/**
 * An error as it crosses a thread: structured cloning keeps an Error's message but not its class
 * or its own fields (InterruptedError's epoch, step and checkpoint), so it goes as plain data.
 */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  /** InterruptedError's fields. */
  readonly where?: { epoch: number; step: number; checkpoint: string | undefined };
}

export function toWireError(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), stack: undefined };
  const where =
    error instanceof InterruptedError
      ? { epoch: error.epoch, step: error.step, checkpoint: error.checkpoint }
      : undefined;
  return { name: error.name, message: error.message, stack: error.stack, where };
}

/** The error again, as an instance of its class when it is one of this project's; `origin` is added to its stack. */
export function fromWireError(wire: WireError, origin: string): Error {
  const Class = MESSAGE_CLASSES[wire.name as keyof typeof MESSAGE_CLASSES];
  let error: Error;
  if (wire.name === 'InterruptedError' && wire.where !== undefined) error = new InterruptedError(wire.where);
  else if (Class !== undefined) error = new Class(wire.message);
  else error = Object.assign(new Error(wire.message), { name: wire.name });
  error.stack = `${wire.name}: ${wire.message}\n    (${origin})\n${wire.stack?.split('\n').slice(1).join('\n') ?? ''}`;
  return error;
}

/** Text from an untrusted file for a message: quoted, cut short, and on one line with no control characters. */
export function quoteUntrusted(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text).replace(/[\u007f-\u009f\u2028\u2029]/g, '?');
}

/** True for the errors a user causes: the command line prints their message alone. */
export function isUserError(
  error: unknown,
): error is OptionError | DataError | AbortError | NonFiniteError | SaveError {
  return (
    error instanceof OptionError ||
    error instanceof DataError ||
    error instanceof AbortError ||
    error instanceof NonFiniteError ||
    error instanceof SaveError
  );
}
