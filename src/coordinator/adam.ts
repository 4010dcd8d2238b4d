import type { AdamConfig } from '../protocol.js';
import { type GradientSlots, reducedGradient } from './all-reduce.js';

/** Keras's defaults, also tfjs's (tfjs's epsilon is its backend's, 1e-7 for float32). */
export const ADAM_DEFAULTS: AdamConfig = { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };

export interface AdamState {
  readonly params: Float32Array;
  /** First moment (mean of gradients). */
  readonly m: Float32Array;
  /** Second moment (mean of squared gradients). */
  readonly v: Float32Array;
}

/**
 * One Adam step on parameters `[lo, hi)`, with the gradient all-reduced from the workers' slots on
 * the fly. `step` is Adam's t, counted from 1, and `learningRate` the schedule's rate for this step.
 * The update is Keras's (and TensorFlow's ApplyAdam):
 *
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g^2
 *   p = p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)
 *
 * Arithmetic is float64, state is stored as float32 like the tfjs/Keras variables.
 */
export function adamUpdate(
  state: AdamState,
  gradient: GradientSlots,
  lo: number,
  hi: number,
  step: number,
  config: AdamConfig,
  learningRate = config.learningRate,
): void {
  const { params, m, v } = state;
  const { beta1, beta2, epsilon } = config;
  const alpha = (learningRate * Math.sqrt(1 - beta2 ** step)) / (1 - beta1 ** step);
  for (let i = lo; i < hi; i++) {
    const g = reducedGradient(gradient, i);
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= (alpha * mi) / (Math.sqrt(vi) + epsilon);
  }
}
