import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { DataError, quoteUntrusted, SaveError } from './errors.js';

/**
 * Writes a file under a temporary name, flushes it to disk, and renames it into place: readers see
 * the old file or the whole new one, and a crash at any moment leaves one of them. The directory is
 * flushed too, so that the rename itself survives a power cut.
 *
 * Synchronous on purpose: no signal handler (a second Ctrl-C exits at once) can run in the middle,
 * so an exit never leaves a temporary file behind. The files written are a few MB at most.
 */
export function writeFileAtomically(path: string, chunks: readonly Uint8Array[] | string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    // A leftover of a crashed run with the same pid goes first; 'wx' then creates the file anew and
    // fails on anything else in its place, so a symbolic link there is never written through.
    rmSync(temporary, { force: true });
    const file = openSync(temporary, 'wx');
    try {
      for (const chunk of typeof chunks === 'string' ? [Buffer.from(chunks)] : chunks) {
        for (let written = 0; written < chunk.length;) written += writeSync(file, chunk, written);
      }
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
    renameSync(temporary, path);
    const directory = openSync(dirname(path), 'r');
    try {
      fsyncSync(directory);
    } finally {
      closeSync(directory);
    }
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** A file to write: its name, and its text or bytes. */
export interface OutputFile {
  readonly name: string;
  readonly data: string | readonly Uint8Array[];
}

export interface WriteFilesOptions {
  /** What was saved before these files, for the message of a failure. */
  readonly saved?: readonly string[];
  /** What would have been written after these files, for the message of a failure. */
  readonly after?: readonly string[];
}

/**
 * Writes `files` into `dir` one after the other, each atomically. When one cannot be written (a
 * full disk, say), throws a SaveError that says in one line what was saved and what was not; none
 * is left half written.
 */
export function writeFilesAtomically(dir: string, files: readonly OutputFile[], options: WriteFilesOptions = {}): void {
  const saved = [...(options.saved ?? [])];
  for (const [i, file] of files.entries()) {
    try {
      writeFileAtomically(join(dir, file.name), file.data);
    } catch (error) {
      throw saveError(dir, error, {
        saved,
        notSaved: [...files.slice(i).map((f) => f.name), ...(options.after ?? [])],
      });
    }
    saved.push(file.name);
  }
}

/** The one-line error for results that could not all be written into `dir`. */
export function saveError(
  dir: string,
  error: unknown,
  files: { readonly saved: readonly string[]; readonly notSaved: readonly string[] },
): SaveError {
  // Node's message is `ENOSPC: no space left on device, write`: the code and what it means.
  const why = error instanceof Error ? error.message.split(',')[0] : String(error);
  return new SaveError(
    `cannot write ${files.notSaved[0]} in ${dir} (${why}); saved: ${files.saved.join(', ') || 'nothing'}; ` +
      `not saved: ${files.notSaved.join(', ')}`,
    { cause: error },
  );
}

/** Characters no file name of ours holds, and a message must not print: NUL, line breaks, terminal escapes. */
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;

/** A regular file found inside a directory, not yet opened. */
export interface FileInside {
  /** As the caller names it: `dir` joined with the name, for messages. */
  readonly path: string;
  /** With every symbolic link resolved: what is opened. */
  readonly real: string;
  readonly size: number;
}

/**
 * Finds the regular file `name` inside `dir`, for a name that comes from a file and cannot be
 * trusted: an absolute name, a `..` that climbs out, or a symbolic link that leads out of `dir` is
 * refused, as is a name with control characters, and nothing is opened to decide that (realpath and lstat read links and inodes, never
 * a file's content, so a FIFO or a device out there is not touched). `namedIn` is the file that
 * names it, for messages. Returns undefined when there is no such file.
 */
export async function findFileInside(dir: string, name: string, namedIn: string): Promise<FileInside | undefined> {
  const path = join(dir, name);
  let root: string;
  try {
    root = await realpath(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(dir, error);
  }
  if (CONTROL_CHARACTERS.test(name)) {
    throw new DataError(`${namedIn}: the file name ${quoteUntrusted(name)} holds control characters; refusing it`);
  }
  if (isAbsolute(name) || !isInside(root, resolve(root, name))) {
    throw new DataError(
      `${namedIn}: ${quoteUntrusted(name)} is not a relative path inside ${dir}; refusing to read it`,
    );
  }
  let real: string;
  try {
    real = await realpath(resolve(root, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(path, error);
  }
  if (!isInside(root, real)) throw new DataError(`${path}: a symbolic link out of ${dir}; refusing to follow it`);
  const stats = await lstat(real);
  if (!stats.isFile()) throw new DataError(`${path}: not a regular file; refusing to read it`);
  return { path, real, size: stats.size };
}

/**
 * Reads a file found by `findFileInside` into `target` at `offset`: exactly the size it had, so a
 * file that grows meanwhile cannot make the read unbounded. Opened without following links and
 * without blocking, in case the file was swapped for one of them since it was found.
 */
export async function readFileInside(file: FileInside, target: Uint8Array, offset = 0): Promise<void> {
  let handle;
  try {
    handle = await open(file.real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw cannotRead(file.path, error);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size !== file.size) throw changedWhileRead(file.path);
    for (let done = 0; done < file.size;) {
      const { bytesRead } = await handle.read(target, offset + done, file.size - done, done);
      if (bytesRead === 0) throw changedWhileRead(file.path);
      done += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

function isInside(root: string, path: string): boolean {
  const rest = relative(root, path);
  return rest !== '' && rest.split(sep)[0] !== '..' && !isAbsolute(rest);
}

function changedWhileRead(path: string): DataError {
  return new DataError(`${path}: changed while being read; try again`);
}

function cannotRead(path: string, error: unknown): DataError {
  return new DataError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
}
