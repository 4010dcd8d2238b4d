import { DataError } from '../errors.js';
import { Rng } from '../rng.js';
import { hasImageExtension, IMAGE_EXTENSIONS } from './image-header.js';

/**
 * The layout of a folder of pictures, as Keras's `image_dataset_from_directory` and torchvision's
 * `ImageFolder` read it: `train/<class>/...` and `test/<class>/...`, the classes the sub-folders'
 * names, sorted. Pure: it works on relative paths, whether they come from a directory on disk (the
 * Node loader), a zip file or a folder picked in the browser.
 */

/** A file or folder of the picture folder, its path relative to it, `/`-separated. */
export interface FolderEntry {
  readonly path: string;
  readonly isDirectory: boolean;
}

export type SplitName = 'train' | 'test';

export interface PlannedFile {
  /** Relative to the picture folder (see FolderPlan.root), as the entries give it. */
  readonly path: string;
  readonly label: number;
  readonly split: SplitName;
}

export interface FolderPlan {
  /** Where `train/` is among the entries: '' or a folder's name and '/' (a zip of the folder, say). */
  readonly root: string;
  readonly classNames: readonly string[];
  /** The training pictures, then the test pictures, each sorted by class, then by path. */
  readonly files: readonly PlannedFile[];
  /** Whether there is a test/ folder; without one, a validation split is taken from train/. */
  readonly hasTest: boolean;
  /** Files that are neither pictures by their extension nor hidden, not read: their paths. */
  readonly ignored: readonly string[];
}

/** At most this many classes: labels are one byte. */
const MAX_CLASSES = 256;
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
const EXTENSIONS = IMAGE_EXTENSIONS.join(', ');

/** Hidden files and folders (`.DS_Store`, `.ipynb_checkpoints`), and what macOS adds to a zip: never data. */
function isHidden(part: string): boolean {
  return part.startsWith('.') || part === '__MACOSX' || part === 'Thumbs.db' || part === 'desktop.ini';
}

/** Code-point order, as Python's sorted() gives Keras its class order: not the locale's. */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Reads the layout from the folder's entries; `name` is the folder as the user named it, for
 * messages. Throws a DataError naming the folder at fault when there is no train/ with class
 * folders, only one class, a class folder with no pictures, or a class in test/ that train/ lacks.
 */
export function planImageFolder(entries: readonly FolderEntry[], name: string): FolderPlan {
  const root = findRoot(entries);
  if (root === undefined) {
    throw new DataError(
      `${name}: no train/ folder; a folder of pictures holds train/<class>/ (and test/<class>/) with ${EXTENSIONS} files`,
    );
  }
  const where = (path: string) => `${name.replace(/\/+$/, '')}/${root}${path}`;
  const folders: Record<SplitName, Map<string, string[]>> = { train: new Map(), test: new Map() };
  const ignored: string[] = [];
  let hasTest = false;
  for (const entry of entries) {
    if (!entry.path.startsWith(root)) continue;
    const parts = entry.path.slice(root.length).split('/').filter((part) => part !== '');
    const split = parts[0];
    if ((split !== 'train' && split !== 'test') || parts.some(isHidden)) continue;
    if (split === 'test') hasTest = true;
    if (parts.length === 1) continue;
    const className = parts[1];
    if (CONTROL_CHARACTERS.test(className)) {
      throw new DataError(`${where(`${split}/${JSON.stringify(className).slice(1, -1)}`)}: a class folder whose name holds control characters; rename it`);
    }
    if (parts.length === 2 && !entry.isDirectory) {
      ignored.push(entry.path.slice(root.length));
      continue;
    }
    const files = folders[split].get(className) ?? [];
    folders[split].set(className, files);
    if (entry.isDirectory) continue;
    if (hasImageExtension(parts[parts.length - 1])) files.push(entry.path.slice(root.length));
    else ignored.push(entry.path.slice(root.length));
  }
  const classNames = [...folders.train.keys()].sort(byCodePoint);
  if (classNames.length < 2) {
    const found = classNames.length === 0 ? 'no class folders' : `one class folder, "${classNames[0]}"`;
    throw new DataError(`${where('train')}: ${found}; a classifier needs at least 2, each a sub-folder of its pictures`);
  }
  if (classNames.length > MAX_CLASSES) {
    throw new DataError(`${where('train')}: ${classNames.length} class folders, more than the ${MAX_CLASSES} a model may have`);
  }
  for (const [className] of [...folders.test].sort(([a], [b]) => byCodePoint(a, b))) {
    if (!folders.train.has(className)) {
      throw new DataError(`${where(`test/${className}`)}: a class that ${where('train')} lacks; every test class needs training pictures`);
    }
  }
  if (hasTest && folders.test.size === 0) {
    throw new DataError(`${where('test')}: no class folders; put its pictures in test/<class>/ as in train/, or remove it`);
  }
  const files: PlannedFile[] = [];
  for (const split of ['train', 'test'] as const) {
    classNames.forEach((className, label) => {
      const paths = folders[split].get(className);
      if (paths === undefined) return;
      if (paths.length === 0) {
        throw new DataError(`${where(`${split}/${className}`)}: no pictures (${EXTENSIONS}) in this class folder`);
      }
      for (const path of [...paths].sort(byCodePoint)) files.push({ path, label, split });
    });
  }
  return { root, classNames, files, hasTest, ignored: ignored.sort(byCodePoint) };
}

/** '' when the entries have train/ at the top; 'name/' when they are all inside one folder that has it. */
function findRoot(entries: readonly FolderEntry[]): string | undefined {
  const top = (path: string) => path.split('/').filter((part) => part !== '');
  if (entries.some((entry) => top(entry.path)[0] === 'train' && (entry.isDirectory || top(entry.path).length > 1))) {
    return '';
  }
  const firsts = new Set(entries.map((entry) => top(entry.path)[0]).filter((part) => part !== undefined && !isHidden(part)));
  if (firsts.size !== 1) return undefined;
  const [folder] = firsts;
  return entries.some((entry) => top(entry.path)[1] === 'train') ? `${folder}/` : undefined;
}

/**
 * Which training pictures a validation split holds out: per class (stratified), a seeded draw of
 * round(fraction x its pictures), at least one and never all of a class of two or more. `labels` are
 * the training pictures' classes; returns, for each, whether it is held out.
 */
export function validationSplit(labels: ArrayLike<number>, classes: number, fraction: number, seed: number): boolean[] {
  const held = new Array<boolean>(labels.length).fill(false);
  const rng = new Rng(seed);
  for (let c = 0; c < classes; c++) {
    const members = Int32Array.from({ length: labels.length }, (_, i) => i).filter((i) => labels[i] === c);
    if (members.length < 2) continue;
    const take = Math.min(members.length - 1, Math.max(1, Math.round(fraction * members.length)));
    rng.shuffle(members);
    for (const i of members.subarray(0, take)) held[i] = true;
  }
  return held;
}
