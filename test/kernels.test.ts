/**
 * The WebAssembly glue kernels (src/model/kernels.wat), run on tfjs-wasm's heap, against their
 * readable definitions (src/model/kernels-reference.ts): bit for bit, on shapes that take every
 * path (channels a multiple of 4 and not, odd sizes that drop partial windows, padding on each side,
 * strided layouts), with ties in the pooling windows.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { emptyTensor, glueKernels, heapView, heapView64, offsetOf } from '../dist/src/model/kernels.js';
import {
  activationBackward,
  biasRows,
  bytesToFloats,
  channelSums,
  im2col,
  im2colTransposed,
  matrixProducts,
  outerProducts,
  poolBackward,
  poolForward,
  type Strides,
  transpose,
} from '../dist/src/model/kernels-reference.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

function generator(seed: number) {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Values in steps of 1/8 between -1 and 1: ties in pooling windows, zeros for the relu mask. */
function values(length: number, seed: number): Float32Array {
  const next = generator(seed);
  return Float32Array.from({ length }, () => Math.round(next() * 16 - 8) / 8);
}

/**
 * Float32 values in (-1, 1) with 24 significant bits, not multiples of a power of two, and an
 * exact 0 every 9th (the relu's edge): summed over thousands of terms, float32 and float64
 * accumulation give different results.
 */
function roughValues(length: number, seed: number): Float32Array {
  const next = generator(seed);
  return Float32Array.from({ length }, (_, i) => (i % 9 === 4 ? 0 : 2 * next() - 1));
}

/** A tensor on the wasm heap holding `data`. */
function onHeap(data: Float32Array): tf.Tensor {
  const tensor = emptyTensor([data.length]);
  heapView(tensor).set(data);
  return tensor;
}

const bits = (a: Float32Array | Float64Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

/** The three layouts of (sample, pixel, channel) for n samples of `pixels` pixels and c channels. */
const layouts = (n: number, pixels: number, c: number): Record<string, Strides> => ({
  rows: { sB: pixels * c, sP: c, sC: 1 },
  columns: { sB: 1, sP: c * n, sC: n },
  planes: { sB: pixels, sP: 1, sC: n * pixels },
});

const POOLS = [
  { n: 2, h: 6, w: 4, c: 8, size: 2 },
  { n: 3, h: 7, w: 5, c: 6, size: 2 },
  { n: 2, h: 9, w: 8, c: 3, size: 3 },
  { n: 1, h: 5, w: 5, c: 1, size: 2 },
];

describe('pool_forward and pool_backward', () => {
  for (const shape of POOLS) {
    const { n, h, w, c, size } = shape;
    const [oh, ow] = [Math.floor(h / size), Math.floor(w / size)];
    for (const [layout, strides] of Object.entries(layouts(n, oh * ow, c))) {
      it(`equal the reference bit for bit: ${n}x${h}x${w}x${c}, ${size}x${size} windows, second output and gradient as ${layout}`, () => {
        tf.tidy(() => {
          const x = values(n * h * w * c, h * 7 + c);
          const gradient = values(n * oh * ow * c, w * 3 + c);
          const xTensor = onHeap(x);
          const gradientTensor = onHeap(gradient);
          const pooled = emptyTensor([n * oh * ow * c]);
          const second = emptyTensor([n * oh * ow * c]);
          const dx = emptyTensor([n * h * w * c]);
          heapView(dx).fill(NaN);
          const kernels = glueKernels();
          const { sB, sP, sC } = strides;
          kernels.pool_forward(offsetOf(xTensor), offsetOf(pooled), offsetOf(second), n, h, w, c, size, sB, sP, sC);
          kernels.pool_backward(
            offsetOf(xTensor),
            offsetOf(pooled),
            offsetOf(gradientTensor),
            offsetOf(dx),
            n,
            h,
            w,
            c,
            size,
            sB,
            sP,
            sC,
          );

          const expectedPooled = new Float32Array(n * oh * ow * c);
          const expectedSecond = new Float32Array(n * oh * ow * c);
          const expectedDx = new Float32Array(n * h * w * c).fill(NaN);
          poolForward(x, expectedPooled, { values: expectedSecond, strides }, shape);
          poolBackward(x, expectedPooled, { values: gradient, strides }, expectedDx, shape);
          expect(bits(heapView(pooled))).toEqual(bits(expectedPooled));
          expect(bits(heapView(second))).toEqual(bits(expectedSecond));
          expect(bits(heapView(dx))).toEqual(bits(expectedDx));
          // Each window's gradient went to one place: the sums match.
          const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
          expect(sum(expectedDx)).toBeCloseTo(sum(gradient), 4);
        });
      });
    }
  }

  it('match tfjs maxPool, and route gradients as tfjs autodiff does (cpu backend), ties included', async () => {
    const { n, h, w, c, size } = POOLS[1];
    const x = values(n * h * w * c, 5);
    const gradient = values(n * 3 * 2 * c, 6);
    const pooled = new Float32Array(n * 3 * 2 * c);
    const dx = new Float32Array(n * h * w * c);
    poolForward(x, pooled, undefined, POOLS[1]);
    poolBackward(x, pooled, { values: gradient, strides: layouts(n, 6, c).rows }, dx, POOLS[1]);
    await tf.setBackend('cpu');
    const [expectedPooled, expectedDx] = tf.tidy(() => {
      const input = tf.tensor4d(x, [n, h, w, c]);
      const pool = (t: tf.Tensor4D) => tf.maxPool(t, size, size, 'valid');
      const back = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.mul(pool(t as tf.Tensor4D), tf.tensor4d(gradient, [n, 3, 2, c]))),
      );
      return [pool(input).dataSync(), back(input).dataSync()];
    });
    await tf.setBackend('wasm');
    // + 0 makes -0 and 0 one value: tfjs sums the routed gradient onto a 0.
    const plain = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
    expect(plain(pooled)).toEqual(plain(expectedPooled));
    expect(plain(dx)).toEqual(plain(expectedDx));
  });
});

