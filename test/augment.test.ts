/**
 * Augmentation of the training images (src/data/augment.ts), as the workers' gather applies it
 * (src/worker/network-step.ts): pixel for pixel against a plain reference, drawn from a hash that
 * depends on nothing but the seed, the epoch and the image, so that N workers train as one and a
 * resumed run as the uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Dataset,
  InterruptedError,
  loadFashionMnist,
  OptionError,
  readCheckpoint,
  train,
} from '../dist/src/index.js';
import { checkAugment, parseAugment, transformOf, type Transform } from '../dist/src/data/augment.js';
import { heapView } from '../dist/src/model/kernels.js';
import { gather } from '../dist/src/worker/network-step.js';
import { DEBIAN_DIR, tempDir } from './helpers.js';

let data: Dataset;
/** 320 real training images (10 steps of 32 per epoch), and 500 test images. */
let slice: Dataset;
/** The same count of colour images, each pixel's red, green and blue the levels of three real images. */
let colour: Dataset;

const sliced = (split: Dataset['train'], count: number, pixels: number) => ({
  images: split.images.subarray(0, count * pixels),
  labels: split.labels.subarray(0, count),
  count,
});

beforeAll(async () => {
  await tf.setBackend('wasm');
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  slice = { ...data, train: sliced(data.train, 320, 784), test: sliced(data.test, 500, 784) };
  const rgb = (split: Dataset['train'], count: number) => {
    const images = new Uint8Array(count * 784 * 3);
    for (let i = 0; i < count * 784; i++)
      for (let c = 0; c < 3; c++) images[i * 3 + c] = split.images[(i + c * count * 784) % split.images.length];
    return { images, labels: split.labels.slice(0, count), count };
  };
  colour = { ...data, channels: 3, train: rgb(data.train, 320), test: rgb(data.test, 200) };
});

/**
 * The definition, in float64 and plain loops: pixel (y, x) of the augmented image is pixel
 * (y - dy, x - dx) of the image flipped left to right when `flip`, zero where that is outside it;
 * levels 0-255 become level / 255.
 */
function reference(
  image: ArrayLike<number>,
  height: number,
  width: number,
  channels: number,
  t: Transform,
  levels: boolean,
): number[] {
  const out: number[] = [];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < channels; c++) {
        const sy = y - t.dy;
        const fx = x - t.dx;
        const sx = t.flip ? width - 1 - fx : fx;
        const inside = sy >= 0 && sy < height && fx >= 0 && fx < width;
        const value = inside ? image[(sy * width + sx) * channels + c] : 0;
        out.push(levels ? value / 255 : value);
      }
  return out;
}

/** The gather's rows and columns for samples [start, end) of `order`, as a training step makes them. */
function gathered(
  images: Uint8Array | Float32Array,
  order: Int32Array,
  shape: [number, number, number],
  augment: ReturnType<typeof checkAugment>,
  seed: number,
  epoch: number,
) {
  return tf.tidy(() => {
    const step = { seed, augment: augment && { config: augment, epoch } };
    const samples = { images, labels: new Uint8Array(images.length), order };
    const scratch = { flip: false, dx: 0, dy: 0 };
    const a = gather(samples, 0, order.length, shape, true, step, scratch);
    return { rows: Array.from(heapView(a.rows())), columns: Array.from(heapView(a.columns())) };
  });
}

