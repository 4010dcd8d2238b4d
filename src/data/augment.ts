import { OptionError } from '../errors.js';
import { mix } from '../rng.js';

/**
 * Random changes to the training images, drawn afresh for every image in every epoch; the test
 * images are never changed.
 */
export interface Augment {
  /** Flip each image left to right, with probability 1/2. @default false */
  readonly flip?: boolean;
  /**
   * Move each image by up to this many pixels along each axis (each offset uniform in
   * [-shift, shift]), filling what the move uncovers with zeros. @default 0
   */
  readonly shift?: number;
}

/** An Augment with every field set, as a run's config records it. */
export interface AugmentConfig {
  readonly flip: boolean;
  readonly shift: number;
}

/** What happens to one image: flipped first, then moved `dx` pixels right and `dy` down. */
export interface Transform {
  flip: boolean;
  dx: number;
  dy: number;
}

/** `--augment`'s grammar, for the command line's help. */
export const AUGMENT_USAGE = 'flip, shift:N, or both, e.g. flip,shift:2';

/**
 * Checks an Augment, as the library takes it: undefined when it changes nothing (no flip, no
 * shift), so that a run without augmentation records none.
 */
export function checkAugment(value: unknown, label = 'augment'): AugmentConfig | undefined {
  if (value === undefined) return undefined;
  const fail = (why: string) => new OptionError(`${label}${why}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fail(` must be an object such as { flip: true, shift: 2 }, got ${JSON.stringify(value)}`);
  }
  const unknown = Object.keys(value).filter((key) => key !== 'flip' && key !== 'shift');
  if (unknown.length > 0) throw fail(` has no setting ${unknown.join(', ')}; it takes flip and shift`);
  const { flip = false, shift = 0 } = value as Augment;
  if (typeof flip !== 'boolean') throw fail(`.flip must be true or false, got ${JSON.stringify(flip)}`);
  if (!(Number.isInteger(shift) && shift >= 0 && shift <= MAX_SHIFT)) {
    throw fail(`.shift must be an integer from 0 to ${MAX_SHIFT} pixels, got ${JSON.stringify(shift)}`);
  }
  return flip || shift > 0 ? { flip, shift } : undefined;
}

/** No image is that large: a bound that keeps the offsets' arithmetic in small integers. */
const MAX_SHIFT = 4096;

/** Parses `--augment`'s list, e.g. `flip,shift:2`. */
export function parseAugment(text: string, label = '--augment'): AugmentConfig {
  let flip = false;
  let shift = 0;
  const seen = new Set<string>();
  for (const item of text.split(',')) {
    const [name, ...parts] = item.trim().split(':');
    if (seen.has(name)) throw new OptionError(`${label}: "${name}" is given twice in "${text}"`);
    seen.add(name);
    if (name === 'flip' && parts.length === 0) {
      flip = true;
    } else if (name === 'shift' && parts.length === 1) {
      shift = Number(parts[0]);
      if (!(/^\d+$/.test(parts[0]) && shift >= 1 && shift <= MAX_SHIFT)) {
        throw new OptionError(`${label}: shift:N needs N, a whole number of pixels from 1, got "${item.trim()}"`);
      }
    } else {
      throw new OptionError(`${label}: unknown augmentation "${item.trim()}"; expected ${AUGMENT_USAGE}`);
    }
  }
  return { flip, shift };
}

/** The list `parseAugment` reads back, e.g. `flip,shift:2`; `none` for no augmentation. */
export function formatAugment(augment: AugmentConfig | undefined): string {
  if (augment === undefined) return 'none';
  return [augment.flip ? 'flip' : '', augment.shift > 0 ? `shift:${augment.shift}` : ''].filter(Boolean).join(',');
}

/**
 * Throws an OptionError unless the shift leaves part of every image in place: less than half its
 * smaller side (at most 13 pixels on 28x28 images).
 */
export function checkAugmentFits(augment: AugmentConfig | undefined, height: number, width: number, label = 'augment'): void {
  if (augment === undefined) return;
  const most = Math.ceil(Math.min(height, width) / 2) - 1;
  if (augment.shift > most) {
    throw new OptionError(
      `${label}: shift:${augment.shift} is too large for ${height}x${width} images; at most shift:${most} (less than half the smaller side)`,
    );
  }
}

/** Mixed into the hash so that it draws other numbers than dropout's, which starts from the same seed. */
const AUGMENT_SALT = 0x5bd1e995;

/**
 * The transform of training image `image` in epoch `epoch` (0-based) of the run seeded `seed`,
 * written into `out`: a hash of the three, not a draw from a generator, so that any worker, and a
 * resumed run, makes the same one. The flip and each offset come from hashes of their own, so that
 * turning one on does not change the others'. train_ddp.py's `augment_transforms` is the same hash.
 */
export function transformOf(
  augment: AugmentConfig,
  seed: number,
  epoch: number,
  image: number,
  out: Transform = { flip: false, dx: 0, dy: 0 },
): Transform {
  const hash = mix(mix(mix(seed ^ AUGMENT_SALT) ^ epoch) ^ image);
  const span = 2 * augment.shift + 1;
  out.flip = augment.flip && (mix(hash ^ 1) & 1) === 1;
  out.dx = augment.shift > 0 ? (mix(hash ^ 2) % span) - augment.shift : 0;
  out.dy = augment.shift > 0 ? (mix(hash ^ 3) % span) - augment.shift : 0;
  return out;
}

/**
 * Copies the image of `height x width x channels` values (NHWC) at `from` in `source` to `to` in
 * `target`, transformed: pixel (y, x) of the copy is pixel (y - dy, W - 1 - (x - dx)) of the source
 * when flipped, (y - dy, x - dx) when not, and 0 where that is outside the image. It writes each
 * value once and allocates nothing: the gather calls it per image while it fills a step's input.
 */
export function copyTransformed<T extends Uint8Array | Float32Array>(
  source: T,
  from: number,
  target: T,
  to: number,
  height: number,
  width: number,
  channels: number,
  transform: Transform,
): void {
  const { flip, dx, dy } = transform;
  const rowLength = width * channels;
  // The copy's columns [x0, x1) have a source pixel; the others are zeros.
  const x0 = Math.max(0, dx);
  const x1 = Math.min(width, width + dx);
  for (let y = 0; y < height; y++) {
    const row = to + y * rowLength;
    const sourceY = y - dy;
    if (sourceY < 0 || sourceY >= height) {
      target.fill(0, row, row + rowLength);
      continue;
    }
    target.fill(0, row, row + x0 * channels);
    target.fill(0, row + x1 * channels, row + rowLength);
    const sourceRow = from + sourceY * rowLength;
    if (!flip) {
      const offset = sourceRow - dx * channels - row;
      for (let i = row + x0 * channels; i < row + x1 * channels; i++) target[i] = source[i + offset];
    } else {
      for (let x = x0; x < x1; x++) {
        const at = row + x * channels;
        const sourceAt = sourceRow + (width - 1 - (x - dx)) * channels;
        for (let c = 0; c < channels; c++) target[at + c] = source[sourceAt + c];
      }
    }
  }
}
