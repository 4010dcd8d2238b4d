import type { Dataset } from '../data/dataset.js';
import { type FolderEntry, planImageFolder } from '../data/image-folder-plan.js';
import { checkImageFile } from '../data/image-header.js';
import { type DecodedImage, type ImageShape, prepareImage } from '../data/image-pixels.js';
import {
  checkSplitOptions,
  type DecodeOptions,
  decodeImageSet,
  type ImageReader,
  type ImageSet,
  type SplitOptions,
  toDataset,
} from '../data/image-set.js';
import { readZipDirectory, readZipEntry, type ZipEntry } from '../data/zip.js';
import { DataError } from '../errors.js';

/**
 * A folder of your own pictures in the page: a zip of it, or the folder itself picked with the
 * file chooser, read and decoded in the page (the browser's own decoders, createImageBitmap), then
 * made into training images by the code Node uses (data/image-set.ts): the same layout, checks,
 * resizing and split, so that lossless pictures give the same training images in both.
 */

/** A zip file, or the files of a picked folder (each with its `webkitRelativePath`). */
export type PictureSource = { readonly zip: File } | { readonly files: readonly File[] };

export interface PagePictures {
  readonly data: Dataset;
  /** The zip's or the folder's name, as messages name it. */
  readonly name: string;
  readonly set: Omit<ImageSet, 'images' | 'labels' | 'inTest'>;
  readonly ignored: readonly string[];
}

/** Reads, checks and decodes the pictures; bad input is a DataError naming the file. */
export async function loadPictures(
  source: PictureSource,
  options: DecodeOptions & SplitOptions,
): Promise<PagePictures> {
  const { name, entries, reader } = 'zip' in source ? await fromZip(source.zip) : fromFiles(source.files);
  const plan = planImageFolder(entries, name);
  checkSplitOptions(plan, name, options);
  const set = await decodeImageSet(reader, plan, name, options);
  const { images: _, labels: __, inTest: ___, ...rest } = set;
  return { data: toDataset(set, plan, name, options), name, set: rest, ignored: plan.ignored };
}

async function fromZip(zip: File): Promise<{ name: string; entries: FolderEntry[]; reader: ImageReader }> {
  const entries = await readZipDirectory(zip, zip.name);
  const byPath = new Map<string, ZipEntry>(entries.map((entry) => [entry.path, entry]));
  const read = (path: string) => readZipEntry(zip, byPath.get(path) as ZipEntry, zip.name);
  return {
    name: zip.name,
    entries: entries.map(({ path, isDirectory }) => ({ path, isDirectory })),
    reader: { read, readHead: read, decode: decodeInPage },
  };
}

function fromFiles(files: readonly File[]): { name: string; entries: FolderEntry[]; reader: ImageReader } {
  // Paths as the picker gives them start with the picked folder's name, which names it in messages.
  const relative = (file: File) => file.webkitRelativePath || file.name;
  const top = files.length > 0 && relative(files[0]).includes('/') ? relative(files[0]).split('/')[0] : 'the folder';
  const byPath = new Map(
    files.map((file) => [
      relative(file).startsWith(`${top}/`) ? relative(file).slice(top.length + 1) : relative(file),
      file,
    ]),
  );
  const file = (path: string) => byPath.get(path) as File;
  return {
    name: top,
    entries: [...byPath.keys()].map((path) => ({ path, isDirectory: false })),
    reader: {
      read: async (path) => new Uint8Array(await file(path).arrayBuffer()),
      readHead: async (path, bytes) => new Uint8Array(await file(path).slice(0, bytes).arrayBuffer()),
      decode: decodeInPage,
    },
  };
}

/**
 * Decodes a checked picture file with the browser's decoder, to RGBA as the file has it: no colour
 * space conversion, no premultiplied alpha, no EXIF rotation, as Node's decoder gives it.
 */
export async function decodeInPage(bytes: Uint8Array, name: string): Promise<DecodedImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as Uint8Array<ArrayBuffer>]), {
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
      imageOrientation: 'none' as ImageOrientation,
    });
  } catch {
    throw new DataError(`${name}: cannot decode the image`);
  }
  const { width, height } = bitmap;
  const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  if (ctx === null) throw new Error('this browser has no 2-D canvas');
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { width, height, channels: 4, data: ctx.getImageData(0, 0, width, height).data };
}

/** One picture (an upload) made into an image of `shape`, as the training pictures were. */
export async function pictureForModel(file: Blob, name: string, shape: ImageShape): Promise<Uint8Array> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const header = checkImageFile(bytes, name);
  const image = await decodeInPage(bytes, name);
  if (image.width !== header.width || image.height !== header.height) {
    throw new DataError(
      `${name}: its header says ${header.width}x${header.height} pixels, but it decodes to ${image.width}x${image.height}`,
    );
  }
  const out = new Uint8Array(shape.height * shape.width * shape.channels);
  prepareImage(image, shape, out);
  return out;
}
