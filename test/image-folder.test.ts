/**
 * Reading a folder of pictures, piece by piece: the headers (sizes, truncation, the pixel limit),
 * the pixels (alpha, grey, resizing worked out by hand), the layout (classes, what is ignored, a
 * folder inside a zip), the validation split, and the loader on disk with its cache.
 */
import { Transformer } from '@napi-rs/image';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../dist/src/data/image-decode.js';
import { planImageFolder, validationSplit } from '../dist/src/data/image-folder-plan.js';
import { checkImageFile, readImageSize } from '../dist/src/data/image-header.js';
import { hasColour, luma, prepareImage, resize } from '../dist/src/data/image-pixels.js';
import { readZipDirectory, readZipEntry } from '../dist/src/data/zip.js';
import { DataError, loadImageFolder } from '../dist/src/index.js';
import { crc32, jpegBytes, pngBytes, tempDir, zipBytes } from './helpers.js';

/** RGBA pixels of a small picture with a gradient, and a colour stripe when `colour`. */
function rgbaPicture(width: number, height: number, colour: boolean): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const at = 4 * (y * width + x);
      const v = (x * 37 + y * 11) % 256;
      rgba.set(colour && y === 1 ? [v, 255 - v, 40, 255] : [v, v, v, 255], at);
    }
  return rgba;
}

const webp = (width: number, height: number) =>
  Transformer.fromRgbaPixels(rgbaPicture(width, height, true), width, height).webpLosslessSync();

describe('picture headers', () => {
  it('give the format and size of PNG, JPEG and WebP files', () => {
    expect(readImageSize(pngBytes(new Uint8Array(6 * 4), 6, 4, 1), 'a.png')).toEqual({
      format: 'png',
      width: 6,
      height: 4,
    });
    expect(readImageSize(jpegBytes(new Uint8Array(5 * 3 * 3), 5, 3), 'a.jpg')).toEqual({
      format: 'jpeg',
      width: 5,
      height: 3,
    });
    expect(readImageSize(webp(7, 2), 'a.webp')).toEqual({ format: 'webp', width: 7, height: 2 });
    expect(readImageSize(Transformer.fromRgbaPixels(rgbaPicture(9, 5, true), 9, 5).webpSync(80), 'b.webp')).toEqual({
      format: 'webp',
      width: 9,
      height: 5,
    });
  });

  it('refuse what is not a whole picture, naming the file', () => {
    const png = pngBytes(new Uint8Array(16), 4, 4, 1);
    const jpeg = jpegBytes(new Uint8Array(48), 4, 4);
    const lossless = webp(4, 4);
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), 'x: the file is empty, not an image'],
      [Buffer.from('GIF89a...'), 'x: not a PNG, JPEG or WebP image'],
      [png.subarray(0, png.length - 4), 'x: the PNG file is truncated (it does not end with its IEND chunk)'],
      [jpeg.subarray(0, jpeg.length - 2), 'x: the JPEG file is truncated (no end marker)'],
      [jpeg.subarray(0, 100), 'x: the JPEG file is truncated (no frame header)'],
      [
        lossless.subarray(0, lossless.length - 3),
        `x: the WebP file is truncated (${lossless.length - 3} of ${lossless.length} bytes)`,
      ],
    ];
    for (const [bytes, message] of cases) expect(() => checkImageFile(bytes, 'x')).toThrow(new DataError(message));
  });

  it('refuse a decompression bomb from its header, before any decoder sees it', () => {
    const png = pngBytes(new Uint8Array(1), 1, 1, 1);
    png.writeUInt32BE(20000, 16);
    png.writeUInt32BE(20000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
    expect(() => checkImageFile(png, 'bomb.png')).toThrow(
      new DataError(
        'bomb.png: 20000x20000 pixels, more than the 268402689 a picture may have (a decompression bomb?); not decoding it',
      ),
    );
    // A JPEG's frame header says 65535 x 65535: its size field, after the segments before it.
    const jpeg = Buffer.from(jpegBytes(new Uint8Array(48), 4, 4));
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    jpeg.writeUInt16BE(65535, sof + 5);
    jpeg.writeUInt16BE(65535, sof + 7);
    expect(() => checkImageFile(jpeg, 'bomb.jpg')).toThrow(/^bomb\.jpg: 65535x65535 pixels, more than the 268402689/);
    // The limit is an option: 4x4 is 16 pixels.
    expect(() => checkImageFile(pngBytes(new Uint8Array(16), 4, 4, 1), 'small.png', 15)).toThrow(
      'small.png: 4x4 pixels, more than the 15 a picture may have',
    );
  });

  it('find a JPEG frame header behind a metadata segment larger than the first read', () => {
    const jpeg = jpegBytes(new Uint8Array(48), 4, 4);
    // An APP1 segment of 65,000 bytes after the start marker.
    const app = Buffer.alloc(65_002);
    app[0] = 0xff;
    app[1] = 0xe1;
    app.writeUInt16BE(65_000, 2);
    const big = Buffer.concat([jpeg.subarray(0, 2), app, jpeg.subarray(2)]);
    expect(readImageSize(big.subarray(0, 1 << 16), 'big.jpg')).toBeUndefined();
    expect(checkImageFile(big, 'big.jpg')).toEqual({ format: 'jpeg', width: 4, height: 4 });
  });
});

