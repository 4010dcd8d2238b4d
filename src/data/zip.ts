import { DataError } from '../errors.js';
import { decompressedLimit } from './idx-parse.js';

/**
 * A zip file's directory and entries, read with the platform's own DecompressionStream (a browser's,
 * or Node's): how the web page reads a zipped folder of pictures, with nothing to install. Reads
 * ranges of the Blob (a File) as it needs them, never the whole archive. Stored and deflated entries;
 * no encryption, no ZIP64 (4 GB or 65,535 entries).
 */

export interface ZipEntry {
  /** `/`-separated, relative; a folder's ends with `/` in the archive, not here. */
  readonly path: string;
  readonly isDirectory: boolean;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  /** Where its local header starts. */
  readonly offset: number;
}

/** No picture is larger than this; an entry that says so is refused before anything is inflated. */
export const MAX_ENTRY_BYTES = 1 << 28;

const END_OF_DIRECTORY = 0x06054b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;

async function bytesOf(blob: Blob, start: number, end: number): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await blob.slice(start, end).arrayBuffer());
}

/** The archive's entries, from its central directory; `name` names the zip in messages. */
export async function readZipDirectory(zip: Blob, name: string): Promise<ZipEntry[]> {
  const damaged = (why: string) => new DataError(`${name}: not a zip file, or a damaged one (${why})`);
  // The end record is the last 22 bytes, followed by a comment of up to 65,535.
  const tailStart = Math.max(0, zip.size - 22 - 0xffff);
  const tail = await bytesOf(zip, tailStart, zip.size);
  const view = new DataView(tail.buffer);
  let end = -1;
  for (let at = tail.length - 22; at >= 0; at--) {
    if (view.getUint32(at, true) === END_OF_DIRECTORY) {
      end = at;
      break;
    }
  }
  if (end < 0) throw damaged('no end of central directory');
  const count = view.getUint16(end + 10, true);
  const directorySize = view.getUint32(end + 12, true);
  const directoryOffset = view.getUint32(end + 16, true);
  if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    throw new DataError(`${name}: a ZIP64 archive (over 4 GB or 65,535 files), which is not read here; unzip it and pick the folder`);
  }
  if (view.getUint16(end + 4, true) !== 0 || view.getUint16(end + 6, true) !== 0) {
    throw new DataError(`${name}: an archive split over several files, which is not read here`);
  }
  if (directoryOffset + directorySize > tailStart + end) throw damaged('its directory lies past its end');
  const directory = await bytesOf(zip, directoryOffset, directoryOffset + directorySize);
  const dir = new DataView(directory.buffer);
  const entries: ZipEntry[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directory.length || dir.getUint32(at, true) !== DIRECTORY_ENTRY) throw damaged(`entry ${i + 1}`);
    const flags = dir.getUint16(at + 8, true);
    const method = dir.getUint16(at + 10, true);
    const nameLength = dir.getUint16(at + 28, true);
    const extraLength = dir.getUint16(at + 30, true);
    const commentLength = dir.getUint16(at + 32, true);
    if (at + 46 + nameLength > directory.length) throw damaged(`entry ${i + 1}`);
    const raw = utf8.decode(directory.subarray(at + 46, at + 46 + nameLength)).replace(/\\/g, '/');
    const entryName = `${name}/${raw}`;
    if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw) || raw.split('/').includes('..')) {
      throw new DataError(`${entryName}: a path that leads out of the archive; refusing it`);
    }
    const isDirectory = raw.endsWith('/');
    const entry: ZipEntry = {
      path: raw.replace(/\/+$/, ''),
      isDirectory,
      method,
      compressedSize: dir.getUint32(at + 20, true),
      size: dir.getUint32(at + 24, true),
      crc32: dir.getUint32(at + 16, true),
      offset: dir.getUint32(at + 42, true),
    };
    if (!isDirectory) {
      if ((flags & 1) !== 0) throw new DataError(`${entryName}: encrypted; the page reads unencrypted zip files only`);
      if (method !== 0 && method !== 8) {
        throw new DataError(`${entryName}: compressed with method ${method}; the page reads stored and deflated entries only`);
      }
    }
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** An entry's bytes, inflated, checked against the size and CRC-32 its directory entry gives. */
export async function readZipEntry(zip: Blob, entry: ZipEntry, name: string): Promise<Uint8Array> {
  const entryName = `${name}/${entry.path}`;
  const damaged = (why: string) => new DataError(`${entryName}: damaged in the archive (${why})`);
  if (entry.size > MAX_ENTRY_BYTES || entry.compressedSize > MAX_ENTRY_BYTES) {
    throw new DataError(`${entryName}: ${Math.max(entry.size, entry.compressedSize)} bytes, more than the ${MAX_ENTRY_BYTES} a picture may have`);
  }
  const header = await bytesOf(zip, entry.offset, entry.offset + 30);
  const view = new DataView(header.buffer);
  if (header.length < 30 || view.getUint32(0, true) !== LOCAL_HEADER) throw damaged('no local header');
  const start = entry.offset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
  const stored = await bytesOf(zip, start, start + entry.compressedSize);
  if (stored.length !== entry.compressedSize) throw damaged('cut short');
  let bytes = stored;
  if (entry.method === 8) {
    // Checked before the output is allocated: deflate encodes at most 1032 bytes per input byte.
    if (entry.size > decompressedLimit(entry.compressedSize)) {
      throw damaged(`${entry.size} bytes cannot come out of ${entry.compressedSize} deflated ones`);
    }
    bytes = new Uint8Array(entry.size);
    const reader = new Blob([stored]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
    let length = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        // More than its directory entry says: a zip bomb, or damage; nothing past it is inflated.
        if (length + value.length > entry.size) {
          await reader.cancel();
          throw damaged(`it inflates to more than the ${entry.size} bytes it should`);
        }
        bytes.set(value, length);
        length += value.length;
      }
    } catch (error) {
      if (error instanceof DataError) throw error;
      throw damaged('it does not inflate');
    }
    if (length !== entry.size) throw damaged(`${length} bytes inflated, ${entry.size} expected`);
  } else if (stored.length !== entry.size) throw damaged('its sizes differ');
  if (crc32(bytes) !== entry.crc32) throw damaged('its CRC-32 does not match');
  return bytes;
}

let table: Uint32Array | undefined;

/** CRC-32 (ISO 3309), as zip files carry it. */
function crc32(bytes: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
