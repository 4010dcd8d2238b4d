import { wasmModule } from '../wasm.js';
import { type AdamConfig, adamAlpha, type AdamStep, type ParamRange } from './adam.js';

/**
 * The optimizer's shared memory: parameters and Adam's moments (float32), and one gradient slot per
 * worker (float64), views of one shared WebAssembly.Memory, so that the SIMD kernel (adam.wat)
 * reads and writes them in place, in every worker, without a copy. The slots are float64 so that a
 * shard's gradient reaches the sum unrounded: rounded to float32 per shard, the sum of two shards'
 * would differ from one worker's rounding of the whole, and Adam's first steps grow such
 * differences (see layers/conv.ts).
 */
export interface OptimizerMemory {
  readonly memory: WebAssembly.Memory;
  readonly params: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** `slotCount` slots, `slotLength` values apart. */
  readonly grads: Float64Array;
  /** The parameter count rounded up to 4, so every slot starts 16-byte aligned. */
  readonly slotLength: number;
  readonly slotCount: number;
}

const PAGE_BYTES = 65_536;

export function createOptimizerMemory(paramCount: number, slotCount: number): OptimizerMemory {
  const slotLength = Math.ceil(paramCount / 4) * 4;
  const bytes = slotLength * 4 * (3 + 2 * slotCount);
  const pages = Math.ceil(bytes / PAGE_BYTES);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const view = (slot: number, length: number) => new Float32Array(memory.buffer, slot * slotLength * 4, length);
  return {
    memory,
    slotLength,
    slotCount,
    params: view(0, paramCount),
    m: view(1, paramCount),
    v: view(2, paramCount),
    grads: new Float64Array(memory.buffer, 3 * slotLength * 4, slotLength * slotCount),
  };
}

type AdamExport = (
  params: number,
  m: number,
  v: number,
  slots: number,
  stride: number,
  count: number,
  lo: number,
  hi: number,
  scale: number,
  beta1: number,
  c1: number,
  beta2: number,
  c2: number,
  alpha: number,
  epsilon: number,
) => number;

/** A step of the kernel: Adam's step, and the factor that turns the summed slots into the mean gradient. */
export interface KernelStep extends AdamStep {
  /** 1 / (samples in the global batch). */
  readonly scale: number;
}

/**
 * The all-reduce fused with Adam, in WebAssembly SIMD: bit for bit `adamUpdate` of adam.ts, the
 * readable reference, about 3x faster than that loop in JavaScript.
 */
export class AdamKernel {
  readonly #memory: OptimizerMemory;
  readonly #config: AdamConfig;
  readonly #adam: AdamExport;

  constructor(memory: OptimizerMemory, config: AdamConfig) {
    const instance = new WebAssembly.Instance(wasmModule('adam'), { env: { memory: memory.memory } });
    this.#memory = memory;
    this.#config = config;
    this.#adam = instance.exports.adam as AdamExport;
  }

  /**
   * One Adam step on the parameters of `range`, with the gradient `step.scale` times the sum of the
   * slots. Returns true when a reduced gradient was NaN or infinite, as `adamUpdate` does.
   */
  update(range: ParamRange, step: KernelStep): boolean {
    const { params, m, v, grads, slotLength, slotCount } = this.#memory;
    const { beta1, beta2, epsilon } = this.#config;
    const nonFinite = this.#adam(
      params.byteOffset,
      m.byteOffset,
      v.byteOffset,
      grads.byteOffset,
      slotLength * 8,
      slotCount,
      range.lo,
      range.hi,
      step.scale,
      beta1,
      1 - beta1,
      beta2,
      1 - beta2,
      adamAlpha(this.#config, step),
      epsilon,
    );
    return nonFinite !== 0;
  }
}
