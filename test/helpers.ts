/**
 * Test helpers. Tests import the built package (`dist/`, built by `npm test` first): worker threads
 * load compiled JavaScript, so the tests exercise exactly what ships.
 */
import { createCanvas } from '@napi-rs/canvas';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deflateRawSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import type { Dataset } from '../dist/src/index.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const TRAIN_CLI = join(ROOT, 'dist', 'scripts', 'train.js');
export const DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

export function tempDir(prefix = 'fmnist-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The bytes of an IDX file of unsigned bytes: magic, big-endian dimensions, payload. */
export function idxBytes(dims: number[], data: Uint8Array, magic = 0x0800 + dims.length): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

export function gzip(bytes: Uint8Array): Buffer {
  return gzipSync(bytes);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a compiled script with node and collects its output. */
export function runNode(
  script: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** A directory with the four files, holding `train` and `test` tiny 28x28 splits. */
/** The first `train` training and `test` test images of a loaded dataset, as views: no copy. */
export function firstImages(data: Dataset, train: number, test: number): Dataset {
  const pixels = data.height * data.width * (data.channels ?? 1);
  return {
    ...data,
    train: {
      images: data.train.images.subarray(0, train * pixels),
      labels: data.train.labels.subarray(0, train),
      count: train,
    },
    test: {
      images: data.test.images.subarray(0, test * pixels),
      labels: data.test.labels.subarray(0, test),
      count: test,
    },
  };
}

export function tinyDataset(
  options: { trainLabels?: Uint8Array; testImages?: number; rawTest?: boolean } = {},
): string {
  const dir = tempDir();
  const trainLabels = options.trainLabels ?? Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  const testImages = options.testImages ?? 5;
  const images = (n: number) =>
    idxBytes(
      [n, 28, 28],
      Uint8Array.from({ length: n * 784 }, (_, i) => i % 251),
    );
  writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzip(images(12)));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzip(idxBytes([trainLabels.length], trainLabels)));
  const test = images(testImages);
  if (options.rawTest) writeFileSync(join(dir, 't10k-images-idx3-ubyte'), test);
  else writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzip(test));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzip(idxBytes([5], Uint8Array.from([9, 8, 7, 6, 5]))));
  return dir;
}

/**
 * A directory with the four IDX files (not gzipped) holding the first `train` training images and
 * the first `test` test images of the real Fashion-MNIST: the same bytes for both sides.
 */
export function realSubset(train: number, test: number): string {
  const dir = tempDir('fmnist-subset-');
  const cut = (name: string, count: number, rank: number) => {
    const bytes = gunzipSync(readFileSync(join(DEBIAN_DIR, `${name}.gz`)));
    const header = Buffer.from(bytes.subarray(0, 4 + 4 * rank));
    header.writeUInt32BE(count, 4);
    const per = rank === 3 ? 28 * 28 : 1;
    writeFileSync(join(dir, name), Buffer.concat([header, bytes.subarray(header.length, header.length + count * per)]));
  };
  cut('train-images-idx3-ubyte', train, 3);
  cut('train-labels-idx1-ubyte', train, 1);
  cut('t10k-images-idx3-ubyte', test, 3);
  cut('t10k-labels-idx1-ubyte', test, 1);
  return dir;
}

/** The OS threads of this process (Linux): every worker thread is one, so a leaked worker shows. */
export function osThreads(): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

/** How long `settledOsThreads` waits for the count to settle; a leaked thread costs a test this long. */
const SETTLE_LIMIT_MS = 60_000;

/**
 * The thread count once it has settled: a terminated worker's OS thread ends a moment after
 * `terminate()` resolves, several moments on a loaded machine. Without `expected`, returns once the
 * count has stayed the same for 10 polls in a row (200 ms); with it, as soon as the count is that.
 * Either way it gives up after SETTLE_LIMIT_MS and returns the count as it is, so that a leaked
 * thread shows as a count that never came back.
 */
export async function settledOsThreads(expected?: number): Promise<number> {
  const deadline = performance.now() + SETTLE_LIMIT_MS;
  let last = osThreads();
  let unchanged = 0;
  while (last !== expected && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = osThreads();
    unchanged = now === last ? unchanged + 1 : 0;
    last = now;
    if (expected === undefined && unchanged === 10) break;
  }
  return last;
}

/**
 * Blocks this thread, its event loop included, until `condition()` holds, looking every 10 ms;
 * false if it did not within `limitMs` (a bound that turns a deadlock into a failed test).
 */
export function blockUntil(condition: () => boolean, limitMs: number): boolean {
  const deadline = performance.now() + limitMs;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  while (!condition()) {
    if (performance.now() > deadline) return false;
    Atomics.wait(sleeper, 0, 0, 10);
  }
  return true;
}

/**
 * One colour per class, all of the same brightness (luma 150, ITU-R 601: what a conversion to grey
 * keeps), hues around the circle: a tinted image's colour tells its class, its grey levels do not.
 */
export const CLASS_TINTS: readonly (readonly [number, number, number])[] = Array.from({ length: 10 }, (_, c) => {
  const u = 45 * Math.cos((2 * Math.PI * c) / 10);
  const v = 45 * Math.sin((2 * Math.PI * c) / 10);
  return [150 + 1.14 * v, 150 - 0.395 * u - 0.581 * v, 150 + 2.032 * u].map(Math.round) as [number, number, number];
});

