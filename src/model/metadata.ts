import { channelsOf, type Dataset, type ImageFolderOrigin } from '../data/dataset.js';
import { DataError, quoteUntrusted } from '../errors.js';

/**
 * What a saved model says about the images it was trained on, in model.json's
 * `userDefinedMetadata` (tfjs writes and reads that field as it is): the class names, in the order
 * of the model's outputs, the images' size and channels, and, for a model trained on a folder of
 * pictures, how they were fitted to that size, so that `npm run predict` prepares a new picture as
 * the training images were. A model written before this (or by another program) has none of it.
 */
export interface ModelMetadata {
  readonly classNames: readonly string[];
  readonly image: { readonly height: number; readonly width: number; readonly channels: number };
  /** For a model trained on a folder of pictures (see loadImageFolder). */
  readonly imageFolder?: ImageFolderOrigin;
}

/** What a model trained on `data` records about it. */
export function modelMetadata(data: Dataset): ModelMetadata {
  const image = { height: data.height, width: data.width, channels: channelsOf(data) };
  const metadata = { classNames: [...data.classNames], image };
  return data.imageFolder === undefined ? metadata : { ...metadata, imageFolder: data.imageFolder };
}

/** The most classes a model may name: labels are one byte. */
export const MAX_CLASSES = 256;
const MAX_NAME_LENGTH = 255;

/**
 * The metadata in a model.json (`file` names it in messages), checked: undefined when it has none
 * of ours, a DataError when it has ours but damaged.
 */
export function checkModelMetadata(raw: unknown, file: string, damaged: string): ModelMetadata | undefined {
  if (typeof raw !== 'object' || raw === null || !('classNames' in raw)) return undefined;
  const fail = (what: string) => new DataError(`${file}: userDefinedMetadata.${what}; ${damaged}`);
  const { classNames, image, imageFolder } = raw as Record<string, unknown>;
  if (
    !Array.isArray(classNames) ||
    classNames.length < 2 ||
    classNames.length > MAX_CLASSES ||
    !classNames.every((name) => typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME_LENGTH)
  ) {
    throw fail(`classNames is not a list of 2 to ${MAX_CLASSES} names`);
  }
  const size = image as Record<string, unknown> | null;
  const whole = (value: unknown, max: number) =>
    Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= max;
  if (typeof size !== 'object' || size === null || !whole(size.height, 1 << 16) || !whole(size.width, 1 << 16)) {
    throw fail('image is not {height, width, channels}');
  }
  if (size.channels !== 1 && size.channels !== 3)
    throw fail(`image.channels is ${quoteUntrusted(String(size.channels))}, expected 1 or 3`);
  const metadata: ModelMetadata = {
    classNames: [...(classNames as string[])],
    image: { height: size.height as number, width: size.width as number, channels: size.channels },
  };
  if (imageFolder === undefined) return metadata;
  const folder = imageFolder as Record<string, unknown> | null;
  if (typeof folder !== 'object' || folder === null || (folder.resize !== 'stretch' && folder.resize !== 'pad')) {
    throw fail('imageFolder.resize is not stretch or pad');
  }
  const split = folder.validationSplit as Record<string, unknown> | undefined;
  if (split === undefined) return { ...metadata, imageFolder: { resize: folder.resize } };
  const fraction = split?.fraction;
  const seed = split?.seed;
  if (
    typeof fraction !== 'number' ||
    !(fraction > 0 && fraction < 1) ||
    !(Number.isSafeInteger(seed) && (seed as number) >= 0)
  ) {
    throw fail('imageFolder.validationSplit is not {fraction, seed}');
  }
  return { ...metadata, imageFolder: { resize: folder.resize, validationSplit: { fraction, seed: seed as number } } };
}
