import * as tf from '@tensorflow/tfjs';
import { emptyTensor, glueKernels, heapView, heapView64, offsetOf, winogradKernels } from './kernels.js';
import type { Shape } from './compute.js';
import type { WinogradTile } from './winograd-reference.js';

export type { WinogradTile } from './winograd-reference.js';

/**
 * A 3x3, stride-1 convolution by Winograd's minimal filtering, F(m x m, 3 x 3) (Lavin & Gray 2016;
 * the transforms are in winograd-reference.ts). Each tile of (m + 2)^2 inputs gives m x m outputs
 * with (m + 2)^2 products per channel pair instead of 9 m^2: 16 instead of 36 for F(2x2), 36
 * instead of 144 for F(4x4). Over a batch, those products are (m + 2)^2 plain matMuls, one per
 * position p of the transformed tile:
 *
 *   forward   M_p = V_p · U_p        V_p [tiles, in]  the input's tiles, transformed (B^T d B)
 *                                    U_p [in, out]    the filter, transformed (G g G^T), once a step
 *             Y = A^T M A + b        per tile, then the relu: winograd_output
 *   input     the same with dZ for the input, the filter rotated 180 degrees with in and out
 *             swapped (U'_p [out, in]), and the padding mirrored: the transposed convolution as a
 *             forward one
 *   filter    dU_p = V_p^T · dM_p    V_p [tiles, in] as in the forward pass, dM_p [tiles, out] =
 *                                    A dY A^T of the output gradient's tiles: their outer
 *                                    products, summed over a chunk's tiles
 *             dW = G^T dU G          summed over the chunks in float64, then transformed back
 *
 * The transforms are SIMD kernels (winograd.wat) on tfjs-wasm's heap. The products are
 * kernels.wat's too, reading both operands as they are: the forward pass's and the input
 * gradient's on `matrix_products` (through XNNPACK, 36 products of [256, 32] by [32, 64] took 1.5x
 * as long: at that depth its packing and per-call dispatch weigh as much as the arithmetic), the
 * filter gradient's on `outer_products`. Every pass goes
 * through the batch in blocks of `chunk` samples, so that a block's transformed tiles stay in
 * cache between the kernels and the products. The filter gradient's blocks are the convolution's
 * chunks (aligned to the epoch's order, see conv.ts), each product a float32 sum over one chunk's
 * tiles: N workers do the arithmetic of 1 on shards whose sizes are multiples of the chunk. The
 * forward pass and the input gradient compute each sample's tiles alike whatever the block it falls
 * in (the transforms work tile by tile, and a product's row does not depend on the rows beside
 * it).
 */
export interface WinogradOptions {
  /** `[height, width, in]` and `[outHeight, outWidth, out]`. */
  readonly input: Shape;
  readonly output: Shape;
  /** Padding before the first row and column (TensorFlow's `same`: 1; `valid`: 0). */
  readonly padBefore: number;
  readonly tile: WinogradTile;
  /** Samples per block, the filter gradient's chunk. */
  readonly chunk: number;
  /** Which filters `prepare` transforms: the filter for the forward pass, the rotated one for the input gradient. */
  readonly forward: boolean;
  readonly inputGradient: boolean;
}

