// Copies the export's Python templates and README (src/export/pytorch/) into dist/, next to the
// compiled JavaScript that reads them. Part of `npm run build`; the package ships dist/src.
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
cpSync(join(root, 'src', 'export', 'pytorch'), join(root, 'dist', 'src', 'export', 'pytorch'), {
  recursive: true,
  // Python's bytecode caches, should a template have been run where it lies, are not the package's.
  filter: (source) => !source.includes('__pycache__'),
});
