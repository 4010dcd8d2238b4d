import { mkdir, readdir, rmdir, stat } from 'node:fs/promises';
import { OptionError } from '../errors.js';

/**
 * Makes sure `--out` can take the results before any training time is spent on them. Returns a
 * cleanup that removes the directory again if this call created it and it is still empty, so a
 * failed run leaves no directory that looks like a result.
 */
export async function prepareOutputDir(dir: string): Promise<() => Promise<void>> {
  const existed = await stat(dir).then((s) => {
    if (!s.isDirectory()) throw new OptionError(`--out "${dir}" is a file, not a directory; pick another --out`);
    return true;
  }, () => false);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new OptionError(`--out "${dir}" cannot be created (${(error as NodeJS.ErrnoException).code}); pick another --out`);
  }
  return async () => {
    if (!existed && (await readdir(dir).catch(() => ['?'])).length === 0) await rmdir(dir).catch(() => undefined);
  };
}
