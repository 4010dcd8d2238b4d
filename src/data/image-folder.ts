import { closeSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { DataError } from '../errors.js';
import type { Dataset, ResizeMode } from './dataset.js';
import { type CachedFile, cacheFile, cacheKey, readCache, writeCache } from './image-cache.js';
import { decodeImage } from './image-decode.js';
import { byCodePoint, type FolderEntry, planImageFolder } from './image-folder-plan.js';
import { checkImageFile, MAX_IMAGE_PIXELS } from './image-header.js';
import { type ImageShape, prepareImage } from './image-pixels.js';
import {
  checkSplitOptions,
  type DecodeProgress,
  decodeImageSet,
  type ImageReader,
  type SkippedImage,
  toDataset,
} from './image-set.js';

/**
 * A folder of your own pictures as a dataset, in Node: `dir/train/<class>/*.{png,jpg,jpeg,webp}`
 * and `dir/test/<class>/*` (see planImageFolder), read without following any link out of `dir`,
 * decoded once (image-set.ts, with @napi-rs/image) into a cache that later runs read instead.
 */

export interface LoadImageFolderOptions {
  /** The folder, holding train/ (and test/). */
  readonly dir: string;
  /** The training images' size. @default the most common size of the training pictures */
  readonly imageSize?: { readonly height: number; readonly width: number };
  /** 1 (grey) or 3 (red, green, blue). @default 3 when any picture has colour, else 1 */
  readonly channels?: 1 | 3;
  /** How a picture of another size is fitted: `stretch`ed to it, or `pad`ded, keeping its aspect ratio. @default 'stretch' */
  readonly resize?: ResizeMode;
  /** Without test/: the fraction of each class held out for testing, drawn with `seed`. */
  readonly validationSplit?: number;
  /** @default 1 */
  readonly seed?: number;
  /** Where the decoded pictures are kept. @default `<dir>/.image-cache`; `false`: nowhere */
  readonly cacheDir?: string | false;
  /** Leave out pictures that cannot be read, and list them, rather than stop. @default false */
  readonly skipBadImages?: boolean;
  /** Larger pictures are refused as decompression bombs. @default MAX_IMAGE_PIXELS (16383 x 16383) */
  readonly maxImagePixels?: number;
  readonly onProgress?: (progress: DecodeProgress) => void;
}

/** What loading found, for a person to read (the command line prints it). */
export interface ImageFolderSummary {
  readonly dir: string;
  readonly sizeFrom: 'given' | 'most common';
  readonly channelsFrom: 'given' | 'found';
  /** Pictures of another size, fitted to the images' size. */
  readonly resized: number;
  readonly skipped: readonly SkippedImage[];
  /** Files that are not pictures by their extension, not read. */
  readonly ignored: readonly string[];
  /** The cache file read or written; `error` when it could not be written. */
  readonly cache:
    | { readonly path: string; readonly hit: boolean }
    | { readonly path: string; readonly error: string }
    | undefined;
  readonly seconds: number;
}

export type ImageFolderData = Dataset & { readonly summary: ImageFolderSummary };

/** Whether `dir` is a folder of pictures (it has train/), rather than one of IDX files. */
export function isImageFolder(dir: string): boolean {
  return statOrUndefined(join(dir, 'train'))?.isDirectory() === true;
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** Loads a folder of pictures (see LoadImageFolderOptions); bad input is a DataError naming the file. */
export async function loadImageFolder(options: LoadImageFolderOptions): Promise<ImageFolderData> {
  const started = performance.now();
  const { dir } = options;
  const scan = scanFolder(dir);
  if (scan.problems.length > 0 && options.skipBadImages !== true) throw new DataError(scan.problems[0].reason);
  const plan = planImageFolder(scan.entries, dir);
  checkSplitOptions(plan, dir, options);
  const files = plan.files.map((file) => scan.files.get(file.path) as CachedFile);
  const settings = {
    imageSize: options.imageSize ?? null,
    channels: options.channels ?? null,
    resize: options.resize ?? 'stretch',
    maxImagePixels: options.maxImagePixels ?? MAX_IMAGE_PIXELS,
  };
  const key = cacheKey(scan.root, files, settings);
  const cacheDir = options.cacheDir ?? join(dir, '.image-cache');
  let set = cacheDir === false ? undefined : await readCache(cacheFile(cacheDir, key), key);
  let cache: ImageFolderSummary['cache'];
  if (set !== undefined && cacheDir !== false) {
    cache = { path: cacheFile(cacheDir, key), hit: true };
    if (set.skipped.length > 0 && options.skipBadImages !== true) throw new DataError(set.skipped[0].reason);
  } else {
    set = await decodeImageSet(nodeReader(scan, dir), plan, dir, options);
    if (cacheDir !== false) {
      const path = cacheFile(cacheDir, key);
      try {
        writeCache(cacheDir, key, set);
        cache = { path, hit: false };
      } catch (error) {
        cache = { path, error: (error as NodeJS.ErrnoException).code ?? String(error) };
      }
    }
  }
  const data = toDataset(set, plan, dir, options);
  const skipped = [...scan.problems, ...set.skipped].sort((a, b) => byCodePoint(a.path, b.path));
  return {
    ...data,
    summary: {
      dir,
      sizeFrom: set.sizeFrom,
      channelsFrom: set.channelsFrom,
      resized: set.resized,
      skipped,
      ignored: plan.ignored,
      cache,
      seconds: (performance.now() - started) / 1000,
    },
  };
}

/**
 * Reads files by their path relative to the folder `dir` (found inside it by scanFolder). Small
 * files are read synchronously: through the thread pool, each of readFile's four calls (open,
 * fstat, read, close) costs a round trip, three times a 28x28 PNG's decode.
 */
function nodeReader(scan: Scan, dir: string): ImageReader {
  const fail = (path: string, error: unknown) =>
    new DataError(`${dir.replace(/\/+$/, '')}/${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  return {
    async read(path) {
      try {
        const size = scan.files.get(path)?.size ?? Infinity;
        return size <= SYNC_READ_BYTES ? readFileSync(join(scan.root, path)) : await readFile(join(scan.root, path));
      } catch (error) {
        throw fail(path, error);
      }
    },
    async readHead(path, bytes) {
      try {
        const file = openSync(join(scan.root, path), 'r');
        try {
          const head = new Uint8Array(bytes);
          return head.subarray(0, readSync(file, head, 0, bytes, 0));
        } finally {
          closeSync(file);
        }
      } catch (error) {
        throw fail(path, error);
      }
    },
    decode: decodeImage,
  };
}

const SYNC_READ_BYTES = 1 << 20;

interface Scan {
  /** The folder's real path: what every file must lie in. */
  readonly root: string;
  readonly entries: FolderEntry[];
  /** Each file's size and modification time, by its path relative to the folder. */
  readonly files: Map<string, CachedFile>;
  /** Links out of the folder, and files that are no regular files, sorted by path. */
  readonly problems: SkippedImage[];
}

/**
 * The folder's train/ and test/ trees. A symbolic link is followed only when it leads to a file or
 * folder inside the folder; one that leads out, or nowhere, is a problem, as is a FIFO or a device
 * (none is opened to find that out). Hidden files and folders are not looked at.
 */
function scanFolder(dir: string): Scan {
  const given = statOrUndefined(dir);
  if (given === undefined || !given.isDirectory()) {
    throw new DataError(`data directory "${dir}" does not exist or is not a directory`);
  }
  const root = realpathSync(dir);
  const entries: FolderEntry[] = [];
  const files = new Map<string, CachedFile>();
  const problems: SkippedImage[] = [];
  const shown = (path: string) => `${dir.replace(/\/+$/, '')}/${path}`;
  // The folders on the way down, by real path: a link back to one of them would loop.
  const above = new Set<string>();
  const walk = (real: string, path: string): void => {
    if (above.has(real)) return;
    above.add(real);
    entries.push({ path, isDirectory: true });
    let children;
    try {
      children = readdirSync(real, { withFileTypes: true });
    } catch (error) {
      throw new DataError(`${shown(path)}: cannot read the folder (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
    children.sort((a, b) => byCodePoint(a.name, b.name));
    for (const child of children) {
      if (child.name.startsWith('.')) continue;
      const childPath = `${path}/${child.name}`;
      let target = join(real, child.name);
      if (child.isSymbolicLink()) {
        let resolved: string;
        try {
          resolved = realpathSync(target);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          problems.push({ path: childPath, reason: `${shown(childPath)}: a symbolic link that leads nowhere (${code})` });
          continue;
        }
        if (!isInside(root, resolved)) {
          problems.push({ path: childPath, reason: `${shown(childPath)}: a symbolic link out of ${dir}; refusing to follow it` });
          continue;
        }
        target = resolved;
      }
      const info = statSync(target);
      if (info.isDirectory()) walk(target, childPath);
      else if (info.isFile()) {
        entries.push({ path: childPath, isDirectory: false });
        files.set(childPath, { path: childPath, size: info.size, mtimeMs: info.mtimeMs });
      } else problems.push({ path: childPath, reason: `${shown(childPath)}: not a regular file; refusing to read it` });
    }
    above.delete(real);
  };
  for (const split of ['train', 'test']) {
    const path = join(root, split);
    let found: string;
    try {
      found = realpathSync(path);
    } catch {
      continue;
    }
    if (!isInside(root, found)) {
      problems.push({ path: split, reason: `${shown(split)}: a symbolic link out of ${dir}; refusing to follow it` });
      continue;
    }
    if (statSync(found).isDirectory()) walk(found, split);
  }
  problems.sort((a, b) => byCodePoint(a.path, b.path));
  return { root, entries, files, problems };
}

function isInside(root: string, path: string): boolean {
  const rest = relative(root, path);
  return rest !== '' && rest.split(sep)[0] !== '..' && !isAbsolute(rest);
}

/**
 * One picture file made into a training image of `shape`, as loadImageFolder makes each of a
 * folder's: checked, decoded, fitted. For classifying new pictures with a model trained on a folder.
 */
export async function readPicture(path: string, shape: ImageShape, maxPixels = MAX_IMAGE_PIXELS): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new DataError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const header = checkImageFile(bytes, path, maxPixels);
  const image = await decodeImage(bytes, path);
  if (image.width !== header.width || image.height !== header.height) {
    throw new DataError(`${path}: its header says ${header.width}x${header.height} pixels, but it decodes to ${image.width}x${image.height}`);
  }
  const out = new Uint8Array(shape.height * shape.width * shape.channels);
  prepareImage(image, shape, out);
  return out;
}
