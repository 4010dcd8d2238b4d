import { createCanvas, loadImage } from '@napi-rs/canvas';
import { readFile } from 'node:fs/promises';
import { DataError } from '../errors.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_IEND = Buffer.from('IEND');
/** Grey levels above the background by more than this count as the object. */
const OBJECT_THRESHOLD = 24;

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
  checkComplete(bytes, path);
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
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++)
    grey[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];

  let border = 0;
  let borderCount = 0;
  for (let x = 0; x < width; x++) {
    border += grey[x] + grey[(height - 1) * width + x];
    borderCount += 2;
  }
  for (let y = 0; y < height; y++) {
    border += grey[y * width] + grey[y * width + width - 1];
    borderCount += 2;
  }
  const background = border / borderCount;
  const invert = background > 127;
  const base = invert ? 255 - background : background;
  let minX = width,
    minY = height,
    maxX = -1,
    maxY = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = invert ? 255 - grey[y * width + x] : grey[y * width + x];
      const object = Math.max(0, v - base);
      grey[y * width + x] = object;
      if (object > OBJECT_THRESHOLD) {
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
      }
    }
  }
  if (maxX < 0) throw new DataError(`${path}: found no object on the background (the image is one flat colour)`);

  // The object alone, as an image, then scaled into the square.
  const cropWidth = maxX - minX + 1;
  const cropHeight = maxY - minY + 1;
  const crop = createCanvas(cropWidth, cropHeight);
  const cropCtx = crop.getContext('2d');
  const cropData = cropCtx.createImageData(cropWidth, cropHeight);
  let peak = 1;
  for (let y = 0; y < cropHeight; y++)
    for (let x = 0; x < cropWidth; x++) peak = Math.max(peak, grey[(minY + y) * width + minX + x]);
  for (let y = 0; y < cropHeight; y++) {
    for (let x = 0; x < cropWidth; x++) {
      const v = Math.round((255 * grey[(minY + y) * width + minX + x]) / peak);
      const at = 4 * (y * cropWidth + x);
      cropData.data[at] = cropData.data[at + 1] = cropData.data[at + 2] = v;
      cropData.data[at + 3] = 255;
    }
  }
  cropCtx.putImageData(cropData, 0, 0);
  const scale = side / Math.max(cropWidth, cropHeight);
  const w = Math.max(1, Math.round(cropWidth * scale));
  const h = Math.max(1, Math.round(cropHeight * scale));
  const out = createCanvas(side, side);
  const outCtx = out.getContext('2d');
  outCtx.fillStyle = '#000000';
  outCtx.fillRect(0, 0, side, side);
  outCtx.imageSmoothingEnabled = true;
  outCtx.imageSmoothingQuality = 'high';
  outCtx.drawImage(crop, Math.floor((side - w) / 2), Math.floor((side - h) / 2), w, h);
  const result = outCtx.getImageData(0, 0, side, side).data;
  return Uint8Array.from({ length: side * side }, (_, i) => result[4 * i]);
}

/** A 28x28 grey image as PNG bytes (light object on black, as the model sees it). */
export function greyPng(pixels: Uint8Array, side = 28): Buffer {
  const canvas = createCanvas(side, side);
  const ctx = canvas.getContext('2d');
  const data = ctx.createImageData(side, side);
  pixels.forEach((v, i) => {
    data.data[4 * i] = data.data[4 * i + 1] = data.data[4 * i + 2] = v;
    data.data[4 * i + 3] = 255;
  });
  ctx.putImageData(data, 0, 0);
  return canvas.toBuffer('image/png');
}

/**
 * Decoders can return a partial image from a cut-off file without complaint: refuse a PNG without
 * its closing IEND chunk, a JPEG without its end marker, and anything that is neither.
 */
function checkComplete(bytes: Buffer, path: string): void {
  if (bytes.length === 0) throw new DataError(`${path}: the file is empty, not an image`);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    if (bytes.lastIndexOf(PNG_IEND) < 0) throw new DataError(`${path}: the PNG file is truncated (no IEND chunk)`);
    return;
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    let end = bytes.length;
    while (end > 2 && bytes[end - 1] === 0) end--;
    if (!(bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9))
      throw new DataError(`${path}: the JPEG file is truncated (no end marker)`);
    return;
  }
  throw new DataError(`${path}: not a PNG or JPEG image`);
}