/** A grey image (uint8, one value per pixel) in its class's tint: RGB, NHWC. */
export function tinted(grey: Uint8Array, label: number): Uint8Array {
  const tint = CLASS_TINTS[label];
  const rgb = new Uint8Array(grey.length * 3);
  for (let i = 0; i < grey.length; i++)
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round((grey[i] * tint[c]) / 255);
  return rgb;
}

/** CRC-32 of PNG chunks (ISO 3309), table-driven. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A PNG file of 8-bit pixels, grey (1 channel), grey and alpha (2), RGB (3) or RGBA (4), written
 * here from the format's definition (signature, IHDR, one zlib IDAT of unfiltered rows, IEND): a
 * writer that shares no code with the decoders under test.
 */
export function pngBytes(pixels: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4): Buffer {
  const chunk = (type: string, data: Uint8Array) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = [0, 0, 4, 2, 6][channels];
  const rows = Buffer.alloc(height * (1 + width * channels));
  for (let y = 0; y < height; y++) {
    rows[y * (1 + width * channels)] = 0;
    rows.set(pixels.subarray(y * width * channels, (y + 1) * width * channels), y * (1 + width * channels) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Fashion-MNIST's classes as folder names that sort in label order: `0-T-shirt-top` ... `9-Ankle boot`. */
export const CLASS_FOLDERS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
].map((name, label) => `${label}-${name.replace('/', '-')}`);

/** A JPEG (quality 90) of 8-bit RGB pixels, from @napi-rs/canvas's encoder. */
export function jpegBytes(rgb: Uint8Array, width: number, height: number): Buffer {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    image.data.set(rgb.subarray(3 * i, 3 * i + 3), 4 * i);
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas.toBuffer('image/jpeg', 90);
}

export interface PictureSplit {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
}

/**
 * Writes the first `count` images of each split as pictures in DIR/<split>/<class>/<index>.<ext>:
 * grey PNGs (8-bit, one channel), or in their class's tint (RGB PNGs), or JPEGs of either. Returns,
 * per split, the images' indices in the order a folder loader reads them: by class, then by name.
 */
export function writePictureFolder(
  dir: string,
  splits: { readonly train: PictureSplit; readonly test: PictureSplit },
  options: { readonly format: 'png' | 'jpeg'; readonly train: number; readonly test: number; readonly tint?: boolean },
): { train: number[]; test: number[] } {
  const orders = { train: [] as number[], test: [] as number[] };
  for (const split of ['train', 'test'] as const) {
    const { images, labels } = splits[split];
    const count = options[split];
    for (let i = 0; i < count; i++) {
      const grey = images.subarray(i * 784, (i + 1) * 784);
      const rgb = options.tint
        ? tinted(grey, labels[i])
        : Uint8Array.from({ length: 784 * 3 }, (_, k) => grey[Math.floor(k / 3)]);
      const folder = join(dir, split, CLASS_FOLDERS[labels[i]]);
      mkdirSync(folder, { recursive: true });
      const name = String(i).padStart(5, '0');
      const bytes =
        options.format === 'jpeg'
          ? jpegBytes(rgb, 28, 28)
          : options.tint
            ? pngBytes(rgb, 28, 28, 3)
            : pngBytes(grey, 28, 28, 1);
      writeFileSync(join(folder, `${name}.${options.format === 'jpeg' ? 'jpg' : 'png'}`), bytes);
    }
    orders[split] = Array.from({ length: count }, (_, i) => i).sort((a, b) => labels[a] - labels[b] || a - b);
  }
  return orders;
}

/** The four Fashion-MNIST files (gzipped) in `dir`, holding the given images of each split, in that order. */
export function writeIdxFolder(
  dir: string,
  splits: { readonly train: PictureSplit; readonly test: PictureSplit },
  orders: { readonly train: readonly number[]; readonly test: readonly number[] },
): void {
  mkdirSync(dir, { recursive: true });
  const files = {
    train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
    test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
  };
  for (const split of ['train', 'test'] as const) {
    const order = orders[split];
    const { images, labels } = splits[split];
    const pixels = new Uint8Array(order.length * 784);
    order.forEach((index, k) => pixels.set(images.subarray(index * 784, (index + 1) * 784), k * 784));
    writeFileSync(join(dir, `${files[split][0]}.gz`), gzip(idxBytes([order.length, 28, 28], pixels)));
    writeFileSync(
      join(dir, `${files[split][1]}.gz`),
      gzip(
        idxBytes(
          [order.length],
          Uint8Array.from(order, (i) => labels[i]),
        ),
      ),
    );
  }
}

/**
 * A zip file of these files (each deflated, or stored when `store`), written from the format's
 * definition: local headers, the central directory, its end record. No data descriptors, no ZIP64.
 */
export function zipBytes(files: readonly { path: string; bytes: Uint8Array }[], store = false): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const { path, bytes } of files) {
    const name = Buffer.from(path, 'utf8');
    const data = store ? Buffer.from(bytes) : deflateRawSync(bytes);
    const crc = crc32(bytes);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(store ? 0 : 8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(bytes.length, 22);
    local.writeUInt16LE(name.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(store ? 0 : 8, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(data.length, 20);
    entry.writeUInt32LE(bytes.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    central.push(entry, name);
    offset += 30 + name.length + data.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** Every file under `dir`, as paths relative to it with `/`, and their bytes. */
export function filesUnder(dir: string, prefix = ''): { path: string; bytes: Uint8Array }[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((entry) => {
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      return entry.isDirectory() ? filesUnder(dir, path) : [{ path, bytes: readFileSync(join(dir, path)) }];
    });
}
