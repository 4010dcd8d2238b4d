/**
 * Errors a caller can cause and act on. Each message is one line that says what is wrong and what
 * to do; the command line prints it as it is, without a stack trace.
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

/** True for the errors above: the command line prints their message alone. */
export function isUserError(error: unknown): error is OptionError | DataError | AbortError {
  return error instanceof OptionError || error instanceof DataError || error instanceof AbortError;
}