describe('activation_backward', () => {
  // 4 x 1031 = 4124 terms per channel's bias sum, 4096 and more: float32 accumulation would round
  // differently from float64's (checked below); 6 channels, 4 at a time and 2 one by one.
  const [n, hw, c] = [4, 1031, 6];
  const all = layouts(n, hw, c);
  for (const relu of [true, false]) {
    for (const [of, aStrides] of Object.entries({ rows: all.rows, columns: all.columns })) {
      for (const [from, fromStrides] of Object.entries(all)) {
        for (const [to, toStrides] of Object.entries(all)) {
          it(`equals the reference bit for bit: ${relu ? 'relu' : 'linear'}, activations in ${of}, ${from} to ${to}, float64 bias sums`, () => {
            tf.tidy(() => {
              const a = roughValues(n * hw * c, 11);
              const da = roughValues(n * hw * c, 12);
              const aTensor = onHeap(a);
              const daTensor = onHeap(da);
              const dz = emptyTensor([n * hw * c]);
              const db = emptyTensor([2 * c]);
              heapView64(db).fill(0.25);
              glueKernels().activation_backward(
                offsetOf(aTensor),
                offsetOf(daTensor),
                offsetOf(dz),
                offsetOf(db),
                n,
                hw,
                c,
                relu ? 1 : 0,
                aStrides.sB,
                aStrides.sP,
                aStrides.sC,
                fromStrides.sB,
                fromStrides.sP,
                fromStrides.sC,
                toStrides.sB,
                toStrides.sP,
                toStrides.sC,
              );
              const expectedDz = new Float32Array(n * hw * c);
              const expectedDb = new Float64Array(c).fill(0.25);
              activationBackward(
                { values: a, strides: aStrides },
                { values: da, strides: fromStrides },
                { values: expectedDz, strides: toStrides },
                expectedDb,
                { n, hw, c, relu },
              );
              expect(bits(heapView(dz))).toEqual(bits(expectedDz));
              expect(bits(heapView64(db))).toEqual(bits(expectedDb));
              if (relu) expect(expectedDz.filter((v, i) => v === 0 && da[i] !== 0).length).toBeGreaterThan(0);
              // The bias sums can tell float64 accumulation from float32's: summed in float32, in
              // the same order, every channel comes out different.
              const inFloat32 = new Float32Array(c).fill(0.25);
              for (let b = 0; b < n; b++)
                for (let p = 0; p < hw; p++)
                  for (let ch = 0; ch < c; ch++) {
                    const at = b * fromStrides.sB + p * fromStrides.sP + ch * fromStrides.sC;
                    const g = relu && !(a[b * aStrides.sB + p * aStrides.sP + ch * aStrides.sC] > 0) ? 0 : da[at];
                    inFloat32[ch] = Math.fround(inFloat32[ch] + g);
                  }
              expect(Array.from(inFloat32).filter((v, ch) => v === expectedDb[ch])).toEqual([]);
            });
          });
        }
      }
    }
  }
});

