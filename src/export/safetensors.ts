import { DataError, quoteUntrusted } from '../errors.js';

/**
 * The safetensors format (huggingface/safetensors): an 8-byte little-endian length, a JSON header
 * that gives each tensor's dtype, shape and byte range, then the bytes. The writer lays a file out
 * as the safetensors library does (tensors by dtype size, then by name; the header padded with
 * spaces to 8 bytes), and the reader checks what that library checks and more: the header within a
 * bound and within the file, byte ranges that follow each other without gap or overlap and cover
 * the rest of the file exactly, each range the size its dtype and shape say.
 */

/** The dtypes the project writes: parameters and Adam's moments, and an epoch's order. */
export type Dtype = 'F32' | 'I32';

export interface Tensor {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

export const SAFETENSORS_LIMITS = {
  /** The header: a tensor takes about 80 bytes of it, so this is room for over 10,000. */
  headerBytes: 1 << 20,
};

/** Bytes per value of every dtype the format defines, so that a file of others is still read as well-formed. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** The file's bytes, in chunks: the header, then each tensor's values (views, not copies). */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, Tensor>,
  metadata: Record<string, string>,
): Uint8Array[] {
  const names = [...tensors.keys()].sort((a, b) => {
    const size = (name: string) => DTYPE_BYTES[(tensors.get(name) as Tensor).dtype];
    return size(b) - size(a) || (a < b ? -1 : a > b ? 1 : 0);
  });
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors.get(name) as Tensor;
    if (data.length !== elements(shape))
      throw new Error(`${name}: ${data.length} values for shape [${shape.join(', ')}]`);
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, ' ');
  json.copy(padded);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  const values = names.map((name) => {
    const { data } = tensors.get(name) as Tensor;
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  });
  return [length, padded, ...values];
}

/** A tensor as the header describes it: where its bytes are, relative to the end of the header. */
export interface TensorEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface Safetensors {
  readonly metadata: Readonly<Record<string, string>>;
  readonly entries: ReadonlyMap<string, TensorEntry>;
  /** The bytes after the header, which the entries' ranges cover exactly. */
  readonly body: Uint8Array;
}

/**
 * Reads a safetensors file's header and checks the layout it describes. `file` names it in the
 * DataError's one line, which ends with `damaged` (what to do about it).
 */
export function decodeSafetensors(bytes: Uint8Array, file: string, damaged: string): Safetensors {
  const bad = (why: string) => new DataError(`${file}: ${why}; ${damaged}`);
  if (bytes.length < 8) throw bad(`${bytes.length} bytes, too short for the 8 bytes of a safetensors header's length`);
  const length = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE();
  if (length > BigInt(SAFETENSORS_LIMITS.headerBytes)) {
    throw bad(`a header of ${length} bytes, more than the ${SAFETENSORS_LIMITS.headerBytes} allowed`);
  }
  const headerEnd = 8 + Number(length);
  if (headerEnd > bytes.length) {
    throw bad(`the header's length (${length} bytes) runs past the end of the file (${bytes.length} bytes)`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd));
    header = JSON.parse(text);
  } catch {
    throw bad('its header is not JSON text');
  }
  if (!isObject(header)) throw bad('its header is not a JSON object');
  const metadata: Record<string, string> = {};
  const rawMetadata = header.__metadata__;
  if (rawMetadata != null) {
    if (!isObject(rawMetadata) || !Object.values(rawMetadata).every((v) => typeof v === 'string')) {
      throw bad('its __metadata__ is not a map of strings');
    }
    Object.assign(metadata, rawMetadata);
  }
  const entries = new Map<string, TensorEntry>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const what = `tensor ${quoteUntrusted(name)}`;
    if (!isObject(raw)) throw bad(`${what} is not {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offsets } = raw;
    if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) {
      throw bad(`${what}: dtype ${describe(dtype)} is not one of safetensors' dtypes`);
    }
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every(isSize)) {
      throw bad(`${what}: shape ${describe(shape)} is not a list of sizes`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize) || offsets[0] > offsets[1]) {
      throw bad(`${what}: data_offsets ${describe(offsets)} are not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const needed = elements(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== needed) {
      throw bad(
        `${what}: ${end - begin} bytes for ${dtype} values of shape [${shape.join(', ')}], which take ${needed}`,
      );
    }
    entries.set(name, { dtype, shape, begin, end });
  }
  const body = bytes.subarray(headerEnd);
  let previous: [string, TensorEntry] | undefined;
  for (const [name, entry] of [...entries].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)) {
    const at = previous?.[1].end ?? 0;
    if (entry.begin < at) {
      const other = previous as [string, TensorEntry];
      throw bad(
        `the bytes of tensor ${quoteUntrusted(name)} [${entry.begin}, ${entry.end}) overlap those of ${quoteUntrusted(other[0])} [${other[1].begin}, ${other[1].end})`,
      );
    }
    if (entry.begin > at)
      throw bad(`nothing holds bytes [${at}, ${entry.begin}), before tensor ${quoteUntrusted(name)}`);
    previous = [name, entry];
  }
  const end = previous?.[1].end ?? 0;
  if (end > body.length) {
    throw bad(`truncated: its tensors take ${end} bytes after the header, and the file holds ${body.length}`);
  }
  if (end < body.length) throw bad(`${body.length - end} bytes after the last tensor`);
  return { metadata, entries, body };
}

/**
 * The values of tensor `name`, once it is there with this dtype and shape; `need` says what it
 * is in the message when it is not (`layer 2 (dense:128) needs`).
 */
export function tensorValues(
  file: Safetensors,
  name: string,
  expected: { readonly dtype: Dtype; readonly shape: readonly number[]; readonly need: string },
  bad: (why: string) => DataError,
): Float32Array | Int32Array {
  const entry = file.entries.get(name);
  if (entry === undefined) throw bad(`it has no tensor ${quoteUntrusted(name)}, which ${expected.need}`);
  if (entry.dtype !== expected.dtype) {
    throw bad(`tensor ${quoteUntrusted(name)} is ${entry.dtype}, but ${expected.need} ${expected.dtype}`);
  }
  if (!sameShape(entry.shape, expected.shape)) {
    throw bad(
      `tensor ${quoteUntrusted(name)} has the shape [${entry.shape.join(', ')}], but ${expected.need} [${expected.shape.join(', ')}]`,
    );
  }
  // A copy: the file's bytes need not be aligned for a typed array.
  const bytes = file.body.slice(entry.begin, entry.end);
  return expected.dtype === 'F32' ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer);
}

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isSize(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return quoteUntrusted(value);
  const text = JSON.stringify(value) ?? String(value);
  return quoteUntrusted(text).slice(1, -1);
}