describe('picture pixels', () => {
  it('resize by antialiased bilinear filtering, worked out by hand', () => {
    // Shrinking 4 to 2: a triangle twice as wide. Output 0 (centre 1.0) weighs inputs 0, 1, 2 by
    // 0.75, 0.75, 0.25 (normalised by 1.75): (0 + 52.5 + 35) / 1.75 = 50; output 1 (centre 3.0)
    // weighs inputs 1, 2, 3 by 0.25, 0.75, 0.75: (17.5 + 105 + 157.5) / 1.75 = 160.
    expect(Array.from(resize(Uint8Array.from([0, 70, 140, 210]), 4, 1, 1, 2, 1))).toEqual([50, 160]);
    // Enlarging 2 to 4: plain linear interpolation, the edges held: 0, 25, 75, 100.
    expect(Array.from(resize(Uint8Array.from([0, 100]), 2, 1, 1, 4, 1))).toEqual([0, 25, 75, 100]);
    // Down, per channel: two RGB pixels in a column become their mean.
    expect(Array.from(resize(Uint8Array.from([10, 20, 30, 30, 60, 90]), 1, 2, 3, 1, 1))).toEqual([20, 40, 60]);
  });

  it('copy a picture of the right size value for value; stretch or pad one of another size', () => {
    const grey = { width: 2, height: 2, channels: 1 as const, data: Uint8Array.from([10, 20, 30, 40]) };
    const out = new Uint8Array(4);
    prepareImage(grey, { height: 2, width: 2, channels: 1, resize: 'stretch' }, out);
    expect(Array.from(out)).toEqual([10, 20, 30, 40]);
    // 4 wide, 2 high into 4x4: stretched, every row is a row of the picture; padded, it keeps 4x2,
    // centred between black rows.
    const wide = {
      width: 4,
      height: 2,
      channels: 1 as const,
      data: Uint8Array.from([50, 50, 50, 50, 150, 150, 150, 150]),
    };
    const padded = new Uint8Array(16);
    prepareImage(wide, { height: 4, width: 4, channels: 1, resize: 'pad' }, padded);
    expect(Array.from(padded)).toEqual([0, 0, 0, 0, 50, 50, 50, 50, 150, 150, 150, 150, 0, 0, 0, 0]);
    const stretched = new Uint8Array(16);
    prepareImage(wide, { height: 4, width: 4, channels: 1, resize: 'stretch' }, stretched);
    expect(Array.from(stretched)).toEqual([50, 50, 50, 50, 75, 75, 75, 75, 125, 125, 125, 125, 150, 150, 150, 150]);
  });

  it('put a picture with alpha over black, and make grey by ITU-R 601 luma as PIL does', () => {
    const rgba = { width: 1, height: 1, channels: 4 as const, data: Uint8Array.from([200, 100, 50, 128]) };
    const rgb = new Uint8Array(3);
    prepareImage(rgba, { height: 1, width: 1, channels: 3, resize: 'stretch' }, rgb);
    // 200 x 128 / 255 = 100.4, 100 x 128 / 255 = 50.2, 50 x 128 / 255 = 25.1.
    expect(Array.from(rgb)).toEqual([100, 50, 25]);
    expect([luma(255, 0, 0), luma(0, 255, 0), luma(0, 0, 255), luma(77, 77, 77)]).toEqual([76, 150, 29, 77]);
    const grey = new Uint8Array(1);
    prepareImage(rgba, { height: 1, width: 1, channels: 1, resize: 'stretch' }, grey);
    expect(grey[0]).toBe(luma(100, 50, 25));
    // Colour is what is not grey once over black: a transparent red pixel is black.
    expect(hasColour({ width: 1, height: 1, channels: 4, data: Uint8Array.from([255, 0, 0, 0]) })).toBe(false);
    expect(hasColour({ width: 1, height: 1, channels: 3, data: Uint8Array.from([9, 9, 10]) })).toBe(true);
  });

  it('decode PNG (grey, grey and alpha, RGB, RGBA), JPEG and WebP to the pixels written', async () => {
    const rgba = rgbaPicture(5, 3, true);
    const channelsOf = (n: 1 | 2 | 3 | 4) =>
      Uint8Array.from({ length: 15 * n }, (_, i) => rgba[4 * Math.floor(i / n) + (n === 2 ? (i % 2) * 3 : i % n)]);
    for (const n of [1, 2, 3, 4] as const) {
      const decoded = await decodeImage(pngBytes(channelsOf(n), 5, 3, n), `${n}.png`);
      expect([decoded.width, decoded.height, decoded.channels]).toEqual([5, 3, n]);
      expect(Array.from(decoded.data)).toEqual(Array.from(channelsOf(n)));
    }
    const lossless = await decodeImage(webp(5, 3), 'a.webp');
    expect(Array.from(lossless.data).filter((_, i) => i % lossless.channels < 3)).toEqual(Array.from(channelsOf(3)));
    const jpeg = await decodeImage(jpegBytes(channelsOf(3), 5, 3), 'a.jpg');
    expect([jpeg.width, jpeg.height, jpeg.channels]).toEqual([5, 3, 3]);
    await expect(decodeImage(Buffer.from('not an image at all'), 'x.png')).rejects.toThrow(
      /^x\.png: cannot decode the image \(/,
    );
  });
});

describe('the layout of a folder of pictures', () => {
  const entry = (path: string, isDirectory = false) => ({ path, isDirectory });

  it('takes the classes from train/, sorted by code point, and ignores hidden files and other files', () => {
    const plan = planImageFolder(
      [
        entry('train/cat/b.png'),
        entry('train/cat/a.JPG'),
        entry('train/cat/sub/c.webp'),
        entry('train/Dog/x.jpeg'),
        entry('train/cat/notes.txt'),
        entry('train/cat/.DS_Store'),
        entry('train/.ipynb_checkpoints/y.png'),
        entry('train/loose.png'),
        entry('test/cat/t.png'),
        entry('README.md'),
      ],
      'pets',
    );
    expect(plan.classNames).toEqual(['Dog', 'cat']);
    expect(plan.files).toEqual([
      { path: 'train/Dog/x.jpeg', label: 0, split: 'train' },
      { path: 'train/cat/a.JPG', label: 1, split: 'train' },
      { path: 'train/cat/b.png', label: 1, split: 'train' },
      { path: 'train/cat/sub/c.webp', label: 1, split: 'train' },
      { path: 'test/cat/t.png', label: 1, split: 'test' },
    ]);
    expect(plan.ignored).toEqual(['train/cat/notes.txt', 'train/loose.png']);
    expect(plan.hasTest).toBe(true);
  });

  it('finds train/ inside one folder, as in a zip of the folder, and skips what macOS adds to zips', () => {
    const plan = planImageFolder(
      [entry('pets/train/a/1.png'), entry('pets/train/b/2.png'), entry('__MACOSX/pets/train/a/._1.png')],
      'pets.zip',
    );
    expect(plan.root).toBe('pets/');
    expect(plan.files.map((f) => f.path)).toEqual(['train/a/1.png', 'train/b/2.png']);
    expect(plan.hasTest).toBe(false);
  });

  it('refuses a folder without train/, with one class, with an empty class, or with a test class train/ lacks', () => {
    const cases: [ReturnType<typeof entry>[], string][] = [
      [
        [entry('pictures/a/1.png'), entry('other/b.png')],
        'p: no train/ folder; a folder of pictures holds train/<class>/ (and test/<class>/) with .png, .jpg, .jpeg, .webp files',
      ],
      [
        [entry('train/a/1.png')],
        'p/train: one class folder, "a"; a classifier needs at least 2, each a sub-folder of its pictures',
      ],
      [
        [entry('train/a/1.png'), entry('train/b', true), entry('train/b/x.txt')],
        'p/train/b: no pictures (.png, .jpg, .jpeg, .webp) in this class folder',
      ],
      [
        [entry('train/a/1.png'), entry('train/b/1.png'), entry('test/c/1.png')],
        'p/test/c: a class that p/train lacks; every test class needs training pictures',
      ],
      [
        [entry('train/a/1.png'), entry('train/b/1.png'), entry('test', true)],
        'p/test: no class folders; put its pictures in test/<class>/ as in train/, or remove it',
      ],
    ];
    for (const [entries, message] of cases) expect(() => planImageFolder(entries, 'p')).toThrow(new DataError(message));
  });

  it('holds out a seeded, stratified validation split: round(fraction x n) of each class, never all of one', () => {
    const labels = Uint8Array.from([...new Array(10).fill(0), ...new Array(7).fill(1), 2, 2, 3]);
    const held = validationSplit(labels, 4, 0.2, 5);
    const heldOf = (c: number) => held.filter((h, i) => h && labels[i] === c).length;
    // 10 x 0.2 = 2; 7 x 0.2 = 1.4 -> 1; 2 x 0.2 = 0.4 -> at least 1; a class of 1 keeps it.
    expect([0, 1, 2, 3].map(heldOf)).toEqual([2, 1, 1, 0]);
    expect(validationSplit(labels, 4, 0.2, 5)).toEqual(held);
    expect(validationSplit(labels, 4, 0.2, 6)).not.toEqual(held);
    expect(validationSplit(labels, 4, 0.99, 5).filter((h, i) => h && labels[i] === 0)).toHaveLength(9);
  });
});

describe('loadImageFolder on disk', () => {
  /** train/ and test/ with grey PNGs of two sizes and an RGBA one, two classes. */
  function pictures(options: { colour?: boolean } = {}): string {
    const dir = tempDir('fmnist-folder-');
    const write = (path: string, bytes: Uint8Array) => {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), bytes);
    };
    const grey = (w: number, h: number, seed: number) => Uint8Array.from({ length: w * h }, (_, i) => (i * seed) % 256);
    write('train/a/1.png', pngBytes(grey(6, 4, 3), 6, 4, 1));
    write('train/a/2.png', pngBytes(grey(6, 4, 5), 6, 4, 1));
    write('train/b/1.png', pngBytes(grey(6, 4, 7), 6, 4, 1));
    write('train/b/2.png', pngBytes(grey(3, 3, 9), 3, 3, 1));
    write('test/a/1.png', pngBytes(grey(6, 4, 11), 6, 4, 1));
    const rgba = rgbaPicture(6, 4, options.colour === true);
    write('test/b/1.png', pngBytes(rgba, 6, 4, 4));
    return dir;
  }

  it('reads the pictures at their most common size, grey when none has colour, in order, and exactly', async () => {
    const dir = pictures();
    const data = await loadImageFolder({ dir, cacheDir: false });
    expect([data.height, data.width, data.channels]).toEqual([4, 6, 1]);
    expect(data.classNames).toEqual(['a', 'b']);
    expect(Array.from(data.train.labels)).toEqual([0, 0, 1, 1]);
    expect(Array.from(data.test.labels)).toEqual([0, 1]);
    expect(data.summary).toMatchObject({
      sizeFrom: 'most common',
      channelsFrom: 'found',
      resized: 1,
      skipped: [],
      cache: undefined,
    });
    // A picture of the size is its own pixels; the 3x3 one is stretched.
    const first = Uint8Array.from({ length: 24 }, (_, i) => (i * 3) % 256);
    expect(Array.from(data.train.images.subarray(0, 24))).toEqual(Array.from(first));
    const small = Uint8Array.from({ length: 9 }, (_, i) => (i * 9) % 256);
    expect(Array.from(data.train.images.subarray(72, 96))).toEqual(Array.from(resize(small, 3, 3, 1, 6, 4)));
  });

  it('takes 3 channels when one picture has colour, or when asked; another size and pad when asked', async () => {
    const colour = await loadImageFolder({ dir: pictures({ colour: true }), cacheDir: false });
    expect(colour.channels).toBe(3);
    expect(colour.train.images.length).toBe(4 * 24 * 3);
    const asked = await loadImageFolder({
      dir: pictures(),
      cacheDir: false,
      channels: 3,
      imageSize: { height: 8, width: 8 },
      resize: 'pad',
    });
    expect([asked.height, asked.width, asked.channels]).toEqual([8, 8, 3]);
    expect(asked.summary).toMatchObject({ sizeFrom: 'given', channelsFrom: 'given', resized: 6 });
    expect(asked.imageFolder).toEqual({ resize: 'pad' });
    // 6x4 padded into 8x8: 8x5 (5.33 rounded) from row 1; rows 0, 6 and 7 black.
    const row = (y: number) => asked.train.images.subarray(y * 24, (y + 1) * 24);
    expect([0, 6, 7].map((y) => row(y).every((v) => v === 0))).toEqual([true, true, true]);
    expect(row(1).some((v) => v > 0)).toBe(true);
  });

  it('decodes once: the next load reads the cache; a changed picture, or other settings, decode again', async () => {
    const dir = pictures();
    const cacheDir = join(dir, '.image-cache');
    const first = await loadImageFolder({ dir });
    expect(first.summary.cache).toMatchObject({ hit: false });
    const second = await loadImageFolder({ dir });
    expect(second.summary.cache).toEqual({ path: (first.summary.cache as { path: string }).path, hit: true });
    expect(Array.from(second.train.images)).toEqual(Array.from(first.train.images));
    expect(Array.from(second.test.labels)).toEqual(Array.from(first.test.labels));
    // Other settings: a file of their own, beside the first.
    await loadImageFolder({ dir, channels: 3 });
    expect(readdirSync(cacheDir)).toHaveLength(2);
    // A picture touched (same bytes, a new modification time): decoded again, the old files removed.
    const touched = join(dir, 'train', 'a', '1.png');
    const { mtime } = statSync(touched);
    utimesSync(touched, mtime, new Date(mtime.getTime() + 5000));
    const third = await loadImageFolder({ dir });
    expect(third.summary.cache).toMatchObject({ hit: false });
    expect(readdirSync(cacheDir)).toEqual([(third.summary.cache as { path: string }).path.split('/').at(-1)]);
    // A picture replaced by another of the same size: its new pixels.
    writeFileSync(touched, pngBytes(new Uint8Array(24).fill(200), 6, 4, 1));
    const fourth = await loadImageFolder({ dir });
    expect(fourth.summary.cache).toMatchObject({ hit: false });
    expect(fourth.train.images.subarray(0, 24).every((v) => v === 200)).toBe(true);
  });

  it('decodes again over a damaged cache file; goes on without one where it cannot write, and says so', async () => {
    const dir = pictures();
    const { summary } = await loadImageFolder({ dir });
    const path = (summary.cache as { path: string }).path;
    writeFileSync(path, readFileSync(path).subarray(0, 100));
    const again = await loadImageFolder({ dir });
    expect(again.summary.cache).toEqual({ path, hit: false });
    expect(readFileSync(path).length).toBeGreaterThan(100);
    const blocked = join(dir, 'a-file');
    writeFileSync(blocked, '');
    const elsewhere = await loadImageFolder({ dir, cacheDir: join(blocked, 'cache') });
    expect(elsewhere.summary.cache).toMatchObject({ error: 'ENOTDIR' });
    expect(elsewhere.train.count).toBe(4);
  });

  it('follows a symbolic link inside the folder; refuses one out of it, or to nowhere', async () => {
    const dir = pictures();
    symlinkSync(join(dir, 'train', 'a', '1.png'), join(dir, 'train', 'b', 'same.png'));
    symlinkSync(join(dir, 'train', 'a'), join(dir, 'train', 'c'));
    const data = await loadImageFolder({ dir, cacheDir: false });
    expect(data.classNames).toEqual(['a', 'b', 'c']);
    expect(data.train.count).toBe(7);
    symlinkSync(join(dir, 'nowhere.png'), join(dir, 'train', 'b', 'broken.png'));
    await expect(loadImageFolder({ dir, cacheDir: false })).rejects.toThrow(
      new DataError(`${dir}/train/b/broken.png: a symbolic link that leads nowhere (ENOENT)`),
    );
    rmSync(join(dir, 'train', 'b', 'broken.png'));
    symlinkSync(tempDir(), join(dir, 'train', 'd'));
    await expect(loadImageFolder({ dir, cacheDir: false })).rejects.toThrow(
      new DataError(`${dir}/train/d: a symbolic link out of ${dir}; refusing to follow it`),
    );
  });

  it('a picture the cache remembers as bad is still an error without --skip-bad-images', async () => {
    const dir = pictures();
    writeFileSync(join(dir, 'train', 'b', 'bad.png'), 'not a picture');
    const skipped = await loadImageFolder({ dir, skipBadImages: true });
    expect(skipped.summary.skipped).toEqual([
      { path: 'train/b/bad.png', reason: `${dir}/train/b/bad.png: not a PNG, JPEG or WebP image` },
    ]);
    expect(skipped.train.count).toBe(4);
    const again = await loadImageFolder({ dir, skipBadImages: true });
    expect(again.summary.cache).toMatchObject({ hit: true });
    await expect(loadImageFolder({ dir })).rejects.toThrow(
      new DataError(`${dir}/train/b/bad.png: not a PNG, JPEG or WebP image`),
    );
  });
});

