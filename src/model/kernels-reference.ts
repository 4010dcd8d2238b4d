/**
 * The readable definitions of the glue kernels that kernels.wat runs on tfjs-wasm's heap, one
 * function each, on plain arrays with element (not byte) offsets. The WebAssembly twins do exactly
 * this, in the same order, four channels at a time where the channels are contiguous; the tests
 * check them bit for bit against these.
 *
 * Layouts, for n images of h x w pixels and c channels: NHWC, element (b, y, x, ch) at
 * ((b * h + y) * w + x) * c + ch; strided, element (b, p, ch) with p = y * w + x at
 * b * sB + p * sP + ch * sC (NHWC, the columns layout [features, n], or channel planes).
 */

export interface Strides {
  readonly sB: number;
  readonly sP: number;
  readonly sC: number;
}

/**
 * Max-pooling over size x size windows with stride size, dropping a partial window at the right or
 * the bottom: x NHWC [n, h, w, c] -> out NHWC [n, h / size, w / size, c], and the same values in
 * `out2` (strided) when given.
 */
export function poolForward(
  x: Float32Array,
  out: Float32Array,
  out2: { values: Float32Array; strides: Strides } | undefined,
  shape: { n: number; h: number; w: number; c: number; size: number },
): void {
  const { n, h, w, c, size } = shape;
  const oh = Math.floor(h / size);
  const ow = Math.floor(w / size);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ch = 0; ch < c; ch++) {
          let max = x[((b * h + oy * size) * w + ox * size) * c + ch];
          for (let dy = 0; dy < size; dy++) {
            for (let dx = 0; dx < size; dx++) {
              max = Math.max(max, x[((b * h + oy * size + dy) * w + ox * size + dx) * c + ch]);
            }
          }
          out[o++] = max;
          if (out2 !== undefined) {
            const { sB, sP, sC } = out2.strides;
            out2.values[b * sB + (oy * ow + ox) * sP + ch * sC] = max;
          }
        }
      }
    }
  }
}

/**
 * The backward pass of poolForward: each output gradient (dout, strided) goes to the first
 * maximum of its window in row-major order, as TensorFlow's MaxPoolGrad does; every other input,
 * those under a dropped partial window too, gets 0. dx is NHWC, written whole.
 */
export function poolBackward(
  x: Float32Array,
  pooled: Float32Array,
  dout: { values: Float32Array; strides: Strides },
  dx: Float32Array,
  shape: { n: number; h: number; w: number; c: number; size: number },
): void {
  const { n, h, w, c, size } = shape;
  const oh = Math.floor(h / size);
  const ow = Math.floor(w / size);
  const { sB, sP, sC } = dout.strides;
  if (h % size !== 0 || w % size !== 0) dx.fill(0, 0, n * h * w * c);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ch = 0; ch < c; ch++) {
          const max = pooled[o++];
          const gradient = dout.values[b * sB + (oy * ow + ox) * sP + ch * sC];
          let found = false;
          for (let dy = 0; dy < size; dy++) {
            for (let dxx = 0; dxx < size; dxx++) {
              const at = ((b * h + oy * size + dy) * w + ox * size + dxx) * c + ch;
              const hit: boolean = !found && x[at] === max;
              dx[at] = hit ? gradient : 0;
              found ||= hit;
            }
          }
        }
      }
    }
  }
}

/**
 * From the gradient at a layer's activations (da, strided) to the gradient at its
 * pre-activations (dz, strided): da where the activation (a, strided) is > 0, else 0, with
 * `relu`; da as it is without. With `db`, each channel's values are added to db[ch] in float64,
 * in order of b then p: the bias gradient.
 */
export function activationBackward(
  a: { values: Float32Array; strides: Strides },
  da: { values: Float32Array; strides: Strides },
  dz: { values: Float32Array; strides: Strides },
  db: Float64Array | undefined,
  shape: { n: number; hw: number; c: number; relu: boolean },
): void {
  const { n, hw, c, relu } = shape;
  const from = da.strides;
  const to = dz.strides;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < hw; p++) {
      for (let ch = 0; ch < c; ch++) {
        let g = da.values[b * from.sB + p * from.sP + ch * from.sC];
        if (relu && !(a.values[b * a.strides.sB + p * a.strides.sP + ch * a.strides.sC] > 0)) g = 0;
        dz.values[b * to.sB + p * to.sP + ch * to.sC] = g;
        if (db !== undefined) db[ch] += g;
      }
    }
  }
}

export interface ConvGeometry {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly k: number;
  readonly padTop: number;
  readonly padLeft: number;
  readonly oh: number;
  readonly ow: number;
}

/**
 * im2col of a stride-1 k x k convolution: from x NHWC, one row per output position (b, oy, ox),
 * of the k * k * c inputs under the kernel in Keras's order (ky, kx, ch); 0 in the padding.
 */
