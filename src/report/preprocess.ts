import { createCanvas, loadImage } from '@napi-rs/canvas';
import { readFile } from 'node:fs/promises';
import { DataError } from '../errors.js';
import { type CanvasLike, checkImageBytes, toDatasetImage } from './dataset-image.js';

/**
 * Reads a PNG or JPEG of any size, colour or grey, and turns it into an image as the dataset's look:
 * `side x side` grey levels, the object light on a black background, cropped to the object, its
 * longest edge scaled to `side`, centred (Fashion-MNIST's own recipe). A light background (a photo
 * on white) is inverted; the background level is read from the image's border.
 */
export async function preprocessImage(path: string, side = 28): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new DataError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  checkImageBytes(bytes, path);
  let image: Awaited<ReturnType<typeof loadImage>>;
  try {
    image = await loadImage(bytes);
  } catch (error) {
    throw new DataError(`${path}: cannot decode the image (${(error as Error).message})`);
  }
  const { width, height } = image;
  if (width === 0 || height === 0) throw new DataError(`${path}: the image is empty (${width}x${height})`);
  // Transparent parts count as white paper.
  const full = createCanvas(width, height);
  const ctx = full.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(image, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  // @napi-rs/canvas has the DOM's canvas API; its types differ from CanvasLike only in overloads.
  return toDatasetImage(
    rgba,
    width,
    height,
    path,
    createCanvas as unknown as (w: number, h: number) => CanvasLike,
    side,
  );
}

/** An image (uint8, `height x width x channels`, grey or RGB) as PNG bytes, as the model sees it. */
export function imagePng(pixels: Uint8Array, width = 28, height = 28, channels = 1): Buffer {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const data = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) data.data[4 * i + c] = pixels[i * channels + (channels === 1 ? 0 : c)];
    data.data[4 * i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  return canvas.toBuffer('image/png');
}