describe('bias_rows', () => {
  for (const [rows, cols] of [
    [5, 8],
    [3, 7],
  ]) {
    for (const relu of [true, false]) {
      it(`equals the reference bit for bit: ${rows} x ${cols}, ${relu ? 'relu' : 'linear'}`, () => {
        tf.tidy(() => {
          const z = values(rows * cols, rows * cols);
          const bias = values(rows, rows + 1);
          const zTensor = onHeap(z);
          glueKernels().bias_rows(offsetOf(zTensor), offsetOf(onHeap(bias)), rows, cols, relu ? 1 : 0);
          biasRows(z, bias, rows, cols, relu);
          expect(bits(heapView(zTensor))).toEqual(bits(z));
        });
      });
    }
  }
});

describe('channel_sums', () => {
  for (const [positions, c] of [
    [300, 8],
    [97, 7],
    [40, 2],
  ]) {
    it(`equals the reference bit for bit, adding to float64 sums: ${positions} positions of ${c} channels`, () => {
      tf.tidy(() => {
        const u = roughValues(positions * c, positions + c);
        const v = roughValues(positions * c, positions * c + 1);
        // Sums that start away from 0, as a second shard's or pass's would.
        const start = Float64Array.from({ length: 2 * c }, (_, i) => i / 3);
        const sums = emptyTensor([4 * c]);
        heapView64(sums).set(start);
        glueKernels().channel_sums(offsetOf(onHeap(u)), offsetOf(onHeap(v)), offsetOf(sums), positions, c);
        const expected = start.slice();
        channelSums(u, v, expected, positions, c);
        expect(bits(heapView64(sums))).toEqual(bits(expected));
      });
    });
  }
});

describe('im2col and im2col_transposed', () => {
  const GEOMETRIES = [
    { n: 2, h: 5, w: 6, c: 1, k: 3, padTop: 1, padLeft: 1, oh: 5, ow: 6 },
    { n: 2, h: 7, w: 5, c: 3, k: 3, padTop: 0, padLeft: 0, oh: 5, ow: 3 },
    { n: 1, h: 6, w: 9, c: 2, k: 2, padTop: 0, padLeft: 0, oh: 6, ow: 9 },
    { n: 3, h: 4, w: 11, c: 5, k: 5, padTop: 2, padLeft: 2, oh: 4, ow: 11 },
  ];
  for (const g of GEOMETRIES) {
    it(`equal the reference bit for bit: ${g.n}x${g.h}x${g.w}x${g.c}, ${g.k}x${g.k} kernel, padding ${g.padTop}`, () => {
      tf.tidy(() => {
        const x = values(g.n * g.h * g.w * g.c, g.h + g.k);
        const columns = g.n * g.oh * g.ow * g.k * g.k * g.c;
        const xTensor = onHeap(x);
        const cols = emptyTensor([columns]);
        glueKernels().im2col(
          offsetOf(xTensor),
          offsetOf(cols),
          g.n,
          g.h,
          g.w,
          g.c,
          g.k,
          g.padTop,
          g.padLeft,
          g.oh,
          g.ow,
        );
        const expected = new Float32Array(columns);
        im2col(x, expected, g);
        expect(bits(heapView(cols))).toEqual(bits(expected));

        // The transposed one, from planes with a gap after each (a chunk of a larger batch).
        const planeStride = (g.n + 1) * g.h * g.w;
        const planes = values(g.c * planeStride, g.w + g.k);
        const planesTensor = onHeap(planes);
        const colsT = emptyTensor([columns]);
        glueKernels().im2col_transposed(
          offsetOf(planesTensor),
          offsetOf(colsT),
          g.n,
          g.h,
          g.w,
          g.c,
          planeStride,
          g.k,
          g.padTop,
          g.padLeft,
          g.oh,
          g.ow,
        );
        const expectedT = new Float32Array(columns);
        im2colTransposed(planes, expectedT, { ...g, planeStride });
        expect(bits(heapView(colsT))).toEqual(bits(expectedT));
      });
    });
  }
});

describe('bytes_to_floats and transpose', () => {
  it("scale every grey level as the tutorial's images / 255 does, bit for bit", () => {
    tf.tidy(() => {
      // Every byte value, then more, so that both the 16-at-a-time loop and its tail run.
      const bytes = Uint8Array.from({ length: 256 + 37 }, (_, i) => i % 256);
      const staging = emptyTensor([Math.ceil(bytes.length / 4)]);
      new Uint8Array(heapView(staging).buffer, offsetOf(staging), bytes.length).set(bytes);
      const floats = emptyTensor([bytes.length]);
      glueKernels().bytes_to_floats(offsetOf(staging), offsetOf(floats), bytes.length);
      const expected = new Float32Array(bytes.length);
      bytesToFloats(bytes, expected);
      expect(bits(heapView(floats))).toEqual(bits(expected));
      expect(expected[255]).toBe(1);
    });
  });

  for (const [rows, cols] of [
    [8, 12],
    [7, 5],
    [128, 784],
  ]) {
    it(`transpose a ${rows} x ${cols} matrix bit for bit`, () => {
      tf.tidy(() => {
        const src = values(rows * cols, rows + cols);
        const srcTensor = onHeap(src);
        const dst = emptyTensor([rows * cols]);
        glueKernels().transpose(offsetOf(srcTensor), offsetOf(dst), rows, cols);
        const expected = new Float32Array(rows * cols);
        transpose(src, expected, rows, cols);
        expect(bits(heapView(dst))).toEqual(bits(expected));
      });
    });
  }
});

