import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors.js';

/** An IDX array of unsigned bytes: `dims` from the header, `data` a view of the payload. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;
const GZIP_MAGIC = [0x1f, 0x8b];
/** Larger than any IDX file of this project (Fashion-MNIST's biggest is 47 MB) by a wide margin. */
const MAX_DECOMPRESSED_BYTES = 1 << 30;
/** Deflate cannot encode more than 1032 bytes per input byte: a bound on honest output. */
const DEFLATE_MAX_RATIO = 1032;

/**
 * Parses an IDX file of unsigned bytes (the format of MNIST and Fashion-MNIST). `name` is used in
 * error messages; `rank` is the number of dimensions the caller needs (1 for labels, 3 for images).
 */
export function parseIdx(bytes: Uint8Array, name: string, rank: number): IdxArray {
  if (bytes.length < 4) {
    throw new DataError(`${name}: not an IDX file (only ${bytes.length} bytes)`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== UNSIGNED_BYTE || bytes[3] !== rank) {
    const magic = Buffer.from(bytes.subarray(0, 4)).toString('hex');
    const want = (0x800 + rank).toString(16).padStart(8, '0');
    throw new DataError(`${name}: wrong IDX magic number 0x${magic}, expected 0x${want} (unsigned bytes, ${rank} dimension${rank > 1 ? 's' : ''})`);
  }
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw new DataError(`${name}: truncated IDX header (${bytes.length} of ${headerBytes} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < rank; i++) {
    const dim = view.getUint32(4 + 4 * i, false);
    dims.push(dim);
    size *= dim;
  }
  const payload = bytes.length - headerBytes;
  if (payload !== size) {
    const what = payload < size ? 'truncated' : 'longer than its header says';
    throw new DataError(`${name}: IDX file is ${what}: dimensions ${dims.join('x')} need ${size} bytes of data, found ${payload}`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

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
  if (bytes[0] !== GZIP_MAGIC[0] || bytes[1] !== GZIP_MAGIC[1]) return bytes;
  const limit = Math.min(maxBytes, bytes.length * DEFLATE_MAX_RATIO + 1024);
  try {
    return gunzipSync(bytes, { maxOutputLength: limit });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DataError(`${name}: decompresses to more than ${limit} bytes; not reading it`);
    }
    throw new DataError(`${name}: not a valid gzip file (${(error as Error).message}); delete it and get it again`);
  }
}
