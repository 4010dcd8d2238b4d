import { DataError } from '../errors.js';

/**
 * Turning a picture into an image as the dataset's look, on whichever canvas the platform has:
 * @napi-rs/canvas in Node (preprocess.ts), an OffscreenCanvas in a browser (browser/picture.ts).
 */

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_IEND = [0x49, 0x45, 0x4e, 0x44];
/** Grey levels above the background by more than this count as the object. */
const OBJECT_THRESHOLD = 24;

/** The little of a 2-D canvas this needs, which both platforms' canvases have. */
export interface CanvasLike {
  getContext(kind: '2d'): Context2DLike | null;
}

export interface Context2DLike {
  fillStyle: unknown;
  imageSmoothingEnabled: boolean;
  imageSmoothingQuality: 'low' | 'medium' | 'high';
  fillRect(x: number, y: number, width: number, height: number): void;
  createImageData(width: number, height: number): { readonly data: Uint8ClampedArray };
  putImageData(image: { readonly data: Uint8ClampedArray }, x: number, y: number): void;
  drawImage(image: CanvasLike, x: number, y: number, width: number, height: number): void;
  getImageData(x: number, y: number, width: number, height: number): { readonly data: Uint8ClampedArray };
}

/**
 * Decoders can return a partial image from a cut-off file without complaint: refuses a PNG without
 * its closing IEND chunk, a JPEG without its end marker, and anything that is neither, with a
 * DataError that starts with `name`. Returns the bytes' kind.
 */
export function checkImageBytes(bytes: Uint8Array, name: string): 'png' | 'jpeg' {
  if (bytes.length === 0) throw new DataError(`${name}: the file is empty, not an image`);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    if (lastIndexOf(bytes, PNG_IEND) < 0) throw new DataError(`${name}: the PNG file is truncated (no IEND chunk)`);
    return 'png';
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    let end = bytes.length;
    while (end > 2 && bytes[end - 1] === 0) end--;
    if (!(bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9)) {
      throw new DataError(`${name}: the JPEG file is truncated (no end marker)`);
    }
    return 'jpeg';
  }
  throw new DataError(`${name}: not a PNG or JPEG image`);
}

function lastIndexOf(bytes: Uint8Array, pattern: readonly number[]): number {
  for (let i = bytes.length - pattern.length; i >= 0; i--) {
    if (pattern.every((b, j) => bytes[i + j] === b)) return i;
  }
  return -1;
}

/**
 * A picture, given as RGBA pixels drawn on white (so transparent parts count as white paper), as
 * an image as the dataset's look: `side x side` grey levels, the object light on a black
 * background, cropped to the object, its longest edge scaled to `side`, centred (Fashion-MNIST's own
 * recipe). A light background (a photo on white) is inverted; the background level is read from the
 * picture's border. `createCanvas` makes the platform's canvases, which do the scaling.
 */
export function toDatasetImage(
  rgba: Uint8ClampedArray,
  width: number,
  height: number,
  name: string,
  createCanvas: (width: number, height: number) => CanvasLike,
  side = 28,
): Uint8Array {
  if (width === 0 || height === 0) throw new DataError(`${name}: the image is empty (${width}x${height})`);
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
  if (maxX < 0) throw new DataError(`${name}: found no object on the background (the image is one flat colour)`);

  // The object alone, as an image, then scaled into the square.
  const cropWidth = maxX - minX + 1;
  const cropHeight = maxY - minY + 1;
  const crop = createCanvas(cropWidth, cropHeight);
  const cropCtx = context(crop);
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
  const outCtx = context(out);
  outCtx.fillStyle = '#000000';
  outCtx.fillRect(0, 0, side, side);
  outCtx.imageSmoothingEnabled = true;
  outCtx.imageSmoothingQuality = 'high';
  outCtx.drawImage(crop, Math.floor((side - w) / 2), Math.floor((side - h) / 2), w, h);
  const result = outCtx.getImageData(0, 0, side, side).data;
  return Uint8Array.from({ length: side * side }, (_, i) => result[4 * i]);
}

function context(canvas: CanvasLike): Context2DLike {
  const ctx = canvas.getContext('2d');
  if (ctx === null) throw new Error('this canvas has no 2-D context');
  return ctx;
}
