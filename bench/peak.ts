/**
 * The reference for the trainer's arithmetic speed: a plain matMul (no transposed operand, nothing
 * fused) of the tutorial's first layer, [256, 784] x [784, 128], on tfjs-wasm on one thread. Two
 * figures: with a new second operand each call, as training has (its weights change every step,
 * and XNNPACK packs the second operand of every new tensor), and with the same one reused (packed
 * once), the best the library can do.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { median } from './stats.js';

export interface Peak {
  readonly shape: string;
  /** GFLOP/s with a new second operand each call: the reference the benchmark compares against. */
  readonly gflops: number;
  /** GFLOP/s with the same second operand, packed once. */
  readonly cachedGflops: number;
  /** Samples taken, each the median of its own rounds. */
  readonly samples: number;
}

const [M, K, N] = [256, 784, 128];

/**
 * Measures the peak several times and keeps every sample: the machine's speed drifts by up to
 * ±30% over minutes, so a benchmark takes samples between its other measurements (`sample`), and
 * compares against their median (`result`).
 */
export class PeakMeter {
  readonly #fresh: number[] = [];
  readonly #cached: number[] = [];

  async sample(rounds = 9, repeats = 10): Promise<void> {
    await tf.setBackend('wasm');
    const a = tf.randomUniform([M, K]);
    const b = tf.randomUniform([K, N]);
    const values = b.dataSync();
    const fresh = () => {
      const operand = tf.tensor2d(values, [K, N]);
      tf.dispose([tf.matMul(a, operand), operand]);
    };
    const cached = () => tf.dispose(tf.matMul(a, b));
    for (let i = 0; i < 10; i++) {
      fresh();
      cached();
    }
    const times: [number[], number[]] = [[], []];
    // Round robin, so that a slow moment of the machine weighs on both alike.
    for (let r = 0; r < rounds; r++) {
      [fresh, cached].forEach((f, i) => {
        const start = performance.now();
        for (let k = 0; k < repeats; k++) f();
        times[i].push((performance.now() - start) / repeats);
      });
    }
    tf.dispose([a, b]);
    this.#fresh.push(gflops(median(times[0])));
    this.#cached.push(gflops(median(times[1])));
  }

  /** The latest sample's GFLOP/s with new weights. */
  get latest(): number {
    return this.#fresh[this.#fresh.length - 1];
  }

  result(): Peak {
    return {
      shape: `[${M},${K}]x[${K},${N}]`,
      gflops: median(this.#fresh),
      cachedGflops: median(this.#cached),
      samples: this.#fresh.length,
    };
  }
}

const gflops = (ms: number) => (2 * M * K * N) / ms / 1e6;