describe('outer_products', () => {
  for (const shape of [
    { count: 16, rows: 13, m: 8, n: 12 },
    { count: 36, rows: 7, m: 4, n: 8 },
    { count: 2, rows: 40, m: 12, n: 4 },
    { count: 1, rows: 50, m: 32, n: 9 },
    { count: 3, rows: 5, m: 4, n: 2 },
    { count: 2, rows: 9, m: 9, n: 32 },
    { count: 1, rows: 6, m: 3, n: 5 },
    // In chunks, each a float32 sum added into the float64 ones: a short first chunk, a short last one.
    { count: 1, rows: 40, m: 12, n: 16, first: 5, chunk: 16 },
    { count: 2, rows: 13, m: 4, n: 4, first: 13, chunk: 4 },
    { count: 1, rows: 9, m: 8, n: 12, first: 1, chunk: 1 },
  ] as { count: number; rows: number; m: number; n: number; first?: number; chunk?: number }[]) {
    it(`equals the reference bit for bit, adding to float64 sums: ${shape.count} pairs of ${shape.rows} rows${shape.chunk ? ` in chunks of ${shape.chunk} after ${shape.first}` : ''}, ${shape.m} x ${shape.n}`, () => {
      tf.tidy(() => {
        // Gaps between the matrices, and 3 floats after each operand's last row, which the last
        // rows or columns may read.
        const aP = shape.rows * shape.m + 3;
        const bP = shape.rows * shape.n + 1;
        // Rough values: sums in other chunks, or in another order, would round differently.
        const a = roughValues(shape.count * aP + 3, shape.m);
        const b = roughValues(shape.count * bP + 3, shape.n);
        const length = shape.count * shape.m * shape.n;
        const sums = emptyTensor([2 * length]);
        heapView64(sums).fill(0.25);
        glueKernels().outer_products(
          offsetOf(onHeap(a)),
          offsetOf(onHeap(b)),
          offsetOf(sums),
          shape.count,
          shape.rows,
          shape.m,
          shape.n,
          aP,
          bP,
          shape.first ?? 0,
          shape.chunk ?? 0,
        );
        const expected = new Float64Array(length).fill(0.25);
        outerProducts(a, b, expected, { ...shape, aP, bP });
        expect(bits(heapView64(sums))).toEqual(bits(expected));
      });
    });
  }
});

describe('matrix_products', () => {
  for (const shape of [
    { count: 36, rows: 13, k: 8, n: 16 },
    { count: 2, rows: 40, k: 32, n: 12 },
    { count: 3, rows: 4, k: 5, n: 4 },
    { count: 1, rows: 7, k: 64, n: 32 },
    { count: 2, rows: 2, k: 3, n: 8 },
    { count: 1, rows: 1, k: 1, n: 20 },
  ]) {
    it(`equals the reference bit for bit: ${shape.count} products of [${shape.rows}, ${shape.k}] by [${shape.k}, ${shape.n}]`, () => {
      tf.tidy(() => {
        // Gaps between the matrices: the kernel must neither read nor write them as its own.
        const aP = shape.rows * shape.k + 3;
        const bP = shape.k * shape.n + 5;
        const oP = shape.rows * shape.n + 4;
        // Rough values: a sum in another order (or fused multiply-adds) would round differently.
        const a = roughValues(shape.count * aP, shape.k);
        const b = roughValues(shape.count * bP, shape.n + 1);
        const out = emptyTensor([shape.count * oP]);
        heapView(out).fill(0.5);
        glueKernels().matrix_products(
          offsetOf(onHeap(a)),
          offsetOf(onHeap(b)),
          offsetOf(out),
          shape.count,
          shape.rows,
          shape.k,
          shape.n,
          aP,
          bP,
          oP,
        );
        const expected = new Float32Array(shape.count * oP).fill(0.5);
        matrixProducts(a, b, expected, { ...shape, aP, bP, oP });
        expect(bits(heapView(out))).toEqual(bits(expected));
      });
    });
  }
});
