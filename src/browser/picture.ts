import { type CanvasLike, checkImageBytes, toDatasetImage } from '../report/dataset-image.js';
import { DataError } from '../errors.js';

const canvas = (width: number, height: number) => new OffscreenCanvas(width, height) as unknown as CanvasLike;

/**
 * A picture file (PNG or JPEG, any size, colour or grey), or a drawing, as an image as the dataset's
 * look: the same recipe as `npm run predict` (report/dataset-image.ts), on the browser's canvas.
 * A file that is not a whole PNG or JPEG is a DataError with a one-line message.
 */
export async function pictureToDatasetImage(file: Blob, name: string): Promise<Uint8Array> {
  checkImageBytes(new Uint8Array(await file.arrayBuffer()), name);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new DataError(`${name}: cannot decode the image`);
  }
  const { width, height } = bitmap;
  if (width === 0 || height === 0) throw new DataError(`${name}: the image is empty (${width}x${height})`);
  return toDatasetImage(onWhite(bitmap, width, height), width, height, name, canvas);
}

/** A drawing's pixels (dark on white, as a photo of a garment on paper) as the dataset's image. */
export function drawingToDatasetImage(drawing: HTMLCanvasElement): Uint8Array {
  const { width, height } = drawing;
  return toDatasetImage(onWhite(drawing, width, height), width, height, 'the drawing', canvas);
}

/** RGBA pixels of an image drawn on white paper: transparent parts count as white. */
function onWhite(image: CanvasImageSource, width: number, height: number): Uint8ClampedArray {
  const ctx = new OffscreenCanvas(width, height).getContext('2d') as OffscreenCanvasRenderingContext2D;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(image, 0, 0);
  return ctx.getImageData(0, 0, width, height).data;
}
