import { createCanvas } from '@napi-rs/canvas';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Transformer } from '@napi-rs/image';
import { decodeImage } from '../dist/src/data/image-decode.js';
import { planImageFolder } from '../dist/src/data/image-folder-plan.js';
import { readImageSize } from '../dist/src/data/image-header.js';
import { decodeImageSet } from '../dist/src/data/image-set.js';
import { readZipDirectory, readZipEntry } from '../dist/src/data/zip.js';
import { decompress, parseIdx, readIdxFile } from '../dist/src/data/idx.js';
import { DataError } from '../dist/src/errors.js';
import { type PyTorchRun, readPyTorchRun, runFiles } from '../dist/src/export/run-folder.js';
import { loadModel } from '../dist/src/model/files.js';
import { buildNetwork } from '../dist/src/model/network.js';
import { formatLayers, parseLayers } from '../dist/src/model/spec.js';
import { preprocessImage } from '../dist/src/report/preprocess.js';
import { crc32, gzip, idxBytes, jpegBytes, pngBytes, tempDir, zipBytes } from './helpers.js';
import { saveTinyModel, tinyCnn } from './tiny-model.js';

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

/** Runs `read`; it must throw a DataError of one line. */
async function refused(read: () => unknown): Promise<void> {
  let result: unknown;
  try {
    result = await read();
  } catch (error) {
    if (!(error instanceof DataError)) throw new Error(`expected a DataError, got ${String(error)}`);
    expect((error as Error).message).not.toContain('\n');
    return;
  }
  throw new Error(`expected a DataError, got a result: ${String(result)}`);
}

const validIdx = (result: { dims: readonly number[]; data: Uint8Array }) =>
  result.data.length === result.dims.reduce((a, b) => a * b, 1);

/** A small valid IDX image file, and ways to damage it. */
const images = idxBytes(
  [3, 4, 5],
  Uint8Array.from({ length: 60 }, (_, i) => i * 4),
);
const truncated = (bytes: Uint8Array) => fc.nat({ max: bytes.length - 1 }).map((n) => bytes.subarray(0, n));
/** A copy with two bits flipped (the same one twice leaves it as it was). */
const flipped = (bytes: Uint8Array) =>
  fc.tuple(fc.nat({ max: bytes.length * 8 - 1 }), fc.nat({ max: bytes.length * 8 - 1 })).map(([a, b]) => {
    const copy = Uint8Array.from(bytes);
    copy[a >> 3] ^= 1 << (a & 7);
    copy[b >> 3] ^= 1 << (b & 7);
    return copy;
  });
const damaged = (bytes: Uint8Array) => fc.oneof(truncated(bytes), flipped(bytes));

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

  it('a gzip bomb stops at the output cap: nothing past the cap is inflated', () => {
    // 4 MB of zeros deflate to ~4 kB; cut at three quarters, the stream still holds ~3 MB of output
    // before its end. Inflated whole, it fails at the cut; capped at 1 MB, it must stop before.
    const bomb = gzip(new Uint8Array(4 << 20));
    const cut = bomb.subarray(0, Math.floor((bomb.length * 3) / 4));
    expect(() => decompress(cut, 'bomb.gz')).toThrow(/^bomb\.gz: not a valid gzip file \(unexpected end of file\)/);
    expect(() => decompress(cut, 'bomb.gz', 1 << 20)).toThrow(
      new DataError('bomb.gz: decompresses to more than 1048576 bytes; not reading it'),
    );
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
        await refused(() => preprocessImage(writeTemp(bytes, 'bin')));
      }),
      { numRuns: 200 },
    );
  });
});

