import { DataError } from '../errors.js';

/**
 * What a picture file is, read from its first bytes without decoding it: the format and the size.
 * Pure: the Node loader and the browser page read headers with it, before any decoder allocates
 * the pixels, so that a file claiming billions of pixels (a decompression bomb: a few kB that
 * inflate to gigabytes) is refused as cheaply as it was made.
 */

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface ImageSize {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

/** The file names a folder of pictures is read from, by their extension (any case). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;

/**
 * The most pixels a picture may have: sharp's and libvips's default limit (16383 x 16383), over
 * 2.5 times a 100-megapixel camera's. Decoded, such a picture takes 1 GiB of RGBA.
 */
export const MAX_IMAGE_PIXELS = 268_402_689;

/** Enough of a file for readImageSize in all but JPEGs with a very large metadata block first. */
export const HEADER_BYTES = 1 << 16;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_IEND = [0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];

/** Whether a file name has one of IMAGE_EXTENSIONS. */
export function hasImageExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((extension) => lower.endsWith(extension));
}

/**
 * The format and size of a picture from the start of its file (`head`, at least HEADER_BYTES of
 * it or the whole file), or undefined when the size lies further in than `head` reaches (a JPEG
 * whose metadata comes first: read more and ask again). Throws a DataError that starts with `name`
 * when the bytes are no PNG, JPEG or WebP, or the size is 0 or more than `maxPixels`.
 */
export function readImageSize(
  head: Uint8Array,
  name: string,
  maxPixels: number = MAX_IMAGE_PIXELS,
): ImageSize | undefined {
  const size = sizeOf(head, name);
  if (size === undefined) return undefined;
  const { width, height } = size;
  if (width === 0 || height === 0) throw new DataError(`${name}: the image is empty (${width}x${height} pixels)`);
  if (width * height > maxPixels) {
    throw new DataError(
      `${name}: ${width}x${height} pixels, more than the ${maxPixels} a picture may have (a decompression bomb?); not decoding it`,
    );
  }
  return size;
}

/**
 * readImageSize on a whole file, which must also be whole: decoders may return a partial image
 * from a cut-off file without complaint, so a PNG must end with its IEND chunk, a JPEG with its end
 * marker, and a WebP must be as long as its RIFF header says.
 */
export function checkImageFile(bytes: Uint8Array, name: string, maxPixels: number = MAX_IMAGE_PIXELS): ImageSize {
  const size = readImageSize(bytes, name, maxPixels);
  if (size === undefined) throw new DataError(`${name}: the JPEG file is truncated (no frame header)`);
  const end = bytes.length;
  switch (size.format) {
    case 'png':
      if (!PNG_IEND.every((b, i) => bytes[end - 8 + i] === b)) {
        throw new DataError(`${name}: the PNG file is truncated (it does not end with its IEND chunk)`);
      }
      break;
    case 'jpeg': {
      // Some writers pad a JPEG with zeros after its end marker.
      let last = end;
      while (last > 2 && bytes[last - 1] === 0) last--;
      if (!(bytes[last - 2] === 0xff && bytes[last - 1] === 0xd9)) {
        throw new DataError(`${name}: the JPEG file is truncated (no end marker)`);
      }
      break;
    }
    case 'webp': {
      const riff = 8 + littleEndian32(bytes, 4);
      if (riff > end) throw new DataError(`${name}: the WebP file is truncated (${end} of ${riff} bytes)`);
      break;
    }
  }
  return size;
}

function sizeOf(bytes: Uint8Array, name: string): { format: ImageFormat; width: number; height: number } | undefined {
  if (bytes.length === 0) throw new DataError(`${name}: the file is empty, not an image`);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return pngSize(bytes, name);
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return jpegSize(bytes, name);
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return webpSize(bytes, name);
  throw new DataError(`${name}: not a PNG, JPEG or WebP image`);
}

function pngSize(bytes: Uint8Array, name: string) {
  // The IHDR chunk comes first: length 13, then width and height, big-endian.
  if (bytes.length < 24 || ascii(bytes, 12, 4) !== 'IHDR' || bigEndian32(bytes, 8) !== 13) {
    throw new DataError(`${name}: the PNG file has no IHDR header where it must be; it is damaged`);
  }
  return { format: 'png' as const, width: bigEndian32(bytes, 16), height: bigEndian32(bytes, 20) };
}

/** Start-of-frame markers, which hold the size: every SOFn but DHT (C4), JPG (C8) and DAC (CC). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

function jpegSize(bytes: Uint8Array, name: string) {
  let at = 2;
  for (;;) {
    // Markers may be preceded by any number of 0xff fill bytes.
    while (at < bytes.length && bytes[at] === 0xff && bytes[at + 1] === 0xff) at++;
    if (at + 4 > bytes.length) return undefined;
    if (bytes[at] !== 0xff) throw new DataError(`${name}: the JPEG file is damaged (no marker at byte ${at})`);
    const marker = bytes[at + 1];
    if (marker === 0xd9 || marker === 0xda) {
      throw new DataError(`${name}: the JPEG file is damaged (image data before its frame header)`);
    }
    // Markers without a length: TEM and the restart markers.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2;
      continue;
    }
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    if (length < 2) throw new DataError(`${name}: the JPEG file is damaged (a segment of length ${length})`);
    if (isStartOfFrame(marker)) {
      if (at + 9 > bytes.length) return undefined;
      const height = (bytes[at + 5] << 8) | bytes[at + 6];
      const width = (bytes[at + 7] << 8) | bytes[at + 8];
      if (height === 0) {
        throw new DataError(`${name}: the JPEG gives its height after the image data (DNL), which is not supported`);
      }
      return { format: 'jpeg' as const, width, height };
    }
    at += 2 + length;
  }
}

function webpSize(bytes: Uint8Array, name: string) {
  const damaged = () => new DataError(`${name}: the WebP file is damaged (its first chunk is not a VP8 image)`);
  if (bytes.length < 30) throw damaged();
  const chunk = ascii(bytes, 12, 4);
  if (chunk === 'VP8 ') {
    // A key frame: 3 bytes of frame tag, the start code 9d 01 2a, then 14-bit width and height.
    if (bytes[23] !== 0x9d || bytes[24] !== 0x01 || bytes[25] !== 0x2a) throw damaged();
    return {
      format: 'webp' as const,
      width: ((bytes[27] << 8) | bytes[26]) & 0x3fff,
      height: ((bytes[29] << 8) | bytes[28]) & 0x3fff,
    };
  }
  if (chunk === 'VP8L') {
    // The signature 0x2f, then width - 1 and height - 1 in 14 bits each, little-endian.
    if (bytes[20] !== 0x2f) throw damaged();
    const bits = littleEndian32(bytes, 21);
    return { format: 'webp' as const, width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') {
    // The canvas: width - 1 and height - 1 in 24 bits each, little-endian.
    return {
      format: 'webp' as const,
      width: (bytes[24] | (bytes[25] << 8) | (bytes[26] << 16)) + 1,
      height: (bytes[27] | (bytes[28] << 8) | (bytes[29] << 16)) + 1,
    };
  }
  throw damaged();
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + length));
}

function bigEndian32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function littleEndian32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}
