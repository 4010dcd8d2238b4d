import { DataError } from '../errors.js';

/**
 * The IDX format, as bytes in memory: what the Node reader (idx.ts) and the browser's loader
 * (browser/data.ts) both parse the dataset's files with.
 */

/** An IDX array of unsigned bytes: `dims` from the header, `data` a view of the payload. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;
/** Larger than any IDX file of this project (Fashion-MNIST's biggest is 47 MB) by a wide margin. */
export const MAX_DECOMPRESSED_BYTES = 1 << 30;
/** Deflate cannot encode more than 1032 bytes per input byte: a bound on honest output. */
const DEFLATE_MAX_RATIO = 1032;

/** Whether the bytes start with gzip's magic number. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * The most bytes a gzip file of `compressedBytes` may inflate to before it counts as a gzip bomb:
 * `maxBytes`, or what deflate could encode in that many bytes, whichever is less.
 */
export function decompressedLimit(compressedBytes: number, maxBytes = MAX_DECOMPRESSED_BYTES): number {
  return Math.min(maxBytes, compressedBytes * DEFLATE_MAX_RATIO + 1024);
}

/**
 * Parses an IDX file of unsigned bytes (the format of MNIST and Fashion-MNIST). `name` is used in
 * error messages; `rank` is the number of dimensions the caller needs (1 for labels, 3 for images).
 */
export function parseIdx(bytes: Uint8Array, name: string, rank: number): IdxArray {
  if (bytes.length < 4) {
    throw new DataError(`${name}: not an IDX file (only ${bytes.length} bytes)`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== UNSIGNED_BYTE || bytes[3] !== rank) {
    const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    const want = (0x800 + rank).toString(16).padStart(8, '0');
    throw new DataError(
      `${name}: wrong IDX magic number 0x${magic}, expected 0x${want} (unsigned bytes, ${rank} dimension${rank > 1 ? 's' : ''})`,
    );
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
    throw new DataError(
      `${name}: IDX file is ${what}: dimensions ${dims.join('x')} need ${size} bytes of data, found ${payload}`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}
