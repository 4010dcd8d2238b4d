import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { paramLayout } from '../dist/src/model/layout.js';
import {
  disposeParams,
  evaluateBatch,
  Scratch,
  shardGradients as shardGradientsOf,
  uploadParams,
} from '../dist/src/worker/gradients.js';

// A tiny network with two hidden layers, so every backward path of the worker's code runs:
// 16 pixels (4x4 images) -> 5 relu -> 4 relu -> 3 classes, on 6 images in a shuffled order.
const SIZES = [16, 5, 4, 3];
const { layers, count } = paramLayout(SIZES);
const ROWS = 6;

function fixture() {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const params = Float32Array.from({ length: count }, () => next() - 0.5);
  const images = Uint8Array.from({ length: 10 * 16 }, () => Math.floor(next() * 256));
  const labels = Uint8Array.from({ length: 10 }, (_, i) => i % 3);
  const order = Int32Array.from([9, 3, 0, 7, 4, 1, 8, 2, 6, 5]);
  return { params, images, labels, order, batch: { images, labels, order, start: 2, end: 2 + ROWS } };
}

/** The shard's summed cross-entropy in float64, straight from the definition. */
function lossF64(params: ArrayLike<number>, f: ReturnType<typeof fixture>): number {
  let total = 0;
  for (let r = f.batch.start; r < f.batch.end; r++) {
    const index = f.order[r];
    let a = Array.from(f.images.subarray(index * 16, index * 16 + 16), (v) => v / 255);
    layers.forEach((l, li) => {
      const z = Array.from({ length: l.outputs }, (_, o) => {
        let s = params[l.biasOffset + o];
        for (let i = 0; i < l.inputs; i++) s += params[l.weightOffset + o * l.inputs + i] * a[i];
        return s;
      });
      a = li < layers.length - 1 ? z.map((v) => Math.max(0, v)) : z;
    });
    const max = Math.max(...a);
    const logSum = max + Math.log(a.reduce((s, v) => s + Math.exp(v - max), 0));
    total += logSum - a[f.labels[index]];
  }
  return total;
}

/** The worker's gradient computation for one shard, parameters uploaded and freed around it as in a step. */
function shardGradients(
  params: Float32Array,
  batch: Parameters<typeof shardGradientsOf>[1],
  scratch: Scratch,
  grad: Float32Array,
) {
  const model = uploadParams(params, layers);
  try {
    return shardGradientsOf(model, batch, scratch, grad);
  } finally {
    disposeParams(model);
  }
}

beforeAll(async () => {
  await tf.setBackend('wasm');
});

describe("shardGradients (the worker's explicit dense gradients)", () => {
  it('equals tfjs autodiff (tf.grads) of the same summed loss', () => {
    const f = fixture();
    const grad = new Float32Array(count);
    const score = shardGradients(f.params, f.batch, new Scratch(8, 16, 3), grad);

    const x = tf.tensor2d(
      Array.from({ length: ROWS }, (_, r) =>
        Array.from(f.images.subarray(f.order[2 + r] * 16, f.order[2 + r] * 16 + 16), (v) => v / 255),
      ),
    );
    const y = tf.oneHot(
      tf.tensor1d(
        Array.from({ length: ROWS }, (_, r) => f.labels[f.order[2 + r]]),
        'int32',
      ),
      3,
    );
    const tensors = layers.flatMap((l) => [
      tf.tensor2d(f.params.slice(l.weightOffset, l.biasOffset), [l.outputs, l.inputs]),
      tf.tensor1d(f.params.slice(l.biasOffset, l.biasOffset + l.outputs)),
    ]);
    const lossOf = (...p: tf.Tensor[]) => {
      let a: tf.Tensor = x;
      layers.forEach((_, li) => {
        const z = tf.add(tf.matMul(a, p[2 * li], false, true), p[2 * li + 1]);
        a = li < layers.length - 1 ? tf.relu(z) : z;
      });
      return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(a))));
    };
    const expected = tf.grads(lossOf)(tensors);
    const loss = lossOf(...tensors).dataSync()[0];
    expect(score.lossSum).toBeCloseTo(loss, 4);
    layers.forEach((l, li) => {
      const w = expected[2 * li].dataSync();
      const b = expected[2 * li + 1].dataSync();
      for (let i = 0; i < w.length; i++) expect(Math.abs(grad[l.weightOffset + i] - w[i])).toBeLessThan(1e-5);
      for (let i = 0; i < b.length; i++) expect(Math.abs(grad[l.biasOffset + i] - b[i])).toBeLessThan(1e-5);
    });
    tf.dispose([x, y, tensors, expected]);
  });

  it('matches central finite differences of the float64 loss', () => {
    const f = fixture();
    const grad = new Float32Array(count);
    const score = shardGradients(f.params, f.batch, new Scratch(8, 16, 3), grad);
    expect(score.lossSum).toBeCloseTo(lossF64(f.params, f), 4);
    const h = 1e-4;
    const p64 = Float64Array.from(f.params);
    let checked = 0;
    for (let i = 0; i < count; i++) {
      const saved = p64[i];
      p64[i] = saved + h;
      const up = lossF64(p64, f);
      p64[i] = saved - h;
      const down = lossF64(p64, f);
      p64[i] = saved;
      const numeric = (up - down) / (2 * h);
      expect(Math.abs(grad[i] - numeric)).toBeLessThan(2e-4 + 1e-3 * Math.abs(numeric));
      if (numeric !== 0) checked++;
    }
    expect(checked).toBeGreaterThan(count / 2);
  });

  it('writes a zero gradient for an empty shard and leaks no tensors', () => {
    const f = fixture();
    const grad = new Float32Array(count).fill(3);
    const before = tf.memory().numTensors;
    expect(shardGradients(f.params, { ...f.batch, end: f.batch.start }, new Scratch(8, 16, 3), grad)).toEqual({
      lossSum: 0,
      correct: 0,
    });
    expect(grad.every((g) => g === 0)).toBe(true);
    shardGradients(f.params, f.batch, new Scratch(8, 16, 3), grad);
    evaluateBatch(f.params, layers, { images: f.images, labels: f.labels, start: 0, end: 10 }, new Scratch(4, 16, 3));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('evaluates in chunks to the same loss as the float64 definition', () => {
    const f = fixture();
    const all = {
      images: f.images,
      labels: f.labels,
      order: Int32Array.from({ length: 10 }, (_, i) => i),
      start: 0,
      end: 10,
    };
    const score = evaluateBatch(
      f.params,
      layers,
      { images: f.images, labels: f.labels, start: 0, end: 10 },
      new Scratch(4, 16, 3),
    );
    expect(score.lossSum).toBeCloseTo(lossF64(f.params, { ...f, order: all.order, batch: all }), 4);
  });
});
