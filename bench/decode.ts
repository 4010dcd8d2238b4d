/**
 * `npm run bench:decode`: how fast the candidate decoders turn picture files into pixels, and how
 * fast a folder of pictures loads, cold and from its cache, beside the same images as IDX files and
 * beside all of Fashion-MNIST's (what a run on the real data loads).
 *
 * Decoders, each from a file's bytes in memory to its full-size pixels: @napi-rs/image as the
 * loader calls it (image-decode.ts: on this thread up to 64x64 pixels, on libuv's pool above),
 * @napi-rs/image always on the pool, @napi-rs/canvas (already a dependency: loadImage, drawImage,
 * getImageData), and sharp when it is installed (`npm install --no-save sharp` to compare with it;
 * it is not a dependency). Pictures: Fashion-MNIST's 28x28 as PNG and JPEG, and colour pictures of
 * 256x256, 800x600 and 4000x3000 (a 12-megapixel photo) made here. Each round runs every decoder on
 * every set in turn, one picture at a time and 4 at once; the table gives the median of the
 * rounds, in microseconds per picture. Flags: --rounds N (default 5), --json FILE.
 */
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { Transformer } from '@napi-rs/image';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseFlags } from '../src/cli/flags.js';
import { checkNumber } from '../src/coordinator/options.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { decodeImage } from '../src/data/image-decode.js';
import { loadImageFolder } from '../src/data/image-folder.js';
import { isUserError } from '../src/errors.js';
import { median } from './stats.js';

type Decode = (bytes: Uint8Array) => Promise<number>;

async function decoders(): Promise<Record<string, Decode>> {
  const found: Record<string, Decode> = {
    '@napi-rs/image (loader)': async (bytes) => (await decodeImage(bytes, 'bench')).data.length,
    '@napi-rs/image (pool)': async (bytes) => (await new Transformer(bytes).rawPixels()).length,
    '@napi-rs/canvas': async (bytes) => {
      const image = await loadImage(bytes);
      const ctx = createCanvas(image.width, image.height).getContext('2d');
      ctx.drawImage(image, 0, 0);
      return ctx.getImageData(0, 0, image.width, image.height).data.length;
    },
  };
  try {
    // Not a dependency: compared with when installed. The name in a variable keeps tsc from
    // requiring its types.
    const name = 'sharp';
    const sharp = ((await import(name)) as { default: SharpLike }).default;
    sharp.cache(false);
    found.sharp = async (bytes) => (await sharp(bytes).raw().toBuffer()).length;
  } catch {
    console.log('sharp is not installed: `npm install --no-save sharp` to compare with it');
  }
  return found;
}

interface SharpLike {
  (input: Uint8Array): { raw(): { toBuffer(): Promise<Buffer> } };
  cache(enabled: boolean): void;
}

/** A colour picture with smooth gradients and some noise, as photos have, RGBA. */
function photo(width: number, height: number, seed: number): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  let state = seed;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      state = (state * 1103515245 + 12345) >>> 0;
      const noise = (state >>> 24) & 31;
      const at = 4 * (y * width + x);
      rgba[at] = ((x * 256) / width + noise) & 255;
      rgba[at + 1] = ((y * 256) / height + noise) & 255;
      rgba[at + 2] = (((x ^ y) >> 2) + seed * 40 + noise) & 255;
      rgba[at + 3] = 255;
    }
  return rgba;
}

async function pictureSets(grey: Uint8Array): Promise<{ name: string; files: Uint8Array[] }[]> {
  const greyRgba = (i: number) => {
    const rgba = new Uint8Array(784 * 4);
    for (let p = 0; p < 784; p++) rgba.set([grey[i * 784 + p], grey[i * 784 + p], grey[i * 784 + p], 255], 4 * p);
    return Transformer.fromRgbaPixels(rgba, 28, 28);
  };
  const many = <T>(count: number, make: (i: number) => Promise<T>) =>
    Promise.all(Array.from({ length: count }, (_, i) => make(i)));
  return [
    { name: '28x28 PNG', files: await many(1000, (i) => greyRgba(i).png()) },
    { name: '28x28 JPEG', files: await many(1000, (i) => greyRgba(i).jpeg(90)) },
    {
      name: '256x256 PNG',
      files: await many(100, (i) => Transformer.fromRgbaPixels(photo(256, 256, i), 256, 256).png()),
    },
    {
      name: '256x256 JPEG',
      files: await many(100, (i) => Transformer.fromRgbaPixels(photo(256, 256, i), 256, 256).jpeg(85)),
    },
    {
      name: '800x600 JPEG',
      files: await many(30, (i) => Transformer.fromRgbaPixels(photo(800, 600, i), 800, 600).jpeg(85)),
    },
    {
      name: '4000x3000 JPEG',
      files: await many(3, (i) => Transformer.fromRgbaPixels(photo(4000, 3000, i), 4000, 3000).jpeg(85)),
    },
  ];
}

/** Microseconds per picture, decoding `files` with `concurrency` in flight. */
async function timeDecoding(decode: Decode, files: readonly Uint8Array[], concurrency: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < files.length) await decode(files[next++]);
    }),
  );
  return ((performance.now() - started) * 1000) / files.length;
}

