import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors.js';
import { decompressedLimit, type IdxArray, isGzip, MAX_DECOMPRESSED_BYTES, parseIdx } from './idx-parse.js';

export { parseIdx, type IdxArray } from './idx-parse.js';

/** Reads an IDX file, gunzipping it first when it starts with the gzip magic bytes. */
export async function readIdxFile(path: string, rank: number): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new DataError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  return parseIdx(decompress(bytes, path), path, rank);
}

/**
 * Returns the bytes of a gzip file, or the bytes themselves when they are not gzip. Inflating stops
 * as soon as the output passes `maxBytes`, or what deflate could encode in `bytes` (a gzip bomb):
 * what lies beyond is never inflated.
 */
export function decompress(bytes: Uint8Array, name: string, maxBytes = MAX_DECOMPRESSED_BYTES): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  const limit = decompressedLimit(bytes.length, maxBytes);
  try {
    return gunzipSync(bytes, { maxOutputLength: limit });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DataError(`${name}: decompresses to more than ${limit} bytes; not reading it`);
    }
    throw new DataError(`${name}: not a valid gzip file (${(error as Error).message}); delete it and get it again`);
  }
}
