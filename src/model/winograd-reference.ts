/**
 * The readable definitions of winograd.wat's transforms, on plain arrays with element (not byte)
 * offsets. The WebAssembly twins do exactly this, in the same order, in float32 (`f` rounds each
 * step as f32 arithmetic does), four channels at a time; the tests check them bit for bit.
 *
 * F(m x m, 3 x 3) (Lavin & Gray 2016), m = 2 or 4, with the interpolation points 0, 1, -1 (and 2,
 * -2 for m = 4) and infinity. A tile of a = m + 2 inputs a side gives m x m outputs of a 3x3
 * correlation, `Y = A^T [(G g G^T) ⊙ (B^T d B)] A`, with
 *
 *   F(2x2):  B^T = [1  0 -1  0]   G = [  1    0    0]   A^T = [1  1  1  0]
 *                  [0  1  1  0]       [1/2  1/2  1/2]         [0  1 -1 -1]
 *                  [0 -1  1  0]       [1/2 -1/2  1/2]
 *                  [0  1  0 -1]       [  0    0    1]
 *
 *   F(4x4):  B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0]   A^T = [1  1  1  1  1  0]
 *                  [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6]         [0  1 -1  2 -2  0]
 *                  [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6]         [0  1  1  4  4  0]
 *                  [0 -2 -1  2  1  0]       [1/24  1/12   1/6]         [0  1 -1  8 -8  1]
 *                  [0  2 -1 -2  1  0]       [1/24 -1/12   1/6]
 *                  [0  4  0 -5  0  1]       [   0     0     1]
 *
 * Each 2-D transform applies its 1-D one to the rows of the tile, then to the columns. Tile
 * t = (b * tilesY + ty) * tilesX + tx; the Winograd domain holds a * a matrices, position
 * p = i * a + j, element (p, t, ch) at p * sP + t * sT + ch.
 */

export type WinogradTile = 2 | 4;

const f = Math.fround;

/** B^T x, in place of the a values x[0], x[stride], ... */
function inputTransform(m: WinogradTile, x: number[]): number[] {
  if (m === 2) return [f(x[0] - x[2]), f(x[1] + x[2]), f(x[2] - x[1]), f(x[1] - x[3])];
  const d = f(x[4] - x[2]);
  const e = f(2 * f(x[3] - x[1]));
  return [
    f(d + f(4 * f(x[0] - x[2]))),
    f(f(x[3] + x[4]) - f(4 * f(x[1] + x[2]))),
    f(f(x[4] - x[3]) + f(4 * f(x[1] - x[2]))),
    f(d + e),
    f(d - e),
    f(f(x[5] - x[3]) + f(4 * f(x[1] - x[3]))),
  ];
}

/** A^T x: a values to m. */
function outputTransform(m: WinogradTile, x: number[]): number[] {
  if (m === 2) return [f(f(x[0] + x[1]) + x[2]), f(f(x[1] - x[2]) - x[3])];
  const sum12 = f(x[1] + x[2]);
  const sum34 = f(x[3] + x[4]);
  const diff12 = f(x[1] - x[2]);
  const diff34 = f(x[3] - x[4]);
  return [
    f(f(x[0] + sum12) + sum34),
    f(diff12 + f(2 * diff34)),
    f(sum12 + f(4 * sum34)),
    f(f(diff12 + f(8 * diff34)) + x[5]),
  ];
}

/** A x: m values to a. */
function gradientTransform(m: WinogradTile, x: number[]): number[] {
  if (m === 2) return [x[0], f(x[0] + x[1]), f(x[0] - x[1]), -x[1]];
  const p = f(x[0] + x[2]);
  const q = f(x[1] + x[3]);
  const r = f(x[0] + f(4 * x[2]));
  const s = f(2 * f(x[1] + f(4 * x[3])));
  return [x[0], f(p + q), f(p - q), f(r + s), f(r - s), x[3]];
}

/** Rows of a `rows x cols` tile (row-major) through `transform`, then its columns. */
function rowsThenColumns(
  tile: number[],
  rows: number,
  rowTransform: (x: number[]) => number[],
  columnTransform: (x: number[]) => number[],
): number[][] {
  const byRow = Array.from({ length: rows }, (_, i) =>
    rowTransform(tile.slice(i * (tile.length / rows), (i + 1) * (tile.length / rows))),
  );
  const width = byRow[0].length;
  const byColumn = Array.from({ length: width }, (_, j) => columnTransform(byRow.map((row) => row[j])));
  // result[i][j]: row i of the transformed tile
  return Array.from({ length: byColumn[0].length }, (_, i) => byColumn.map((column) => column[i]));
}

export interface TileGeometry {
  readonly n: number;
  readonly tilesY: number;
  readonly tilesX: number;
  readonly m: WinogradTile;
}