describe("the gather's augmentation", () => {
  it('is the reference, value for value: grey and colour levels, float images, every kind of transform', () => {
    const augment = checkAugment({ flip: true, shift: 3 })!;
    const cases = [
      { name: 'grey levels', images: data.train.images, shape: [28, 28, 1] as [number, number, number], levels: true },
      {
        name: 'colour levels',
        images: colour.train.images,
        shape: [28, 28, 3] as [number, number, number],
        levels: true,
      },
      {
        name: 'float values, 9x5x3',
        images: Float32Array.from({ length: 40 * 135 }, (_, i) => Math.fround(Math.sin(i) * 3)),
        shape: [9, 5, 3] as [number, number, number],
        levels: false,
      },
    ];
    for (const { name, images, shape, levels } of cases) {
      const [h, w, c] = shape;
      const pixels = h * w * c;
      const order = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 40);
      for (const epoch of [0, 3]) {
        const { rows, columns } = gathered(images, order, shape, augment, 11, epoch);
        const seen = { flips: new Set<boolean>(), dx: new Set<number>(), dy: new Set<number>() };
        order.forEach((image, r) => {
          const t = transformOf(augment, 11, epoch, image);
          seen.flips.add(t.flip);
          seen.dx.add(t.dx);
          seen.dy.add(t.dy);
          const expected = reference(images.subarray(image * pixels, (image + 1) * pixels), h, w, c, t, levels);
          // Float32 values, as the tensors hold them: exactly equal.
          expect(rows.slice(r * pixels, (r + 1) * pixels), `${name}, epoch ${epoch}, image ${image}`).toEqual(
            expected.map(Math.fround),
          );
          expect(
            expected.map((_, f) => columns[f * order.length + r]),
            `${name}: the columns are the rows transposed`,
          ).toEqual(expected.map(Math.fround));
        });
        // The 40 images took both flips, and offsets of both signs and zero.
        expect([...seen.flips].sort()).toEqual([false, true]);
        for (const offsets of [seen.dx, seen.dy]) {
          expect(Math.min(...offsets)).toBeLessThan(0);
          expect(Math.max(...offsets)).toBeGreaterThan(0);
          expect(offsets.has(0)).toBe(true);
        }
      }
    }
  });

  it('worked by hand on a 2x3 image: flipped, then moved 1 right and 1 down, zeros filling in', () => {
    // Levels   1 2 3     flipped  3 2 1     moved: 0 0 0
    //          4 5 6              6 5 4            0 3 2
    const image = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    const augment = { flip: true, shift: 1 };
    let found = -1;
    for (let i = 0; found < 0; i++) {
      const t = transformOf(augment, 1, 0, i);
      if (t.flip && t.dx === 1 && t.dy === 1) found = i;
    }
    const images = new Uint8Array((found + 1) * 6);
    images.set(image, found * 6);
    const { rows } = gathered(images, Int32Array.of(found), [2, 3, 1], augment, 1, 0);
    expect(rows).toEqual([0, 0, 0, 0, 3, 2].map((v) => Math.fround(v / 255)));
  });

  it('leaves the test images, and runs without augmentation, as they are', () => {
    const order = Int32Array.from({ length: 8 }, (_, i) => i);
    const plain = gathered(data.train.images, order, [28, 28, 1], undefined, 1, 0).rows;
    expect(plain).toEqual(Array.from(data.train.images.subarray(0, 8 * 784), (v) => Math.fround(v / 255)));
  });
});

describe("the augmentation's draw", () => {
  it('is a function of the seed, the epoch and the image: the same again, another in another epoch or seed', () => {
    const augment = { flip: true, shift: 2 };
    const key = (t: Transform) => `${t.flip}/${t.dx}/${t.dy}`;
    const images = Array.from({ length: 1000 }, (_, i) => i * 37);
    const draws = (seed: number, epoch: number) => images.map((i) => key(transformOf(augment, seed, epoch, i)));
    expect(draws(1, 0)).toEqual(draws(1, 0));
    // Two draws of 2 x 5 x 5 = 50 equally likely transforms agree 1 time in 50.
    const same = (a: string[], b: string[]) => a.filter((k, i) => k === b[i]).length / a.length;
    expect(same(draws(1, 0), draws(1, 1))).toBeLessThan(0.05);
    expect(same(draws(1, 0), draws(2, 0))).toBeLessThan(0.05);
    // Every transform comes up, each about as often (1000 / 50 = 20 times; 5 to 40 is far outside chance).
    const counts = new Map<string, number>();
    for (const k of draws(3, 0)) counts.set(k, (counts.get(k) ?? 0) + 1);
    expect(counts.size).toBe(50);
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(5);
      expect(n).toBeLessThan(40);
    }
    // Turning the flip off leaves the offsets as they were.
    const offsets = images.map((i) => transformOf({ flip: false, shift: 2 }, 1, 0, i));
    expect(offsets.map((t) => `${t.dx}/${t.dy}`)).toEqual(
      images.map((i) => transformOf(augment, 1, 0, i)).map((t) => `${t.dx}/${t.dy}`),
    );
    expect(offsets.every((t) => !t.flip)).toBe(true);
  });
});

const weightsOf = (result: Awaited<ReturnType<typeof train>>) =>
  result.model.getWeights().map((w) => w.dataSync<'float32'>().slice());

/** How many values differ in their bits: 0 for the same parameters, bit for bit (and a short message when not). */
function differing(a: Float32Array[], b: Float32Array[] | undefined): number {
  if (b === undefined) return Infinity;
  return a.reduce((n, values, i) => n + values.filter((v, j) => !Object.is(v, b[i][j])).length, 0);
}

