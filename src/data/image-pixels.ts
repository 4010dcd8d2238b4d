import type { ResizeMode } from './dataset.js';

/**
 * A decoded picture made into a training image: its channels, its size. Pure, and the same code in
 * Node and in the browser page, so that a lossless picture (PNG) gives the same pixels on both.
 */

/** Decoded pixels, 8 bits per value: grey (1 channel), grey and alpha (2), RGB (3) or RGBA (4), NHWC. */
export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  readonly data: Uint8Array | Uint8ClampedArray;
}

/** The training images' size and channels, and how a picture of another size is fitted to it. */
export interface ImageShape {
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  readonly resize: ResizeMode;
}

/**
 * A channel's value with its alpha applied: the picture over black, as Keras's zero padding is. A
 * transparent part of a picture is nothing, whatever colour its invisible pixels have.
 */
function overBlack(value: number, alpha: number): number {
  return Math.floor((value * alpha + 127) / 255);
}

/**
 * Grey level of an RGB pixel as ITU-R 601-2 luma, in PIL's integer arithmetic (Keras's
 * `color_mode="grayscale"` converts with PIL): a grey pixel (r = g = b) keeps its level exactly.
 */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Whether any pixel of the picture (over black) is not grey: red, green and blue not all equal. */
export function hasColour(image: DecodedImage): boolean {
  const { data, channels } = image;
  if (channels < 3) return false;
  for (let at = 0; at < data.length; at += channels) {
    const alpha = channels === 4 ? data[at + 3] : 255;
    const r = overBlack(data[at], alpha);
    if (r !== overBlack(data[at + 1], alpha) || r !== overBlack(data[at + 2], alpha)) return true;
  }
  return false;
}

/** The picture's pixels as `channels` values each (grey, or RGB), over black, at its own size. */
function toChannels(image: DecodedImage, channels: 1 | 3): Uint8Array {
  const { data } = image;
  const pixels = image.width * image.height;
  const out = new Uint8Array(pixels * channels);
  const from = image.channels;
  for (let p = 0; p < pixels; p++) {
    const at = p * from;
    const alpha = from === 2 ? data[at + 1] : from === 4 ? data[at + 3] : 255;
    if (from <= 2) {
      const grey = overBlack(data[at], alpha);
      for (let c = 0; c < channels; c++) out[p * channels + c] = grey;
      continue;
    }
    const r = overBlack(data[at], alpha);
    const g = overBlack(data[at + 1], alpha);
    const b = overBlack(data[at + 2], alpha);
    if (channels === 1) out[p] = luma(r, g, b);
    else {
      out[3 * p] = r;
      out[3 * p + 1] = g;
      out[3 * p + 2] = b;
    }
  }
  return out;
}

/** Where a picture goes in the training image: its size there, and its offset (pad mode centres it). */
export function placement(
  width: number,
  height: number,
  shape: Pick<ImageShape, 'width' | 'height' | 'resize'>,
): { width: number; height: number; left: number; top: number } {
  if (shape.resize === 'stretch' || (width === shape.width && height === shape.height)) {
    return { width: shape.width, height: shape.height, left: 0, top: 0 };
  }
  const scale = Math.min(shape.width / width, shape.height / height);
  const w = Math.min(shape.width, Math.max(1, Math.round(width * scale)));
  const h = Math.min(shape.height, Math.max(1, Math.round(height * scale)));
  return { width: w, height: h, left: Math.floor((shape.width - w) / 2), top: Math.floor((shape.height - h) / 2) };
}

/**
 * The picture as a training image of `shape`, written into `out` (height x width x channels,
 * NHWC): over black, in grey or RGB, and when its size differs, resized (see resize) to the whole
 * image (`stretch`) or to fit inside it with its aspect ratio kept, centred on black (`pad`). A
 * picture of the right size is copied as it is, value for value.
 */
export function prepareImage(image: DecodedImage, shape: ImageShape, out: Uint8Array): void {
  const values = toChannels(image, shape.channels);
  const place = placement(image.width, image.height, shape);
  const { channels } = shape;
  const resized =
    place.width === image.width && place.height === image.height
      ? values
      : resize(values, image.width, image.height, channels, place.width, place.height);
  if (place.width === shape.width && place.height === shape.height) {
    out.set(resized);
    return;
  }
  out.fill(0);
  const row = place.width * channels;
  for (let y = 0; y < place.height; y++) {
    out.set(
      resized.subarray(y * row, (y + 1) * row),
      ((place.top + y) * shape.width + place.left) * channels,
    );
  }
}

/**
 * For each output position along one axis, the input positions it reads and their weights: a
 * triangle (linear interpolation) whose width grows with the shrink factor, so that shrinking
 * averages every input pixel (antialiased bilinear, as PIL's BILINEAR and tf.image.resize with
 * antialias do) rather than sampling a few and aliasing.
 */
function axisWeights(inSize: number, outSize: number): { starts: Int32Array; taps: number; weights: Float64Array } {
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  const taps = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const start = Math.max(0, Math.floor(centre - support + 0.5));
    const end = Math.min(inSize, Math.floor(centre + support + 0.5));
    let sum = 0;
    for (let i = start; i < end && i - start < taps; i++) {
      const w = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / support));
      weights[o * taps + i - start] = w;
      sum += w;
    }
    for (let k = 0; k < taps; k++) weights[o * taps + k] /= sum;
    starts[o] = start;
  }
  return { starts, taps, weights };
}

/**
 * Resizes `width x height` pixels of `channels` values to `outWidth x outHeight`: separable
 * antialiased bilinear filtering (see axisWeights), across then down, in float64 until the one
 * rounding at the end. Two passes of about 2 multiply-adds per input value each way.
 */
export function resize(
  values: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const across = axisWeights(width, outWidth);
  const down = axisWeights(height, outHeight);
  const middle = new Float64Array(outWidth * height * channels);
  for (let y = 0; y < height; y++) {
    const rowIn = y * width;
    const rowOut = y * outWidth;
    for (let o = 0; o < outWidth; o++) {
      const start = across.starts[o];
      const at = o * across.taps;
      const taps = Math.min(across.taps, width - start);
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let k = 0; k < taps; k++) sum += across.weights[at + k] * values[(rowIn + start + k) * channels + c];
        middle[(rowOut + o) * channels + c] = sum;
      }
    }
  }
  const out = new Uint8Array(outWidth * outHeight * channels);
  const stride = outWidth * channels;
  for (let o = 0; o < outHeight; o++) {
    const start = down.starts[o];
    const at = o * down.taps;
    const taps = Math.min(down.taps, height - start);
    for (let x = 0; x < stride; x++) {
      let sum = 0;
      for (let k = 0; k < taps; k++) sum += down.weights[at + k] * middle[(start + k) * stride + x];
      out[o * stride + x] = Math.min(255, Math.max(0, Math.round(sum)));
    }
  }
  return out;
}