/** Where element (p, t, ch) of the Winograd domain is: p * sP + t * sT + ch. */
export interface DomainStrides {
  readonly sP: number;
  readonly sT: number;
}

/** V = B^T d B of every tile d of x (NHWC [n, h, w, c]; 0 outside), into v. */
export function winogradInput(
  x: Float32Array,
  v: Float32Array,
  g: TileGeometry & { h: number; w: number; c: number; padTop: number; padLeft: number },
  strides: DomainStrides,
): void {
  const { n, h, w, c, padTop, padLeft, tilesY, tilesX, m } = g;
  const a = m + 2;
  const { sP, sT } = strides;
  let t = 0;
  for (let b = 0; b < n; b++) {
    for (let ty = 0; ty < tilesY; ty++) {
      for (let tx = 0; tx < tilesX; tx++, t++) {
        for (let ch = 0; ch < c; ch++) {
          const tile: number[] = [];
          for (let i = 0; i < a; i++) {
            for (let j = 0; j < a; j++) {
              const iy = ty * m + i - padTop;
              const ix = tx * m + j - padLeft;
              tile.push(iy >= 0 && iy < h && ix >= 0 && ix < w ? x[((b * h + iy) * w + ix) * c + ch] : 0);
            }
          }
          const transformed = rowsThenColumns(
            tile,
            a,
            (r) => inputTransform(m, r),
            (col) => inputTransform(m, col),
          );
          for (let i = 0; i < a; i++) {
            for (let j = 0; j < a; j++) v[(i * a + j) * sP + t * sT + ch] = transformed[i][j];
          }
        }
      }
    }
  }
}

/**
 * Y = A^T M A of every tile, from the products M (channels contiguous: sC = 1), plus bias[ch]
 * when given, through the relu when `relu`, into out (NHWC [n, oh, ow, c]), inside it only.
 */
export function winogradOutput(
  mm: Float32Array,
  out: Float32Array,
  bias: Float32Array | undefined,
  g: TileGeometry & { oh: number; ow: number; c: number; relu: boolean },
  strides: DomainStrides,
): void {
  const { n, oh, ow, c, tilesY, tilesX, m, relu } = g;
  const a = m + 2;
  const { sP, sT } = strides;
  let t = 0;
  for (let b = 0; b < n; b++) {
    for (let ty = 0; ty < tilesY; ty++) {
      for (let tx = 0; tx < tilesX; tx++, t++) {
        for (let ch = 0; ch < c; ch++) {
          const tile = Array.from({ length: a * a }, (_, p) => mm[p * sP + t * sT + ch]);
          // Columns first (A^T M), then rows ((A^T M) A): the transposed order of rowsThenColumns.
          const columns = Array.from({ length: a }, (_, j) =>
            outputTransform(
              m,
              Array.from({ length: a }, (_, i) => tile[i * a + j]),
            ),
          );
          for (let r = 0; r < m; r++) {
            const row = outputTransform(
              m,
              columns.map((column) => column[r]),
            );
            for (let s = 0; s < m; s++) {
              const y = ty * m + r;
              const xx = tx * m + s;
              if (y >= oh || xx >= ow) continue;
              let value = bias === undefined ? row[s] : f(row[s] + bias[ch]);
              if (relu) value = Math.max(value, 0);
              out[((b * oh + y) * ow + xx) * c + ch] = value;
            }
          }
        }
      }
    }
  }
}

/** A dY A^T of every m x m tile dY of dz (NHWC [n, oh, ow, c]; 0 past its edge), into out. */
export function winogradGradient(
  dz: Float32Array,
  out: Float32Array,
  g: TileGeometry & { oh: number; ow: number; c: number },
  strides: DomainStrides,
): void {
  const { n, oh, ow, c, tilesY, tilesX, m } = g;
  const a = m + 2;
  const { sP, sT } = strides;
  let t = 0;
  for (let b = 0; b < n; b++) {
    for (let ty = 0; ty < tilesY; ty++) {
      for (let tx = 0; tx < tilesX; tx++, t++) {
        for (let ch = 0; ch < c; ch++) {
          const tile: number[] = [];
          for (let r = 0; r < m; r++) {
            for (let s = 0; s < m; s++) {
              const y = ty * m + r;
              const xx = tx * m + s;
              tile.push(y < oh && xx < ow ? dz[((b * oh + y) * ow + xx) * c + ch] : 0);
            }
          }
          const transformed = rowsThenColumns(
            tile,
            m,
            (r) => gradientTransform(m, r),
            (col) => gradientTransform(m, col),
          );
          for (let i = 0; i < a; i++) {
            for (let j = 0; j < a; j++) out[(i * a + j) * sP + t * sT + ch] = transformed[i][j];
          }
        }
      }
    }
  }
}