describe('fuzzing the picture-folder decoder', () => {
  // The loader's path for each file of a folder of pictures: the header pass, the whole-file
  // checks, @napi-rs/image, the fitting to the training size; on a folder of one damaged picture
  // and one good one, read from memory.
  const good = pngBytes(
    Uint8Array.from({ length: 40 * 30 }, (_, i) => i % 256),
    40,
    30,
    1,
  );
  const rgb = Uint8Array.from({ length: 40 * 30 * 3 }, (_, i) => (i * 7) % 256);
  const rgba = Uint8Array.from({ length: 40 * 30 * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 5) % 256));
  const pictures: [string, Uint8Array][] = [
    ['grey PNG', good],
    ['RGB PNG', pngBytes(rgb, 40, 30, 3)],
    ['JPEG', jpegBytes(rgb, 40, 30)],
    ['WebP', Transformer.fromRgbaPixels(rgba, 40, 30).webpLosslessSync()],
    ['lossy WebP', Transformer.fromRgbaPixels(rgba, 40, 30).webpSync(75)],
  ];
  const plan = planImageFolder(
    [
      { path: 'train/a/damaged.png', isDirectory: false },
      { path: 'train/b/good.png', isDirectory: false },
    ],
    'fuzz',
  );
  const decodeWith = (bytes: Uint8Array, options: { imageSize?: { height: number; width: number } } = {}) => {
    const read = async (path: string) => (path.endsWith('good.png') ? good : bytes);
    return decodeImageSet(
      { read, readHead: async (path, n) => (await read(path)).subarray(0, n), decode: decodeImage },
      plan,
      'fuzz',
      options,
    );
  };
  const validSet = (set: Awaited<ReturnType<typeof decodeWith>>) =>
    set.count === 2 &&
    set.height >= 1 &&
    set.width >= 1 &&
    set.images.length === 2 * set.height * set.width * set.channels;

  for (const [name, bytes] of pictures) {
    it(`truncations and bit flips of a ${name}: two training images or a DataError`, async () => {
      await fc.assert(
        fc.asyncProperty(damaged(bytes), fc.boolean(), async (damagedBytes, sized) => {
          const options = sized ? { imageSize: { height: 30, width: 40 } } : {};
          await onlyDataErrors(() => decodeWith(damagedBytes, options), validSet);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('random bytes: a size, more bytes wanted, or a DataError; as a picture, a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        await onlyDataErrors(
          () => readImageSize(bytes, 'fuzz'),
          (size) =>
            size === undefined || (size.width >= 1 && size.height >= 1 && size.width * size.height <= 268_402_689),
        );
        await onlyDataErrors(() => decodeWith(bytes), validSet);
      }),
      { numRuns: 200 },
    );
  });

  it('huge declared sizes are refused from the header, without allocating them', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 16_384, max: 2 ** 31 - 1 }),
        fc.integer({ min: 16_384, max: 2 ** 31 - 1 }),
        fc.boolean(),
        async (width, height, asJpeg) => {
          let bytes: Buffer;
          if (asJpeg) {
            bytes = Buffer.from(jpegBytes(rgb, 40, 30));
            const sof = bytes.indexOf(Buffer.from([0xff, 0xc0]));
            bytes.writeUInt16BE(height & 0xffff || 1, sof + 5);
            bytes.writeUInt16BE(width & 0xffff || 1, sof + 7);
            if ((height & 0xffff) * (width & 0xffff) <= 268_402_689) return;
          } else {
            bytes = Buffer.from(good);
            bytes.writeUInt32BE(width, 16);
            bytes.writeUInt32BE(height, 20);
            bytes.writeUInt32BE(crc32(bytes.subarray(12, 29)), 29);
          }
          const before = process.memoryUsage().arrayBuffers;
          await expect(decodeWith(bytes)).rejects.toThrow(/a decompression bomb\?/);
          expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('fuzzing the zip reader', () => {
  const zip = zipBytes([
    {
      path: 'pets/train/a/1.png',
      bytes: pngBytes(
        Uint8Array.from({ length: 64 }, (_, i) => i * 3),
        8,
        8,
        1,
      ),
    },
    { path: 'pets/train/b/2.png', bytes: pngBytes(new Uint8Array(64).fill(9), 8, 8, 1) },
  ]);
  /** Every entry's bytes, or a DataError: never an entry larger than its directory says. */
  const readAll = async (bytes: Uint8Array) => {
    const blob = new Blob([bytes as Uint8Array<ArrayBuffer>]);
    const entries = await readZipDirectory(blob, 'fuzz.zip');
    return Promise.all(entries.map(async (entry) => ({ entry, bytes: await readZipEntry(blob, entry, 'fuzz.zip') })));
  };
  const valid = (read: Awaited<ReturnType<typeof readAll>>) =>
    read.every(({ entry, bytes }) => bytes.length === entry.size);

  it('truncations and bit flips of a zip: its entries whole, or a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(damaged(zip), async (bytes) => {
        await onlyDataErrors(() => readAll(bytes), valid);
      }),
      { numRuns: 300 },
    );
  });
});

