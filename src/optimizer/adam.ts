import { type GradientSlots, reducedGradient } from './all-reduce.js';

/** Adam's hyper-parameters; the update is Keras's (epsilon added to sqrt(v), see `adamUpdate`). */
export interface AdamConfig {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}

/** Keras's defaults, also tfjs's (tfjs's epsilon is its backend's, 1e-7 for float32). */
export const ADAM_DEFAULTS: AdamConfig = { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };

export interface AdamState {
  readonly params: Float32Array;
  /** First moment (mean of gradients). */
  readonly m: Float32Array;
  /** Second moment (mean of squared gradients). */
  readonly v: Float32Array;
}

/** Which parameters one update touches: `[lo, hi)`. */
export interface ParamRange {
  readonly lo: number;
  readonly hi: number;
}

/** What changes from one step to the next. */
export interface AdamStep {
  /** Adam's t, counted from 1. */
  readonly t: number;
  /** The schedule's rate for this step. */
  readonly learningRate: number;
}

/**
 * The factor of Keras's update, `lr * sqrt(1 - beta2^t) / (1 - beta1^t)`: one number per step,
 * computed once, outside the loop over parameters.
 */
export function adamAlpha(config: AdamConfig, step: AdamStep): number {
  return (step.learningRate * Math.sqrt(1 - config.beta2 ** step.t)) / (1 - config.beta1 ** step.t);
}

/**
 * One Adam step on the parameters of `range`, with the gradient all-reduced from the workers' slots
 * on the fly. The update is Keras's (and TensorFlow's ApplyAdam):
 *
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g^2
 *   p = p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)
 *
 * Arithmetic is float64, state is stored as float32 like the tfjs/Keras variables. Returns true
 * when a reduced gradient was NaN or infinite: training diverged (the forward pass may hide it,
 * e.g. a fused relu turns a NaN into 0, but the gradients do not). This is the readable reference;
 * training runs `AdamKernel`, its bit-identical twin in WebAssembly SIMD.
 */
export function adamUpdate(
  state: AdamState,
  gradient: GradientSlots,
  range: ParamRange,
  step: AdamStep,
  config: AdamConfig,
): boolean {
  const { params, m, v } = state;
  const { beta1, beta2, epsilon } = config;
  const alpha = adamAlpha(config, step);
  let nonFinite = false;
  for (let i = range.lo; i < range.hi; i++) {
    const g = reducedGradient(gradient, i);
    if (!Number.isFinite(g)) nonFinite = true;
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= (alpha * mi) / (Math.sqrt(vi) + epsilon);
  }
  return nonFinite;
}
