import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseIdx, readIdxFile } from '../dist/src/data/idx.js';
import { DataError } from '../dist/src/errors.js';
import { gzip, idxBytes, tempDir } from './helpers.js';

const LABELS = Uint8Array.from([3, 1, 4, 1, 5]);
const IMAGES = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 10);

describe('parseIdx', () => {
  it('reads dimensions and payload of labels and images', () => {
    const labels = parseIdx(idxBytes([5], LABELS), 'labels', 1);
    expect(labels.dims).toEqual([5]);
    expect([...labels.data]).toEqual([3, 1, 4, 1, 5]);
    const images = parseIdx(idxBytes([2, 3, 4], IMAGES), 'images', 3);
    expect(images.dims).toEqual([2, 3, 4]);
    expect([...images.data]).toEqual([...IMAGES]);
  });

  it('rejects a wrong magic number, naming the file and both numbers', () => {
    expect(() => parseIdx(idxBytes([5], LABELS, 0x0803), 'labels.idx', 1)).toThrow(
      new DataError('labels.idx: wrong IDX magic number 0x00000803, expected 0x00000801 (unsigned bytes, 1 dimension)'),
    );
    expect(() => parseIdx(idxBytes([2, 3, 4], IMAGES, 0x0d03), 'images.idx', 3)).toThrow(
      /wrong IDX magic number 0x00000d03, expected 0x00000803/,
    );
  });

  it('rejects truncated data, trailing bytes, a truncated header and tiny files', () => {
    const full = idxBytes([2, 3, 4], IMAGES);
    expect(() => parseIdx(full.subarray(0, full.length - 1), 'x', 3)).toThrow(
      new DataError('x: IDX file is truncated: dimensions 2x3x4 need 24 bytes of data, found 23'),
    );
    expect(() => parseIdx(Buffer.concat([full, Buffer.from([0])]), 'x', 3)).toThrow(/longer than its header says/);
    expect(() => parseIdx(full.subarray(0, 10), 'x', 3)).toThrow(
      new DataError('x: truncated IDX header (10 of 16 bytes)'),
    );
    expect(() => parseIdx(new Uint8Array(2), 'x', 1)).toThrow(new DataError('x: not an IDX file (only 2 bytes)'));
  });
});

describe('readIdxFile', () => {
  it('reads gzipped and raw files alike', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.gz'), gzip(idxBytes([5], LABELS)));
    writeFileSync(join(dir, 'a'), idxBytes([5], LABELS));
    for (const name of ['a.gz', 'a']) expect([...(await readIdxFile(join(dir, name), 1)).data]).toEqual([...LABELS]);
  });

  it('names the file when the gzip is truncated or the file is missing', async () => {
    const dir = tempDir();
    const zipped = gzip(idxBytes([2, 3, 4], IMAGES));
    writeFileSync(join(dir, 'cut.gz'), zipped.subarray(0, zipped.length - 6));
    await expect(readIdxFile(join(dir, 'cut.gz'), 3)).rejects.toThrow(
      new DataError(
        `${join(dir, 'cut.gz')}: not a valid gzip file (unexpected end of file); delete it and get it again`,
      ),
    );
    await expect(readIdxFile(join(dir, 'none'), 1)).rejects.toThrow(
      new DataError(`${join(dir, 'none')}: cannot read (ENOENT)`),
    );
  });
});