describe('fuzzing the model directory', () => {
  let modelJson: string;
  let weights: Uint8Array;
  /** The same for a convolutional model: Conv2D, MaxPooling2D, Dropout, Flatten, Dense. */
  let cnnJson: string;
  let cnnWeights: Uint8Array;
  beforeAll(async () => {
    const original = join(dir, 'model');
    (await saveTinyModel(original)).dispose();
    modelJson = readFileSync(join(original, 'model.json'), 'utf8');
    weights = readFileSync(join(original, 'weights.bin'));
    const cnn = join(dir, 'cnn');
    (await saveTinyModel(cnn, tinyCnn)).dispose();
    cnnJson = readFileSync(join(cnn, 'model.json'), 'utf8');
    cnnWeights = readFileSync(join(cnn, 'weights.bin'));
  });

  /** A model directory with these two files. */
  const modelDir = (json: string | Uint8Array, bin: Uint8Array) => {
    const path = join(dir, `model${fileNumber++}`);
    mkdirSync(path);
    writeFileSync(join(path, 'model.json'), json);
    writeFileSync(join(path, 'weights.bin'), bin);
    return path;
  };

  /** loadModel gives a model or a DataError, and leaves no tensor behind either way. True when it loads. */
  async function loadsOrRefuses(path: string): Promise<boolean> {
    const before = tf.memory().numTensors;
    let loaded = false;
    await onlyDataErrors(
      async () => {
        const model = await loadModel(path);
        model.dispose();
        loaded = true;
        return model;
      },
      (model) => model.layers.length > 0,
    );
    expect(tf.memory().numTensors).toBe(before);
    return loaded;
  }

  it('a truncated weights.bin: a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(truncated(weights), async (bytes) => {
        expect(await loadsOrRefuses(modelDir(modelJson, bytes))).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('bit flips in weights.bin: a model when every value is still finite, else a DataError', async () => {
    const floats = (bytes: Uint8Array) => new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    // Both outcomes, whatever fast-check draws: the top exponent bit (bit 30, in the last byte of
    // the little-endian float) of a value in [1, 2) makes it infinite or NaN; the lowest mantissa
    // bit of the same value keeps it finite.
    const one = floats(weights).findIndex((v) => Math.abs(v) >= 1 && Math.abs(v) < 2);
    expect(one).toBeGreaterThanOrEqual(0);
    const flip = (byte: number, bit: number) => {
      const copy = Uint8Array.from(weights);
      copy[byte] ^= 1 << bit;
      return copy;
    };
    await fc.assert(
      fc.asyncProperty(flipped(weights), async (bytes) => {
        expect(await loadsOrRefuses(modelDir(modelJson, bytes))).toBe(floats(bytes).every(Number.isFinite));
      }),
      { numRuns: 150, examples: [[flip(4 * one + 3, 6)], [flip(4 * one, 0)]] },
    );
  });

  it('truncations and bit flips of model.json: a model or a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(damaged(Buffer.from(modelJson)), async (bytes) => {
        await loadsOrRefuses(modelDir(bytes, weights));
      }),
      { numRuns: 200 },
    );
  });

  it('random bytes as model.json or weights.bin: a DataError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, asJson) => {
        expect(await loadsOrRefuses(asJson ? modelDir(bytes, weights) : modelDir(modelJson, bytes))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  /** Every place in a JSON value, as the keys that lead to it. */
  const placesIn = (value: unknown, at: (string | number)[] = []): (string | number)[][] =>
    typeof value === 'object' && value !== null
      ? [
          at,
          ...Object.entries(value).flatMap(([key, v]) =>
            placesIn(v, [...at, Array.isArray(value) ? Number(key) : key]),
          ),
        ]
      : [at];
  /** Values a damaged or hostile model.json might hold: sizes, paths, names and kinds that tfjs knows. */
  const hostile = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(0, -1, 1.5, 1e9, 2 ** 31, 2 ** 53, 1e300, null, [], {}, [null, 1e9, 1e9], [784, 1e9], [1e9]),
    fc.constantFrom([1, 1], [2, 2], [3, 1], [0, 2], [1e9, 1e9], 'same', 'valid', 'causal', 'channels_first'),
    fc.constantFrom('../weights.bin', '../../../../etc/passwd', '/etc/passwd', 'weights.bin', '.', '', 'a\u0000b'),
    fc.constantFrom('Conv2D', 'Dense', 'Flatten', 'Model', 'constructor', '__proto__', 'float64', 'int32', 'tanh'),
    fc.constantFrom('MaxPooling2D', 'Dropout', 'Conv1D', 'AveragePooling2D', 'BatchNormalization'),
  );

  it.for(['dense', 'convolutional'])(
    '%s model.json with values replaced or removed anywhere: a model or a DataError',
    async (kind) => {
      const [original, bin] = kind === 'dense' ? [modelJson, weights] : [cnnJson, cnnWeights];
      const places = placesIn(JSON.parse(original)).filter((place) => place.length > 0);
      const edit = fc.record({ place: fc.constantFrom(...places), value: fc.option(hostile, { freq: 5 }) });
      await fc.assert(
        fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
          const copy = JSON.parse(original);
          for (const { place, value } of edits) {
            let parent = copy;
            for (const key of place.slice(0, -1)) parent = parent?.[key];
            if (typeof parent !== 'object' || parent === null) continue;
            if (value === null) delete parent[place[place.length - 1]];
            else parent[place[place.length - 1]] = value;
          }
          await loadsOrRefuses(modelDir(JSON.stringify(copy), bin));
        }),
        { numRuns: 300 },
      );
    },
  );

  it('any weights paths: the weights inside the directory, or a DataError, never a file outside', async () => {
    // Valid weights just outside every model directory: a path that reached them would load.
    writeFileSync(join(dir, 'weights.bin'), weights);
    const paths = fc.array(
      fc.oneof(
        fc.constantFrom('weights.bin', './weights.bin', 'x/../weights.bin', '../weights.bin', join(dir, 'weights.bin')),
        fc.constantFrom('', '.', '..', '/', 'weights.bin/', 'a\u0000b', 'line\nbreak', '\u001b[31mred', '\u2028'),
        fc.string(),
      ),
      { maxLength: 3 },
    );
    await fc.assert(
      fc.asyncProperty(paths, async (names) => {
        const json = JSON.parse(modelJson);
        json.weightsManifest[0].paths = names;
        const path = modelDir(JSON.stringify(json), weights);
        if (await loadsOrRefuses(path))
          expect(names.map((name) => resolve(path, name))).toEqual([join(path, 'weights.bin')]);
      }),
      { numRuns: 300 },
    );
  });

  it('huge declared units, filters, kernels or shapes fail at once, without allocating them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1000, max: 2 ** 40 }), fc.nat({ max: 5 }), async (size, which) => {
        const json = JSON.parse(which < 4 ? modelJson : cnnJson);
        const specs = json.weightsManifest[0].weights;
        const layers = json.modelTopology.config.layers;
        if (which === 0) layers[1].config.units = size;
        else if (which === 1) layers[0].config.batch_input_shape = [null, size, size];
        else if (which < 4) specs[which].shape = specs[which].shape.map(() => size);
        else if (which === 4) layers[0].config.filters = size;
        else layers[0].config.kernel_size = [size, size];
        const path = modelDir(JSON.stringify(json), which < 4 ? weights : cnnWeights);
        const before = { tensorBytes: tf.memory().numBytes, arrayBuffers: process.memoryUsage().arrayBuffers };
        await expect(loadModel(path)).rejects.toThrow(DataError);
        expect(tf.memory().numBytes).toBe(before.tensorBytes);
        expect(process.memoryUsage().arrayBuffers - before.arrayBuffers).toBeLessThan(1 << 20);
      }),
      { numRuns: 100 },
    );
  });
});

