import { Transformer } from '@napi-rs/image';
import { DataError } from '../errors.js';
import type { DecodedImage } from './image-pixels.js';

/**
 * Node's picture decoder: @napi-rs/image (the Rust `image` crate, prebuilt for each platform in an
 * npm package of its own), chosen after measuring it against sharp and @napi-rs/canvas (README,
 * `npm run bench:decode`): on small pictures it decodes over 10 times as fast as sharp, whose
 * pipeline costs about a millisecond a call, at 800x600 about as fast, and on 12-megapixel photos
 * at a half to a third of sharp's speed. Its output is the file's own pixel layout, 8 or 16 bits
 * or float, made 8-bit here.
 */

/** @napi-rs/image's JsColorType, in its order: L8, La8, Rgb8, Rgba8, L16, La16, Rgb16, Rgba16, Rgb32F, Rgba32F. */
const LAYOUTS: readonly { channels: 1 | 2 | 3 | 4; bytes: 1 | 2 | 4 }[] = [
  { channels: 1, bytes: 1 },
  { channels: 2, bytes: 1 },
  { channels: 3, bytes: 1 },
  { channels: 4, bytes: 1 },
  { channels: 1, bytes: 2 },
  { channels: 2, bytes: 2 },
  { channels: 3, bytes: 2 },
  { channels: 4, bytes: 2 },
  { channels: 3, bytes: 4 },
  { channels: 4, bytes: 4 },
];

/**
 * Pictures up to this many pixels (64 x 64) are decoded on the calling thread: through libuv's
 * thread pool a call costs about 0.05-0.1 ms more, as much as a 28x28 PNG's whole decode. Larger
 * ones go to the pool, where several decode at once: 256x256 pictures decoded on this thread took
 * twice as long, four at a time, as on the pool (`npm run bench:decode`).
 */
const SYNC_PIXELS = 1 << 12;

/** Decodes a PNG, JPEG or WebP file's bytes; a DataError starting with `name` when it cannot. */
export async function decodeImage(bytes: Uint8Array, name: string): Promise<DecodedImage> {
  let width: number;
  let height: number;
  let layout: (typeof LAYOUTS)[number] | undefined;
  let raw: Buffer;
  try {
    const transformer = new Transformer(bytes);
    const metadata = transformer.metadataSync();
    ({ width, height } = metadata);
    layout = LAYOUTS[metadata.colorType];
    raw = width * height <= SYNC_PIXELS ? transformer.rawPixelsSync() : await transformer.rawPixels();
  } catch (error) {
    const why = String((error as Error).message ?? error).split('\n')[0];
    throw new DataError(`${name}: cannot decode the image (${why})`);
  }
  if (layout === undefined || raw.length !== width * height * layout.channels * layout.bytes) {
    throw new DataError(`${name}: cannot decode the image (an unexpected pixel layout)`);
  }
  const { channels } = layout;
  if (layout.bytes === 1) return { width, height, channels, data: new Uint8Array(raw.buffer, raw.byteOffset, raw.length) };
  const values = width * height * channels;
  const data = new Uint8Array(values);
  // Native byte order, which is little-endian on every platform the package is built for.
  const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
  if (layout.bytes === 2) for (let i = 0; i < values; i++) data[i] = Math.round(view.getUint16(2 * i, true) / 257);
  else
    for (let i = 0; i < values; i++)
      data[i] = Math.round(255 * Math.min(1, Math.max(0, view.getFloat32(4 * i, true) || 0)));
  return { width, height, channels, data };
}
