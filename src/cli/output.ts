import { access, constants, mkdir, readdir, rmdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { OptionError } from '../errors.js';

/**
 * Makes sure `--out` can take the results before any training time is spent on them. Returns a
 * cleanup that removes the directories this call created if they are still empty, so that a failed
 * run leaves nothing that looks like a result.
 */
export async function prepareOutputDir(dir: string): Promise<() => Promise<void>> {
  const fail = (why: string) => new OptionError(`--out "${dir}" ${why}; pick another --out`);
  // The missing directories, outermost first. Not mkdir({ recursive: true }): on Node 20 it loops
  // forever under /proc (ENOENT for a child of a directory that exists).
  const missing: string[] = [];
  let path = resolve(dir);
  for (;;) {
    const found = await stat(path).catch(() => undefined);
    if (found !== undefined) {
      if (!found.isDirectory())
        throw fail(missing.length === 0 ? 'is a file, not a directory' : `cannot be created: ${path} is a file`);
      break;
    }
    missing.unshift(path);
    if (dirname(path) === path) break;
    path = dirname(path);
  }
  try {
    for (const directory of missing) await mkdir(directory);
    await access(resolve(dir), constants.W_OK);
  } catch (error) {
    throw fail(`cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  return async () => {
    for (const directory of missing.reverse()) {
      if ((await readdir(directory).catch(() => ['?'])).length > 0) return;
      await rmdir(directory).catch(() => undefined);
    }
  };
}