describe('fuzzing the PyTorch run folder', () => {
  // A folder as the export writes one, with a checkpoint: a small network with every layer kind,
  // stopped after step 1 of its second epoch.
  const layers = formatLayers(parseLayers('conv:2:3:same,pool,dropout:0.25,flatten,dense:10', 'fuzz'));
  const network = buildNetwork(parseLayers(layers, 'fuzz'), { height: 28, width: 28 }, 10, 'fuzz');
  const vector = (phase: number) => Float32Array.from({ length: network.paramCount }, (_, i) => Math.sin(i + phase));
  const config = {
    workers: 2,
    epochs: 2,
    batchSize: 4,
    seed: 1,
    adam: { learningRate: 0.003, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    schedule: 'cosine' as const,
    model: layers,
  };
  const history = [{ epoch: 1, loss: 2.1, accuracy: 0.2, testLoss: 2.0, testAccuracy: 0.3, seconds: 1.5 }];
  const state = new Float32Array(network.stateCount);
  const run: PyTorchRun = {
    network,
    params: vector(0),
    state,
    config,
    history,
    // Everything run.json says about the data, for the fuzzing to damage.
    data: {
      metadata: {
        classNames: Array.from({ length: 10 }, (_, i) => `class ${i}`),
        image: { height: 28, width: 28, channels: 1 },
        imageFolder: { resize: 'pad', validationSplit: { fraction: 0.2, seed: 1 } },
      },
      sha256: 'ab'.repeat(32),
      pictures: { folder: '/data/pictures' },
    },
    checkpoint: {
      config,
      trainCount: 10,
      epochsDone: 1,
      stepsDone: 1,
      history,
      params: vector(0),
      state,
      adam: { m: vector(1), v: vector(2).map(Math.abs), steps: 4 },
      epoch: { order: Int32Array.from([3, 1, 4, 0, 5, 9, 2, 6, 8, 7]), stats: Float64Array.from([1, 2, 4, 1, 1, 4]) },
      rngState: 5,
    },
  };
  const files = new Map(
    runFiles(run).map(({ name, data }) => [name, typeof data === 'string' ? Buffer.from(data) : Buffer.concat(data)]),
  );
  /** A copy of the folder with `name` replaced by `bytes`. */
  const folder = (name: string, bytes: Uint8Array) => {
    const path = join(dir, `run${fileNumber++}`);
    mkdirSync(path);
    for (const [file, original] of files) writeFileSync(join(path, file), file === name ? bytes : original);
    return path;
  };
  const valid = (read: PyTorchRun) =>
    read.params.length === network.paramCount && read.params.every(Number.isFinite) && read.history.length >= 0;

  it('reads back what it wrote', async () => {
    const read = await readPyTorchRun(folder('', new Uint8Array()));
    expect(read.params).toEqual(run.params);
    expect(read.checkpoint).toEqual(run.checkpoint);
    expect(read.data).toEqual(run.data);
  });

  it.for(['model.safetensors', 'checkpoint.safetensors', 'run.json'])(
    'truncations, bit flips and random bytes of %s: a run or a DataError',
    async (name) => {
      const original = files.get(name) as Buffer;
      await fc.assert(
        fc.asyncProperty(fc.oneof(damaged(original), fc.uint8Array({ maxLength: 300 })), async (bytes) => {
          await onlyDataErrors(() => readPyTorchRun(folder(name, bytes)), valid);
        }),
        { numRuns: 150 },
      );
    },
  );

  /** Values a damaged or hostile header might hold. */
  const hostile = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(0, -1, 1.5, 1e9, 2 ** 31, 2 ** 53, 1e300, null, [], {}, [0, 0], [0, 2 ** 53], [2 ** 40, 2 ** 40]),
    fc.constantFrom('F32', 'F64', 'I32', 'U8', 'BF16', 'float32', '__proto__', 'constructor'),
  );
  const placesIn = (value: unknown, at: (string | number)[] = []): (string | number)[][] =>
    typeof value === 'object' && value !== null
      ? [
          at,
          ...Object.entries(value).flatMap(([key, v]) =>
            placesIn(v, [...at, Array.isArray(value) ? Number(key) : key]),
          ),
        ]
      : [at];
  const edited = (json: unknown, edits: { place: (string | number)[]; value: unknown }[]) => {
    const copy = structuredClone(json) as Record<string, unknown>;
    for (const { place, value } of edits) {
      let parent: unknown = copy;
      for (const key of place.slice(0, -1)) parent = (parent as Record<string | number, unknown>)?.[key];
      if (typeof parent !== 'object' || parent === null) continue;
      if (value === null) delete (parent as Record<string | number, unknown>)[place[place.length - 1]];
      else (parent as Record<string | number, unknown>)[place[place.length - 1]] = value;
    }
    return copy;
  };

  it.for(['model.safetensors', 'checkpoint.safetensors'])(
    "%s with its header's values replaced or removed anywhere: a run or a DataError, never an allocation the file cannot back",
    async (name) => {
      const original = files.get(name) as Buffer;
      const length = Number(original.readBigUInt64LE(0));
      const header = JSON.parse(original.subarray(8, 8 + length).toString());
      const body = original.subarray(8 + length);
      const places = placesIn(header).filter((place) => place.length > 0);
      const edit = fc.record({ place: fc.constantFrom(...places), value: fc.option(hostile, { freq: 5 }) });
      await fc.assert(
        fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
          const json = Buffer.from(JSON.stringify(edited(header, edits)));
          const prefix = Buffer.alloc(8);
          prefix.writeBigUInt64LE(BigInt(json.length));
          const before = process.memoryUsage().arrayBuffers;
          await onlyDataErrors(() => readPyTorchRun(folder(name, Buffer.concat([prefix, json, body]))), valid);
          expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
        }),
        { numRuns: 300 },
      );
    },
  );

  it('run.json with values replaced or removed anywhere: a run or a DataError', async () => {
    const original = JSON.parse((files.get('run.json') as Buffer).toString());
    const places = placesIn(original).filter((place) => place.length > 0);
    const edit = fc.record({ place: fc.constantFrom(...places), value: fc.option(hostile, { freq: 5 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
        await onlyDataErrors(
          () => readPyTorchRun(folder('run.json', Buffer.from(JSON.stringify(edited(original, edits))))),
          valid,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('a header length of up to 2^64 - 1: a DataError at once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), async (length) => {
        const bytes = Buffer.from(files.get('model.safetensors') as Buffer);
        bytes.writeBigUInt64LE(length);
        await onlyDataErrors(() => readPyTorchRun(folder('model.safetensors', bytes)), valid);
      }),
      { numRuns: 100 },
    );
  });
});
