/**
 * The reference for the trainer's arithmetic speed: a plain matMul (no transposed operand, nothing
 * fused) of the tutorial's first layer, [256, 784] x [784, 128], on tfjs-wasm on one thread, with
 * the same operands each time (so that XNNPACK packs its weights once). What a worker computes
 * runs at best at this speed.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export interface Peak {
  readonly shape: string;
  /** GFLOP/s, the median of `samples` timings of `repeats` matMuls each. */
  readonly gflops: number;
}

export async function measureMatMulPeak(samples = 15, repeats = 20): Promise<Peak> {
  await tf.setBackend('wasm');
  const [m, k, n] = [256, 784, 128];
  const a = tf.randomUniform([m, k]);
  const b = tf.randomUniform([k, n]);
  for (let i = 0; i < 20; i++) tf.dispose(tf.matMul(a, b));
  const times: number[] = [];
  for (let s = 0; s < samples; s++) {
    const start = performance.now();
    for (let i = 0; i < repeats; i++) tf.dispose(tf.matMul(a, b));
    times.push((performance.now() - start) / repeats);
  }
  tf.dispose([a, b]);
  times.sort((x, y) => x - y);
  const ms = times[Math.floor(times.length / 2)];
  return { shape: `[${m},${k}]x[${k},${n}]`, gflops: (2 * m * k * n) / ms / 1e6 };
}
