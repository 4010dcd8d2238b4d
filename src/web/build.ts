import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCE = join(ROOT, 'src', 'browser');

/** Where `npm run web` builds the page: `index.html`, and its scripts and style under `app/`. */
export const PAGE_DIR = join(ROOT, 'dist', 'web');

/**
 * Bundles the page (src/browser) with esbuild: the page's script and the worker's, sharing their
 * modules (tfjs and the trainer) in chunks; then copies the HTML and CSS next to them. The browser
 * code's types are checked by `tsc -p tsconfig.browser.json`, which the npm scripts run first.
 */
export async function buildPage(outDir = PAGE_DIR): Promise<string> {
  const app = join(outDir, 'app');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(app, { recursive: true });
  await build({
    entryPoints: { page: join(SOURCE, 'page.ts'), worker: join(SOURCE, 'worker.ts') },
    outdir: app,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    logLevel: 'error',
  });
  await copyFile(join(SOURCE, 'index.html'), join(outDir, 'index.html'));
  await copyFile(join(SOURCE, 'style.css'), join(app, 'style.css'));
  return outDir;
}
