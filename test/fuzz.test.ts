import { createCanvas } from '@napi-rs/canvas';
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseIdx, readIdxFile } from '../dist/src/data/idx.js';
import { DataError } from '../dist/src/errors.js';
import { preprocessImage } from '../dist/src/report/preprocess.js';
import { gzip, idxBytes, tempDir } from './helpers.js';

// Property-based: whatever the bytes, the readers return a well-formed result or throw the
// project's DataError, quickly, without allocating more than the bytes could describe.

const dir = tempDir('fmnist-fuzz-');
let fileNumber = 0;
const writeTemp = (bytes: Uint8Array, extension: string) => {
  const path = join(dir, `f${fileNumber++}.${extension}`);
  writeFileSync(path, bytes);
  return path;
};

/** Runs `read`; it must either give a result `valid` accepts or throw a DataError. */
async function onlyDataErrors<T>(read: () => T | Promise<T>, valid: (result: T) => boolean): Promise<void> {
  let result: T;
  try {
    result = await read();
  } catch (error) {
    if (!(error instanceof DataError)) throw new Error(`expected a DataError, got ${String(error)}`);
    expect((error as Error).message).not.toContain('\n');
    return;
  }
  expect(valid(result)).toBe(true);
}

const validIdx = (result: { dims: readonly number[]; data: Uint8Array }) =>
  result.data.length === result.dims.reduce((a, b) => a * b, 1);

/** A small valid IDX image file, and ways to damage it. */
const images = idxBytes(
  [3, 4, 5],
  Uint8Array.from({ length: 60 }, (_, i) => i * 4),
);
const damaged = (bytes: Uint8Array) =>
  fc.oneof(
    fc.nat({ max: bytes.length - 1 }).map((n) => bytes.subarray(0, n)),
    fc.tuple(fc.nat({ max: bytes.length * 8 - 1 }), fc.nat({ max: bytes.length * 8 - 1 })).map(([a, b]) => {
      const copy = Uint8Array.from(bytes);
      copy[a >> 3] ^= 1 << (a & 7);
      copy[b >> 3] ^= 1 << (b & 7);
      return copy;
    }),
  );

describe('fuzzing the IDX reader', () => {
  it('random bytes, as labels or images: a valid array or a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 80 }), fc.constantFrom(1, 3), async (bytes, rank) => {
        await onlyDataErrors(() => parseIdx(bytes, 'fuzz', rank), validIdx);
      }),
      { numRuns: 500 },
    );
  });

  it('huge declared dimensions fail at once, without allocating them', () => {
    fc.assert(
      fc.property(fc.tuple(fc.nat(), fc.nat(), fc.nat()), fc.uint8Array({ maxLength: 64 }), (dims, payload) => {
        const bytes = idxBytes(
          dims.map((d) => d + 1000),
          payload,
        );
        const before = process.memoryUsage().arrayBuffers;
        expect(() => parseIdx(bytes, 'fuzz', 3)).toThrow(DataError);
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
      }),
      { numRuns: 200 },
    );
  });

  it('truncations and bit flips of a valid file, raw or gzipped: a valid array or a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(damaged(images), async (bytes) => {
        await onlyDataErrors(() => readIdxFile(writeTemp(bytes, 'idx'), 3), validIdx);
      }),
      { numRuns: 200 },
    );
    const zipped = gzip(images);
    await fc.assert(
      fc.asyncProperty(damaged(zipped), async (bytes) => {
        await onlyDataErrors(() => readIdxFile(writeTemp(bytes, 'gz'), 3), validIdx);
      }),
      { numRuns: 200 },
    );
  });

  it('a gzip bomb is refused, not inflated: output is bounded by what deflate can encode', async () => {
    // 64 MB of zeros compresses to ~64 kB: within deflate's 1032:1, so it inflates, and is then
    // refused as an IDX file; past the bound (a lying size is impossible for deflate) nothing is read.
    const bomb = gzip(new Uint8Array(64 << 20));
    await expect(readIdxFile(writeTemp(bomb, 'gz'), 3)).rejects.toThrow(DataError);
  });
});

describe('fuzzing the image decoder', () => {
  const picture = (type: 'image/png' | 'image/jpeg') => {
    const canvas = createCanvas(40, 30);
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, 40, 30);
    ctx.fillStyle = '#203040';
    ctx.fillRect(10, 5, 20, 20);
    return type === 'image/png' ? canvas.toBuffer(type) : canvas.toBuffer(type);
  };
  const validImage = (pixels: Uint8Array) => pixels.length === 784;

  for (const [type, extension] of [
    ['image/png', 'png'],
    ['image/jpeg', 'jpg'],
  ] as const) {
    it(`truncations and bit flips of a ${extension.toUpperCase()}: a 28x28 image or a DataError`, async () => {
      const bytes = picture(type);
      await fc.assert(
        fc.asyncProperty(damaged(bytes), async (damagedBytes) => {
          await onlyDataErrors(() => preprocessImage(writeTemp(damagedBytes, extension)), validImage);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('random bytes: a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        await onlyDataErrors(() => preprocessImage(writeTemp(bytes, 'bin')), validImage);
      }),
      { numRuns: 200 },
    );
  });
});