export function im2col(x: Float32Array, cols: Float32Array, g: ConvGeometry): void {
  const { n, h, w, c, k, padTop, padLeft, oh, ow } = g;
  let at = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ky = 0; ky < k; ky++) {
          const iy = oy + ky - padTop;
          for (let kx = 0; kx < k; kx++) {
            const ix = ox + kx - padLeft;
            const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            for (let ch = 0; ch < c; ch++) cols[at++] = inside ? x[((b * h + iy) * w + ix) * c + ch] : 0;
          }
        }
      }
    }
  }
}

/**
 * The transpose of im2col, from channel planes (plane ch starts at ch * planeStride and holds
 * [n][h][w]): one row per kernel tap (ky, kx, ch), of the n * oh * ow inputs under it.
 */
export function im2colTransposed(
  planes: Float32Array,
  cols: Float32Array,
  g: ConvGeometry & { planeStride: number },
): void {
  const { n, h, w, c, k, padTop, padLeft, oh, ow, planeStride } = g;
  let at = 0;
  for (let ky = 0; ky < k; ky++) {
    for (let kx = 0; kx < k; kx++) {
      for (let ch = 0; ch < c; ch++) {
        for (let b = 0; b < n; b++) {
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy + ky - padTop;
            for (let ox = 0; ox < ow; ox++) {
              const ix = ox + kx - padLeft;
              const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
              cols[at++] = inside ? planes[ch * planeStride + (b * h + iy) * w + ix] : 0;
            }
          }
        }
      }
    }
  }
}

/** Grey levels to floats in [0, 1], as the tutorial's images / 255 (the float32 nearest the quotient). */
export function bytesToFloats(bytes: Uint8Array, floats: Float32Array): void {
  for (let i = 0; i < bytes.length; i++) floats[i] = bytes[i] / 255;
}

/** src `[rows, cols]` -> dst `[cols, rows]`. */
export function transpose(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
  }
}

/** A bias per row, and the relu, in place: z `[rows, cols]`, z[r][c] = act(z[r][c] + bias[r]) (float32 sums). */
export function biasRows(z: Float32Array, bias: Float32Array, rows: number, cols: number, relu: boolean): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = Math.fround(z[r * cols + c] + bias[r]);
      z[r * cols + c] = relu ? Math.max(v, 0) : v;
    }
  }
}

/**
 * Outer products summed over rows, into float64 sums: for each of `count` matrix pairs p, and each
 * chunk of rows in turn (the first `first` rows, then `chunk` rows at a time; 0 means all rows),
 * sums[p][i][j] += the float32 sum, in order of t within the chunk, of a[p][t][i] * b[p][t][j]
 * (a's matrices aP floats apart, rows of m; b's bP apart, rows of n): A^T · B without transposing A.
 */
export function outerProducts(
  a: Float32Array,
  b: Float32Array,
  sums: Float64Array,
  shape: {
    count: number;
    rows: number;
    m: number;
    n: number;
    aP: number;
    bP: number;
    first?: number;
    chunk?: number;
  },
): void {
  const { count, rows, m, n, aP, bP } = shape;
  const first = shape.first || rows;
  const chunk = shape.chunk || rows;
  for (let from = 0, to = first; from < rows; from = to, to += chunk) {
    const end = Math.min(to, rows);
    for (let p = 0; p < count; p++) {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let sum = 0;
          for (let t = from; t < end; t++)
            sum = Math.fround(sum + Math.fround(a[p * aP + t * m + i] * b[p * bP + t * n + j]));
          sums[(p * m + i) * n + j] += sum;
        }
      }
    }
  }
}

/**
 * Plain matrix products: for each of `count` pairs p, out[p] = a[p] · b[p], a `[rows, k]` (its
 * matrices aP floats apart), b `[k, n]` (bP apart), out `[rows, n]` (oP apart); each element the
 * float32 sum, in order of i < k, of a[p][t][i] * b[p][i][j].
 */
export function matrixProducts(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  shape: { count: number; rows: number; k: number; n: number; aP: number; bP: number; oP: number },
): void {
  const { count, rows, k, n, aP, bP, oP } = shape;
  for (let p = 0; p < count; p++) {
    for (let t = 0; t < rows; t++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let i = 0; i < k; i++) sum = Math.fround(sum + Math.fround(a[p * aP + t * k + i] * b[p * bP + i * n + j]));
        out[p * oP + t * n + j] = sum;
      }
    }
  }
}

/**
 * A batch normalisation's per-channel float64 sums: for u and v NHWC over `positions` pixels of c
 * channels, sums[ch] += u and sums[c + ch] += u * v, position by position.
 */
export function channelSums(u: Float32Array, v: Float32Array, sums: Float64Array, positions: number, c: number): void {
  for (let p = 0; p < positions; p++) {
    for (let ch = 0; ch < c; ch++) {
      sums[ch] += u[p * c + ch];
      sums[c + ch] += u[p * c + ch] * v[p * c + ch];
    }
  }
}
