/**
 * Winograd's 3x3 convolution (src/model/winograd.ts): its WebAssembly transforms (winograd.wat)
 * against their readable definitions (winograd-reference.ts) bit for bit, on shapes that take every
 * path (F(2x2) and F(4x4), partial tiles, both paddings, blocks of a larger batch, the products'
 * last four columns); the products on XNNPACK against tf.matMul; and the whole algorithm against a
 * float64 direct convolution written out below, on random data and on real activations.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../dist/src/index.js';
import { emptyTensor, heapView, offsetOf, winogradKernels } from '../dist/src/model/kernels.js';
import { WinogradConv } from '../dist/src/model/winograd.js';
import {
  winogradGradient,
  winogradInput,
  winogradOutput,
  type WinogradTile,
} from '../dist/src/model/winograd-reference.js';
import { DEBIAN_DIR } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

function generator(seed: number) {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Uniform in [-1, 1), float32: every rounding the transforms do shows. */
function values(length: number, seed: number): Float32Array {
  const next = generator(seed);
  return Float32Array.from({ length }, () => 2 * next() - 1);
}

function onHeap(data: Float32Array): tf.Tensor {
  const tensor = emptyTensor([data.length]);
  heapView(tensor).set(data);
  return tensor;
}

const bits = (a: Float32Array | Float64Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

const tilesOf = (size: number, m: number) => Math.ceil(size / m);

/** Input geometries: `same` and `valid` padding, and the input gradient's (padding 2); sizes that leave partial tiles. */
const GEOMETRIES = [
  { name: 'same, 7 x 6, 8 channels', n: 2, h: 7, w: 6, c: 8, pad: 1, oh: 7, ow: 6 },
  { name: 'valid, 9 x 5, 4 channels', n: 3, h: 9, w: 5, c: 4, pad: 0, oh: 7, ow: 3 },
  { name: 'full (an input gradient), 5 x 7, 12 channels', n: 1, h: 5, w: 7, c: 12, pad: 2, oh: 7, ow: 9 },
];

describe.each([2, 4] as WinogradTile[])('the F(%ix%i, 3x3) transforms', (m) => {
  const a = m + 2;
  for (const g of GEOMETRIES) {
    const [tilesY, tilesX] = [tilesOf(g.oh, m), tilesOf(g.ow, m)];
    const tiles = g.n * tilesY * tilesX;
    // Matrices with a gap between them, as a block of a larger buffer.
    const strides = { sP: tiles * g.c + 5, sT: g.c };

    it(`winograd_input equals the reference bit for bit: ${g.name}`, () => {
      tf.tidy(() => {
        // One image more before the block, which the kernel must skip.
        const x = values((g.n + 1) * g.h * g.w * g.c, g.h * 7 + g.c);
        const xTensor = onHeap(x);
        const v = emptyTensor([a * a * strides.sP]);
        heapView(v).fill(7);
        winogradKernels().winograd_input(
          offsetOf(xTensor) + g.h * g.w * g.c * 4,
          offsetOf(v),
          g.n,
          g.h,
          g.w,
          g.c,
          g.pad,
          g.pad,
          tilesY,
          tilesX,
          m,
          strides.sP,
          strides.sT,
          offsetOf(emptyTensor([36 * g.c + 144])),
        );
        const expected = new Float32Array(a * a * strides.sP).fill(7);
        winogradInput(
          x.subarray(g.h * g.w * g.c),
          expected,
          { ...g, padTop: g.pad, padLeft: g.pad, tilesY, tilesX, m },
          strides,
        );
        expect(bits(heapView(v))).toEqual(bits(expected));
      });
    });

    for (const [bias, relu] of [
      [true, true],
      [false, false],
    ]) {
      it(`winograd_output equals the reference bit for bit: ${g.name}, ${bias ? 'bias and relu' : 'no bias, linear'}`, () => {
        tf.tidy(() => {
          const products = values(a * a * strides.sP, g.w * 5 + g.c);
          const biasValues = values(g.c, 3);
          const out = emptyTensor([g.n * g.oh * g.ow * g.c]);
          heapView(out).fill(NaN);
          winogradKernels().winograd_output(
            offsetOf(onHeap(products)),
            offsetOf(out),
            bias ? offsetOf(onHeap(biasValues)) : 0,
            g.n,
            g.oh,
            g.ow,
            g.c,
            tilesY,
            tilesX,
            m,
            relu ? 1 : 0,
            strides.sP,
            strides.sT,
            offsetOf(emptyTensor([36 * g.c + 144])),
          );
          const expected = new Float32Array(g.n * g.oh * g.ow * g.c).fill(NaN);
          winogradOutput(products, expected, bias ? biasValues : undefined, { ...g, tilesY, tilesX, m, relu }, strides);
          expect(bits(heapView(out))).toEqual(bits(expected));
          expect(expected.every((v) => !Number.isNaN(v))).toBe(true);
          if (relu) expect(expected.filter((v) => v === 0).length).toBeGreaterThan(0);
        });
      });
    }

    it(`winograd_gradient equals the reference bit for bit: ${g.name}`, () => {
      tf.tidy(() => {
        const dz = values(g.n * g.oh * g.ow * g.c, g.oh + g.c);
        const out = emptyTensor([a * a * strides.sP]);
        heapView(out).fill(7);
        winogradKernels().winograd_gradient(
          offsetOf(onHeap(dz)),
          offsetOf(out),
          g.n,
          g.oh,
          g.ow,
          g.c,
          tilesY,
          tilesX,
          m,
          strides.sP,
          strides.sT,
          offsetOf(emptyTensor([36 * g.c + 144])),
        );
        const expected = new Float32Array(a * a * strides.sP).fill(7);
        winogradGradient(dz, expected, { ...g, tilesY, tilesX, m }, strides);
        expect(bits(heapView(out))).toEqual(bits(expected));
      });
    });
  }
});

/** A float64 direct 3x3 convolution, its input gradient and its filter gradient, by their definitions. */
function direct64(
  x: Float32Array,
  kernel: Float32Array,
  g: { n: number; h: number; w: number; c: number; f: number; pad: number },
) {
  const { n, h, w, c, f, pad } = g;
  const [oh, ow] = [h + 2 * pad - 2, w + 2 * pad - 2];
  const forward = (dz: Float32Array | undefined) => {
    const y = new Float64Array(n * oh * ow * f);
    const dx = new Float64Array(n * h * w * c);
    const dw = new Float64Array(9 * c * f);
    for (let b = 0; b < n; b++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++)
          for (let ky = 0; ky < 3; ky++)
            for (let kx = 0; kx < 3; kx++) {
              const [iy, ix] = [oy + ky - pad, ox + kx - pad];
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (let ci = 0; ci < c; ci++) {
                const xi = ((b * h + iy) * w + ix) * c + ci;
                for (let co = 0; co < f; co++) {
                  const wi = ((ky * 3 + kx) * c + ci) * f + co;
                  const yi = ((b * oh + oy) * ow + ox) * f + co;
                  y[yi] += x[xi] * kernel[wi];
                  if (dz !== undefined) {
                    dx[xi] += dz[yi] * kernel[wi];
                    dw[wi] += dz[yi] * x[xi];
                  }
                }
              }
            }
    return { y, dx, dw };
  };
  return { oh, ow, forward };
}

/** The largest error relative to the largest value of the reference. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let error = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error = Math.max(error, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return error / scale;
}

/** The three passes of a WinogradConv on x and dz, read back. */
function winogradPasses(
  tile: WinogradTile,
  g: { n: number; h: number; w: number; c: number; f: number; pad: number; oh: number; ow: number },
  x: Float32Array,
  kernel: Float32Array,
  dz: Float32Array,
  chunk = 2,
) {
  const conv = new WinogradConv({
    input: [g.h, g.w, g.c],
    output: [g.oh, g.ow, g.f],
    padBefore: g.pad,
    tile,
    chunk,
    forward: true,
    inputGradient: true,
  });
  conv.prepare(kernel, new Float32Array(g.f));
  const dw = new Float64Array(9 * g.c * g.f);
  let [y, dx]: Float32Array[] = [];
  tf.tidy(() => {
    const xTensor = tf.tensor4d(x, [g.n, g.h, g.w, g.c]);
    const dzTensor = tf.tensor4d(dz, [g.n, g.oh, g.ow, g.f]);
    y = conv.forward(xTensor, g.n, false).dataSync() as Float32Array;
    dx = conv.inputGradient(dzTensor, g.n).dataSync() as Float32Array;
    const chunks: [number, number][] = [];
    for (let from = 0; from < g.n; from += chunk) chunks.push([from, Math.min(g.n, from + chunk)]);
    conv.filterGradient(xTensor, dzTensor, chunks, dw);
  });
  conv.release();
  return { y, dx, dw };
}

describe('WinogradConv against a float64 direct convolution', () => {
  for (const tile of [2, 4] as WinogradTile[]) {
    for (const [padding, pad] of [
      ['same', 1],
      ['valid', 0],
    ] as const) {
      it(`F(${tile}x${tile}), ${padding}: the forward pass and both gradients, in chunks of 2 of 5 samples`, () => {
        const base = { n: 5, h: 11, w: 9, c: 8, f: 12, pad };
        const reference = direct64(values(1, 0), values(1, 0), base);
        const g = { ...base, oh: reference.oh, ow: reference.ow };
        const x = values(g.n * g.h * g.w * g.c, 21);
        const kernel = values(9 * g.c * g.f, 22);
        const dz = values(g.n * g.oh * g.ow * g.f, 23);
        const expected = direct64(x, kernel, g).forward(dz);
        const before = tf.memory().numTensors;
        const actual = winogradPasses(tile, g, x, kernel, dz);
        expect(tf.memory().numTensors).toBe(before);
        // F(2x2)'s error is float32 rounding; F(4x4)'s transforms multiply by up to 8 and 5/... and add
        // more terms, about 10x that (measured on real activations below).
        const bound = tile === 2 ? 2e-6 : 2e-5;
        expect(relativeError(actual.y, expected.y)).toBeLessThan(bound);
        expect(relativeError(actual.dx, expected.dx)).toBeLessThan(bound);
        expect(relativeError(actual.dw, expected.dw)).toBeLessThan(bound);
      });
    }
  }
});

/** The RMS error over the RMS of the reference. */
function rmsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let error = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error += (actual[i] - expected[i]) ** 2;
    scale += expected[i] ** 2;
  }
  return Math.sqrt(error / scale);
}

