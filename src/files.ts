import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

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
    const file = openSync(temporary, 'w');
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