describe('the zip reader (the page reads a zipped folder with it)', () => {
  const files = [
    { path: 'pets/train/a/1.png', bytes: pngBytes(new Uint8Array(16).fill(7), 4, 4, 1) },
    { path: 'pets/train/b/2.txt', bytes: Buffer.from('hello '.repeat(100)) },
  ];
  const blob = (bytes: Uint8Array) => new Blob([bytes as Uint8Array<ArrayBuffer>]);

  it('lists the entries and gives their bytes, deflated or stored', async () => {
    for (const store of [false, true]) {
      const zip = blob(zipBytes(files, store));
      const entries = await readZipDirectory(zip, 'pets.zip');
      expect(entries.map((e) => [e.path, e.isDirectory, e.method])).toEqual([
        ['pets/train/a/1.png', false, store ? 0 : 8],
        ['pets/train/b/2.txt', false, store ? 0 : 8],
      ]);
      for (const [i, entry] of entries.entries()) {
        expect(Buffer.from(await readZipEntry(zip, entry, 'pets.zip')).equals(Buffer.from(files[i].bytes))).toBe(true);
      }
    }
  });

  it('refuses a path out of the archive, damage, and an entry that inflates past its size, naming it', async () => {
    await expect(
      readZipDirectory(blob(zipBytes([{ path: '../evil.png', bytes: new Uint8Array(1) }])), 'z.zip'),
    ).rejects.toThrow(new DataError('z.zip/../evil.png: a path that leads out of the archive; refusing it'));
    await expect(readZipDirectory(blob(Buffer.from('not a zip')), 'z.zip')).rejects.toThrow(
      new DataError('z.zip: not a zip file, or a damaged one (no end of central directory)'),
    );
    const bytes = zipBytes(files);
    const entries = await readZipDirectory(blob(bytes), 'z.zip');
    // A bomb: the directory says 10 bytes; the deflated data holds 600.
    const small = { ...entries[1], size: 10 };
    await expect(readZipEntry(blob(bytes), small, 'z.zip')).rejects.toThrow(
      new DataError(
        'z.zip/pets/train/b/2.txt: damaged in the archive (it inflates to more than the 10 bytes it should)',
      ),
    );
    const flipped = Buffer.from(bytes);
    flipped[30 + files[0].path.length + 5] ^= 0x40;
    await expect(readZipEntry(blob(flipped), entries[0], 'z.zip')).rejects.toThrow(
      /^z\.zip\/pets\/train\/a\/1\.png: damaged in the archive/,
    );
  });
});
