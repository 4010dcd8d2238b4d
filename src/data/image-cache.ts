import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../files.js';
import type { ImageSet } from './image-set.js';

/**
 * Decoded pictures kept on disk, so that only the first run on a folder decodes it: one file per
 * folder and settings, named by hashes of what it was made from. The key covers every picture's
 * path, size and modification time, and the settings that change the pixels (image size, channels,
 * resize mode, pixel limit): a picture added, removed, or changed gives another key, and the old
 * file is removed; another size or channel count gives a file of its own beside it. Read back, the
 * pixels go straight into shared memory, as an IDX file's do.
 */

const MAGIC = 'IMGCACHE1';
/** Bumped when the decoding or the resizing changes what a picture becomes. */
const VERSION = 1;

export interface CacheKey {
  /** The folder's real path, hashed: files of other folders in the same cache directory are left alone. */
  readonly folder: string;
  /** The pictures: paths, sizes, modification times. */
  readonly files: string;
  readonly settings: string;
}

export interface CachedFile {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

export function cacheKey(realRoot: string, files: readonly CachedFile[], settings: object): CacheKey {
  const hash = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');
  return {
    folder: hash(realRoot).slice(0, 12),
    files: hash(files.map((f) => [f.path, f.size, f.mtimeMs])).slice(0, 16),
    settings: hash({ version: VERSION, ...settings }).slice(0, 8),
  };
}

export function cacheFile(dir: string, key: CacheKey): string {
  return join(dir, `${key.folder}-${key.files}-${key.settings}.bin`);
}

interface Header extends Omit<ImageSet, 'images' | 'labels' | 'inTest'> {
  readonly key: CacheKey;
}

/**
 * The set kept in the cache file, or undefined when there is none for this key, or it is not whole
 * (a damaged file is decoded again and replaced, never trusted).
 */
export async function readCache(path: string, key: CacheKey): Promise<ImageSet | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const { size } = await handle.stat();
    const prefix = new Uint8Array(MAGIC.length + 4);
    await handle.read(prefix, 0, prefix.length, 0);
    if (Buffer.from(prefix.subarray(0, MAGIC.length)).toString('latin1') !== MAGIC) return undefined;
    const headerLength = new DataView(prefix.buffer).getUint32(MAGIC.length, true);
    if (prefix.length + headerLength > size) return undefined;
    const headerBytes = new Uint8Array(headerLength);
    await handle.read(headerBytes, 0, headerLength, prefix.length);
    const header = JSON.parse(Buffer.from(headerBytes).toString('utf8')) as Header;
    if (JSON.stringify(header.key) !== JSON.stringify(key)) return undefined;
    const pixels = header.count * header.height * header.width * header.channels;
    if (!Number.isSafeInteger(pixels) || prefix.length + headerLength + pixels + 2 * header.count !== size) return undefined;
    const read = async (length: number, at: number) => {
      const array = new Uint8Array(new SharedArrayBuffer(length));
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handle.read(array, done, length - done, at + done);
        if (bytesRead === 0) throw new Error('short read');
        done += bytesRead;
      }
      return array;
    };
    const start = prefix.length + headerLength;
    const images = await read(pixels, start);
    const labels = await read(header.count, start + pixels);
    const inTest = await read(header.count, start + pixels + header.count);
    const { key: _, ...rest } = header;
    return { ...rest, images, labels, inTest };
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}

/**
 * Writes the set into `dir` under its key, atomically, and removes the files made from an earlier
 * state of the same folder. Throws the file system's error (a read-only folder, a full disk).
 */
export function writeCache(dir: string, key: CacheKey, set: ImageSet): string {
  mkdirSync(dir, { recursive: true });
  const { images, labels, inTest, ...rest } = set;
  const header: Header = { ...rest, key };
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, MAGIC.length);
  const path = cacheFile(dir, key);
  writeFileAtomically(path, [prefix, json, images, labels, inTest]);
  const stale = new RegExp(`^${key.folder}-(?!${key.files}-)[0-9a-f]{16}-[0-9a-f]{8}\\.bin$`);
  for (const name of readdirSync(dir)) if (stale.test(name)) rmSync(join(dir, name), { force: true });
  return path;
}