/** G of F(m x m, 3 x 3): (m + 2) x 3. */
const G: Record<WinogradTile, readonly (readonly number[])[]> = {
  2: [
    [1, 0, 0],
    [1 / 2, 1 / 2, 1 / 2],
    [1 / 2, -1 / 2, 1 / 2],
    [0, 0, 1],
  ],
  4: [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
};

/** Floats of scratch the transforms use for `channels` channels: a tile of them, and 36 vectors. */
const scratchFloats = (channels: number) => 36 * channels + 144;

/** Which of a convolution's passes take Winograd's algorithm, and its tiles' size. */
export interface WinogradPlan {
  readonly tile: WinogradTile;
  readonly forward: boolean;
  readonly inputGradient: boolean;
  readonly filterGradient: boolean;
}

/**
 * The per-layer rule (measured by bench:conv). Only 3x3 kernels, and channel counts that are
 * multiples of 4 (the kernels take four channels at a time). The forward pass's products sum over
 * the input channels, and the input gradient's over the output channels: with fewer than
 * MIN_PRODUCT_DEPTH, those short products run well below XNNPACK's peak, the transforms (whose cost
 * does not depend on that depth) weigh more, and tfjs's direct convolution is as fast. The filter
 * gradient's products sum over a chunk's tiles, and its direct path is slow for few channels:
 * Winograd's pays for any channel count.
 */
export const MIN_PRODUCT_DEPTH = 32;

/** What of a convolution's spec (layers/conv.ts, which imports this file) the rule reads. */
export interface Convolution {
  readonly kernel: number;
  readonly filters: number;
}

/** Whether the kernels can compute a convolution at all: 3x3, channel counts multiples of 4. */
export function winogradCan(spec: Convolution, input: Shape): boolean {
  return spec.kernel === 3 && input[2] % 4 === 0 && spec.filters % 4 === 0;
}

export function winogradPlan(spec: Convolution, input: Shape): WinogradPlan | undefined {
  const channels = input[2];
  if (!winogradCan(spec, input)) return undefined;
  return {
    tile: 4,
    forward: channels >= MIN_PRODUCT_DEPTH,
    inputGradient: spec.filters >= MIN_PRODUCT_DEPTH,
    filterGradient: true,
  };
}

/**
 * Multiply-adds of one sample's Winograd products in each pass: (m + 2)^2 per tile and channel
 * pair, the tiles covering the pass's output (those past the edge count: they are computed).
 */
export function winogradMacs(
  spec: Convolution,
  input: Shape,
  output: Shape,
  tile: WinogradTile,
): Record<WinogradPass, number> {
  const area = (tile + 2) ** 2;
  const tiles = (shape: Shape) => Math.ceil(shape[0] / tile) * Math.ceil(shape[1] / tile);
  const pairs = input[2] * spec.filters;
  return {
    forward: area * tiles(output) * pairs,
    inputGradient: area * tiles(input) * pairs,
    filterGradient: area * tiles(output) * pairs,
  };
}

export type WinogradPass = 'forward' | 'inputGradient' | 'filterGradient';

/** A pass's geometry: its input's NHWC shape, its output's, the padding before, and the tiles. */
interface Pass {
  readonly h: number;
  readonly w: number;
  readonly in: number;
  readonly oh: number;
  readonly ow: number;
  readonly out: number;
  readonly pad: number;
  readonly tilesY: number;
  readonly tilesX: number;
}

export class WinogradConv {
  readonly #m: WinogradTile;
  readonly #a: number;
  readonly #chunk: number;
  readonly #forward: Pass;
  /** The input gradient's pass: dZ in, dX out. */
  readonly #backward: Pass;
  readonly #prepareForward: boolean;
  readonly #prepareInputGradient: boolean;
  /** Scratch for the filter transforms: the rotated filter, and float64 sums half and wholly transformed. */
  readonly #rotated: Float32Array;
  readonly #half: Float64Array;
  readonly #whole: Float64Array;
  #filter: tf.Tensor | undefined;
  #flipped: tf.Tensor | undefined;
  #bias: tf.Tensor | undefined;

  constructor(options: WinogradOptions) {
    const { input, output, padBefore, tile, chunk } = options;
    const [h, w, channels] = input;
    const [oh, ow, filters] = output;
    if (channels % 4 !== 0 || filters % 4 !== 0) {
      throw new Error(`Winograd's kernels take channels four at a time, got ${channels} in and ${filters} out`);
    }
    this.#m = tile;
    this.#a = tile + 2;
    this.#chunk = chunk;
    this.#prepareForward = options.forward;
    this.#prepareInputGradient = options.inputGradient;
    const tiles = (size: number) => Math.ceil(size / tile);
    this.#forward = { h, w, in: channels, oh, ow, out: filters, pad: padBefore, tilesY: tiles(oh), tilesX: tiles(ow) };
    this.#backward = {
      h: oh,
      w: ow,
      in: filters,
      oh: h,
      ow: w,
      out: channels,
      pad: 2 - padBefore,
      tilesY: tiles(h),
      tilesX: tiles(w),
    };
    this.#half = new Float64Array(this.#a * 3 * channels * filters);
    this.#rotated = new Float32Array(options.inputGradient ? 9 * channels * filters : 0);
    this.#whole = new Float64Array(this.#a * this.#a * channels * filters);
  }

  /**
   * Transforms the filter (Keras's `[3, 3, in, out]`) once a step, in float64, and uploads it with
   * the bias.
   */
  prepare(kernel: Float32Array, bias: Float32Array): void {
    const { in: channels, out: filters } = this.#forward;
    const area = this.#a * this.#a;
    if (this.#prepareForward) {
      const filter = (this.#filter = emptyTensor([area, channels, filters]));
      this.#transformFilter(kernel, heapView(filter));
      this.#bias = emptyTensor([filters]);
      heapView(this.#bias).set(bias);
    }
    if (this.#prepareInputGradient) {
      // W rotated 180 degrees, in and out swapped: [3, 3, out, in].
      const rotated = this.#rotated;
      for (let tap = 0; tap < 9; tap++) {
        const from = (8 - tap) * channels * filters;
        const to = tap * filters * channels;
        for (let c = 0; c < channels; c++) {
          for (let f = 0; f < filters; f++) rotated[to + f * channels + c] = kernel[from + c * filters + f];
        }
      }
      const flipped = (this.#flipped = emptyTensor([area, filters, channels]));
      this.#transformFilter(rotated, heapView(flipped));
    }
  }

  release(): void {
    tf.dispose([this.#filter, this.#flipped, this.#bias].filter((t) => t !== undefined));
    this.#filter = this.#flipped = this.#bias = undefined;
  }

  /** act(conv(x) + b) of `count` samples of x (NHWC), as NHWC. */
  forward(x: tf.Tensor, count: number, relu: boolean): tf.Tensor {
    const { oh, ow, out } = this.#forward;
    if (this.#bias === undefined) throw new Error('forward() needs a filter prepared for the forward pass');
    const y = emptyTensor([count, oh, ow, out]);
    this.#convolve(this.#forward, x, y, count, offsetOf(this.#filter as tf.Tensor), offsetOf(this.#bias), relu);
    return y;
  }

  /** The gradient at the input, NHWC, of the gradient dz at the pre-activations (NHWC). */
  inputGradient(dz: tf.Tensor, count: number): tf.Tensor {
    const { oh, ow, out } = this.#backward;
    if (this.#flipped === undefined) throw new Error('inputGradient() needs a filter prepared for the input gradient');
    const dx = emptyTensor([count, oh, ow, out]);
    this.#convolve(this.#backward, dz, dx, count, offsetOf(this.#flipped), 0, false);
    return dx;
  }

  /**
   * The filter gradient of samples `[from, to)` of x and dz (both NHWC), chunk by chunk as given,
   * in Keras's layout, float64, into `sums`.
   */
  filterGradient(
    x: tf.Tensor,
    dz: tf.Tensor,
    chunks: readonly (readonly [number, number])[],
    sums: Float64Array,
  ): void {
    const { h, w, in: channels, oh, ow, out: filters, pad, tilesY, tilesX } = this.#forward;
    const m = this.#m;
    const area = this.#a * this.#a;
    const kernels = winogradKernels();
    const most = Math.max(...chunks.map(([from, to]) => to - from)) * tilesY * tilesX;
    const inputs = emptyTensor([area, most, channels]);
    const gradients = emptyTensor([area, most, filters]);
    const products = emptyTensor([2 * area * channels * filters]);
    const scratch = emptyTensor([scratchFloats(Math.max(channels, filters))]);
    heapView64(products).fill(0);
    for (const [from, to] of chunks) {
      const n = to - from;
      const tiles = n * tilesY * tilesX;
      kernels.winograd_input(
        offsetOf(x) + from * h * w * channels * 4,
        offsetOf(inputs),
        n,
        h,
        w,
        channels,
        pad,
        pad,
        tilesY,
        tilesX,
        m,
        tiles * channels,
        channels,
        offsetOf(scratch),
      );
      kernels.winograd_gradient(
        offsetOf(dz) + from * oh * ow * filters * 4,
        offsetOf(gradients),
        n,
        oh,
        ow,
        filters,
        tilesY,
        tilesX,
        m,
        tiles * filters,
        filters,
        offsetOf(scratch),
      );
      glueKernels().outer_products(
        offsetOf(inputs),
        offsetOf(gradients),
        offsetOf(products),
        area,
        tiles,
        channels,
        filters,
        tiles * channels,
        tiles * filters,
        0,
        0,
      );
    }
    this.#transformGradient(heapView64(products), sums);
    // Freed now rather than with the step's tensors: the next shard of the step reuses the memory.
    tf.dispose([inputs, gradients, products, scratch]);
  }

  /** One pass through the batch in blocks: input tiles transformed, the products, the outputs. */
  #convolve(
    pass: Pass,
    x: tf.Tensor,
    y: tf.Tensor,
    count: number,
    /** Byte offset of the transformed filter, `[a * a, in, out]`. */
    filter: number,
    bias: number,
    relu: boolean,
  ): void {
    const { h, w, in: channels, oh, ow, out, pad, tilesY, tilesX } = pass;
    const m = this.#m;
    const area = this.#a * this.#a;
    const kernels = winogradKernels();
    const block = Math.min(count, this.#chunk) * tilesY * tilesX;
    const inputs = emptyTensor([area, block, channels]);
    const products = emptyTensor([area, block, out]);
    const scratch = emptyTensor([scratchFloats(Math.max(channels, out))]);
    for (let from = 0; from < count; from += this.#chunk) {
      const n = Math.min(this.#chunk, count - from);
      const tiles = n * tilesY * tilesX;
      kernels.winograd_input(
        offsetOf(x) + from * h * w * channels * 4,
        offsetOf(inputs),
        n,
        h,
        w,
        channels,
        pad,
        pad,
        tilesY,
        tilesX,
        m,
        tiles * channels,
        channels,
        offsetOf(scratch),
      );
      glueKernels().matrix_products(
        offsetOf(inputs),
        filter,
        offsetOf(products),
        area,
        tiles,
        channels,
        out,
        tiles * channels,
        channels * out,
        tiles * out,
      );
      kernels.winograd_output(
        offsetOf(products),
        offsetOf(y) + from * oh * ow * out * 4,
        bias,
        n,
        oh,
        ow,
        out,
        tilesY,
        tilesX,
        m,
        relu ? 1 : 0,
        tiles * out,
        out,
        offsetOf(scratch),
      );
    }
    tf.dispose([inputs, products, scratch]);
  }

  /**
   * U_p = (G g G^T)_p for every channel pair of `kernel` (Keras's layout, `[3, 3, in, out]`: the
   * pairs in u's order), in float64, rounded once: into `u`, `[a * a, in, out]`.
   */
  #transformFilter(kernel: Float32Array, u: Float32Array): void {
    const g = G[this.#m];
    const a = this.#a;
    const pairs = kernel.length / 9;
    // half[i][kx] = sum over ky of G[i][ky] g[ky][kx].
    const half = this.#half.fill(0);
    for (let ky = 0; ky < 3; ky++) {
      for (let kx = 0; kx < 3; kx++) {
        const from = (ky * 3 + kx) * pairs;
        for (let i = 0; i < a; i++) {
          const coefficient = g[i][ky];
          if (coefficient === 0) continue;
          const to = (i * 3 + kx) * pairs;
          for (let q = 0; q < pairs; q++) half[to + q] += coefficient * kernel[from + q];
        }
      }
    }
    // u[i * a + j] = sum over kx of half[i][kx] G[j][kx].
    const whole = this.#whole.fill(0);
    for (let i = 0; i < a; i++) {
      for (let j = 0; j < a; j++) {
        const to = (i * a + j) * pairs;
        for (let kx = 0; kx < 3; kx++) {
          const coefficient = g[j][kx];
          if (coefficient === 0) continue;
          const from = (i * 3 + kx) * pairs;
          for (let q = 0; q < pairs; q++) whole[to + q] += half[from + q] * coefficient;
        }
      }
    }
    u.set(whole);
  }

  /** dW = G^T dU G, float64, from the summed products `[a * a, in, out]` to Keras's `[3, 3, in, out]`. */
  #transformGradient(products: Float64Array, sums: Float64Array): void {
    const { in: channels, out: filters } = this.#forward;
    const g = G[this.#m];
    const a = this.#a;
    const pairs = channels * filters;
    // half[ky][j] = sum over i of G[i][ky] dU[i][j].
    const half = this.#half.fill(0);
    for (let i = 0; i < a; i++) {
      for (let ky = 0; ky < 3; ky++) {
        const coefficient = g[i][ky];
        if (coefficient === 0) continue;
        for (let j = 0; j < a; j++) {
          const from = (i * a + j) * pairs;
          const to = (ky * a + j) * pairs;
          for (let q = 0; q < pairs; q++) half[to + q] += coefficient * products[from + q];
        }
      }
    }
    sums.fill(0, 0, 9 * pairs);
    for (let ky = 0; ky < 3; ky++) {
      for (let j = 0; j < a; j++) {
        for (let kx = 0; kx < 3; kx++) {
          const coefficient = g[j][kx];
          if (coefficient === 0) continue;
          const from = (ky * a + j) * pairs;
          const to = (ky * 3 + kx) * pairs;
          for (let q = 0; q < pairs; q++) sums[to + q] += half[from + q] * coefficient;
        }
      }
    }
  }
}