describe("F(4x4)'s error on real activations", () => {
  it("stays within a few float32 roundings of the exact convolution, for the preset's second layer", async () => {
    // 16 real training images through a first convolution (Glorot-uniform, seeded), relu and 2x2
    // pooling, as the preset has them: the second convolution's input, 14 x 14 x 32.
    const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
    const n = 16;
    const next = generator(7);
    const glorot = (size: number, fanIn: number, fanOut: number) => {
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      return Float32Array.from({ length: size }, () => (2 * next() - 1) * limit);
    };
    const x = tf.tidy(() => {
      const images = tf.tensor4d(
        Float32Array.from(data.train.images.subarray(0, n * 784), (v) => v / 255),
        [n, 28, 28, 1],
      );
      const first = tf.relu(tf.conv2d(images, tf.tensor4d(glorot(9 * 32, 9, 9 * 32), [3, 3, 1, 32]), 1, 'same'));
      return tf.maxPool(first as tf.Tensor4D, 2, 2, 'valid').dataSync() as Float32Array;
    });
    const g = { n, h: 14, w: 14, c: 32, f: 64, pad: 1, oh: 14, ow: 14 };
    const kernel = glorot(9 * 32 * 64, 9 * 32, 9 * 64);
    const dz = values(n * 14 * 14 * 64, 8).map((v) => v / 64);
    const expected = direct64(x, kernel, g).forward(dz);
    const actual = winogradPasses(4, g, x, kernel, dz, 16);
    // Measured: largest errors 1-8e-6 of the largest value, RMS errors 0.5-2e-6 (tfjs's direct
    // float32 convolution: about 5e-7 and 2e-7); the bounds leave room for other data.
    for (const [pass, value, reference] of [
      ['forward', actual.y, expected.y],
      ['input gradient', actual.dx, expected.dx],
      ['filter gradient', actual.dw, expected.dw],
    ] as const) {
      expect(relativeError(value, reference), pass).toBeLessThan(5e-5);
      expect(rmsError(value, reference), pass).toBeLessThan(1e-5);
    }
  });
});