function maxRelativeDifference(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((values, i) => {
    const scale = Math.max(...values.map(Math.abs));
    values.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j]) / scale)));
  });
  return max;
}

describe('training with augmentation', () => {
  /** The MLP's parameters after `options` on 2 workers, from the first test: the resumed runs' clean run must repeat them. */
  let twoWorkers: Float32Array[] | undefined;
  const options = { epochs: 2, batchSize: 32, seed: 4, augment: { flip: true, shift: 2 } } as const;

  it('gives the parameters of one worker with 2 and 3, for an MLP and a CNN, on grey and colour images', async () => {
    for (const [data, model] of [
      [slice, 'mlp'],
      [colour, 'conv:4:3:same,pool,flatten,dense:10'],
    ] as const) {
      const one = weightsOf(await train({ ...options, data, model, workers: 1 }));
      for (const workers of [2, 3]) {
        const other = weightsOf(await train({ ...options, data, model, workers }));
        expect(maxRelativeDifference(one, other), `${model}, ${workers} workers`).toBeLessThan(1e-5);
        if (model === 'mlp' && workers === 2) twoWorkers = other;
      }
      if (model === 'mlp') {
        // The augmentation changed the training: without it, other parameters.
        const plain = weightsOf(await train({ ...options, data, model, workers: 1, augment: undefined }));
        expect(maxRelativeDifference(one, plain)).toBeGreaterThan(1e-3);
      }
    }
  });

  it("repeats itself bit for bit, and resumes with the uninterrupted run's parameters: bit for bit on 2 workers, to 1e-5 on 3", async () => {
    const lines: string[] = [];
    const clean = await train({ ...options, data: slice, workers: 2, onLog: (line) => void lines.push(line) });
    expect(lines[0]).toMatch(/, seed 4, augment flip,shift:2$/);
    expect(clean.config.augment).toEqual({ flip: true, shift: 2 });
    // The same run as in the test before: bit for bit.
    expect(differing(weightsOf(clean), twoWorkers)).toBe(0);
    const dir = tempDir();
    // Asked to stop before it starts, the run stops after its first step: the resumed run draws
    // the rest of the first epoch's transforms, then the second's.
    const stopped = await train({
      ...options,
      data: slice,
      workers: 2,
      checkpointDir: dir,
      interrupt: AbortSignal.abort(),
    }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(InterruptedError);
    const checkpoint = await readCheckpoint(dir);
    expect(checkpoint.config.augment).toEqual({ flip: true, shift: 2 });
    expect([checkpoint.epochsDone, checkpoint.stepsDone]).toEqual([0, 1]);
    const resumed = await train({ data: slice, resume: checkpoint });
    expect(differing(weightsOf(resumed), weightsOf(clean))).toBe(0);
    const three = await train({ data: slice, resume: checkpoint, workers: 3 });
    expect(maxRelativeDifference(weightsOf(three), weightsOf(clean))).toBeLessThan(1e-5);
    await expect(train({ data: slice, resume: checkpoint, augment: { flip: true } })).rejects.toThrow(
      'a resumed run keeps the settings of its checkpoint; drop augment',
    );
  });

  it('refuses bad settings before any worker starts, in one line', async () => {
    const refused = async (augment: unknown, data = slice) =>
      train({ data, epochs: 1, augment: augment as never }).catch((e: unknown) => e);
    for (const [augment, message] of [
      [{ flip: 'yes' }, 'augment.flip must be true or false, got "yes"'],
      [{ shift: -1 }, 'augment.shift must be an integer from 0 to 4096 pixels, got -1'],
      [{ shift: 1.5 }, 'augment.shift must be an integer from 0 to 4096 pixels, got 1.5'],
      [{ spin: true }, 'augment has no setting spin; it takes flip and shift'],
      ['flip', 'augment must be an object such as { flip: true, shift: 2 }, got "flip"'],
      [
        { shift: 14 },
        'augment: shift:14 is too large for 28x28 images; at most shift:13 (less than half the smaller side)',
      ],
    ] as const) {
      const error = await refused(augment);
      expect(error).toBeInstanceOf(OptionError);
      expect((error as Error).message).toBe(message);
    }
    expect(parseAugment('shift:3,flip')).toEqual({ flip: true, shift: 3 });
  });
});
