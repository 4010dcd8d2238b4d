import { rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Temporary files being written right now, so that an exit can remove them (see below). */
const unfinished = new Set<string>();

/**
 * Writes a file under a temporary name, flushes it to disk, and renames it into place: readers see
 * the old file or the whole new one, and a crash at any moment leaves one of them. The directory is
 * flushed too, so that the rename itself survives a power cut.
 */
export async function writeFileAtomically(path: string, chunks: readonly Uint8Array[] | string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  unfinished.add(temporary);
  try {
    const file = await open(temporary, 'w');
    try {
      if (typeof chunks === 'string') await file.writeFile(chunks);
      else await file.writev([...chunks]);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
    const directory = await open(dirname(path), 'r');
    await directory.sync().finally(() => directory.close());
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  } finally {
    unfinished.delete(temporary);
  }
}

/**
 * For an exit that cannot wait (a second Ctrl-C): removes the temporary files of writes still
 * under way, so that nothing half written is left behind. The files they would have replaced are
 * untouched.
 */
export function removeUnfinishedWrites(): void {
  for (const temporary of unfinished) rmSync(temporary, { force: true });
}