/** Writes `count` Fashion-MNIST images of a split as PNGs in class folders. */
async function writeFolder(dir: string, split: string, images: Uint8Array, labels: Uint8Array, count: number) {
  for (let i = 0; i < count; i++) {
    const rgba = new Uint8Array(784 * 4);
    for (let p = 0; p < 784; p++) rgba.set([images[i * 784 + p], images[i * 784 + p], images[i * 784 + p], 255], 4 * p);
    const folder = join(dir, split, String(labels[i]));
    mkdirSync(folder, { recursive: true });
    writeFileSync(
      join(folder, `${String(i).padStart(5, '0')}.png`),
      await Transformer.fromRgbaPixels(rgba, 28, 28).png(),
    );
  }
}

function idx(dims: number[], bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x0800 + dims.length, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return gzipSync(Buffer.concat([header, bytes]));
}

async function main(): Promise<void> {
  const { values } = parseFlags(
    process.argv.slice(2),
    { rounds: { type: 'string' }, json: { type: 'string' } },
    { help: false },
  );
  const rounds =
    values.rounds === undefined
      ? 5
      : checkNumber('epochs', Number(values.rounds), '--rounds', JSON.stringify(values.rounds));
  const data = await loadFashionMnist();
  const found = await decoders();
  const sets = await pictureSets(data.test.images as Uint8Array);
  console.log(
    `Decoding pictures: microseconds per picture, median of ${rounds} rounds (${availableParallelism()} cores)`,
  );
  const times = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const set of sets) {
      for (const [name, decode] of Object.entries(found)) {
        for (const concurrency of [1, 4]) {
          const key = `${set.name}|${name}|${concurrency}`;
          times.set(key, [...(times.get(key) ?? []), await timeDecoding(decode, set.files, concurrency)]);
        }
      }
    }
  }
  const names = Object.keys(found);
  const header = ['pictures', ...names.flatMap((name) => [`${name}, 1 at a time`, '4 at once'])];
  const rows = sets.map((set) => [
    set.name,
    ...names.flatMap((name) => [1, 4].map((c) => median(times.get(`${set.name}|${name}|${c}`) as number[]))),
  ]);
  const widths = header.map((h) => Math.max(h.length, 14));
  console.log(header.map((h, i) => h.padStart(widths[i])).join('  '));
  for (const row of rows)
    console.log(row.map((v, i) => (typeof v === 'number' ? v.toFixed(0) : v).padStart(widths[i])).join('  '));

  // A folder of 3000 + 1000 Fashion-MNIST PNGs, loaded cold (decoded) and warm (from its cache),
  // against the same images as the four IDX files.
  const base = join(tmpdir(), `bench-decode-${process.pid}`);
  const folder = join(base, 'pictures');
  const idxDir = join(base, 'idx');
  const [trainCount, testCount] = [3000, 1000];
  const { train, test } = data;
  await writeFolder(folder, 'train', train.images as Uint8Array, train.labels, trainCount);
  await writeFolder(folder, 'test', test.images as Uint8Array, test.labels, testCount);
  mkdirSync(idxDir, { recursive: true });
  writeFileSync(
    join(idxDir, 'train-images-idx3-ubyte.gz'),
    idx([trainCount, 28, 28], train.images.subarray(0, trainCount * 784) as Uint8Array),
  );
  writeFileSync(join(idxDir, 'train-labels-idx1-ubyte.gz'), idx([trainCount], train.labels.subarray(0, trainCount)));
  writeFileSync(
    join(idxDir, 't10k-images-idx3-ubyte.gz'),
    idx([testCount, 28, 28], test.images.subarray(0, testCount * 784) as Uint8Array),
  );
  writeFileSync(join(idxDir, 't10k-labels-idx1-ubyte.gz'), idx([testCount], test.labels.subarray(0, testCount)));
  const loads = {
    'the same images, IDX': [] as number[],
    'folder, cold': [] as number[],
    'folder, from its cache': [] as number[],
    'all of Fashion-MNIST, IDX': [] as number[],
  };
  const seconds = async (load: () => Promise<unknown>) => {
    const started = performance.now();
    await load();
    return (performance.now() - started) / 1000;
  };
  for (let round = 0; round < rounds; round++) {
    loads['the same images, IDX'].push(await seconds(() => loadFashionMnist({ dir: idxDir })));
    rmSync(join(folder, '.image-cache'), { recursive: true, force: true });
    loads['folder, cold'].push(await seconds(() => loadImageFolder({ dir: folder })));
    loads['folder, from its cache'].push(await seconds(() => loadImageFolder({ dir: folder })));
    // What a run on the real data loads: 70,000 images, gzipped.
    loads['all of Fashion-MNIST, IDX'].push(await seconds(() => loadFashionMnist()));
  }
  rmSync(base, { recursive: true, force: true });
  console.log(
    `Loading ${trainCount} + ${testCount} Fashion-MNIST images, as 28x28 PNGs in class folders and as IDX files, and all 70,000 as IDX files: seconds, median of ${rounds} rounds`,
  );
  const loadRows = Object.entries(loads).map(([name, list]) => ({ name, seconds: median(list) }));
  for (const { name, seconds: s } of loadRows) console.log(`${name.padEnd(26)} ${s.toFixed(3)}`);
  if (values.json) {
    const decoding = rows.map(([set, ...us]) => ({
      pictures: set,
      microsecondsPerPicture: Object.fromEntries(
        names.map((name, i) => [name, { oneAtATime: us[2 * i], fourAtOnce: us[2 * i + 1] }]),
      ),
    }));
    writeFileSync(
      values.json,
      `${JSON.stringify({ rounds, cores: availableParallelism(), decoding, loading: loadRows }, null, 2)}\n`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
