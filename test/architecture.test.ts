import madge from 'madge';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

/** Imports from a file under `from` to one under `to`, as `file -> target` lines. */
function crossings(graph: Record<string, string[]>, from: string, to: string): string[] {
  return Object.entries(graph).flatMap(([file, imports]) =>
    file.startsWith(from)
      ? imports.filter((target) => target.startsWith(to)).map((target) => `${file} -> ${target}`)
      : [],
  );
}

/** Every file `start` imports, directly or through others. */
function reachable(graph: Record<string, string[]>, start: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    for (const target of graph[file] ?? []) {
      if (!seen.has(target)) {
        seen.add(target);
        visit(target);
      }
    }
  };
  visit(start);
  return seen;
}

describe('the module graph', () => {
  it('has no import cycles, and the coordinator and the workers never import each other', async () => {
    const graph = await madge(['src', 'scripts', 'bench'], {
      baseDir: ROOT,
      fileExtensions: ['ts'],
      tsConfig: `${ROOT}/tsconfig.json`,
    });
    expect(graph.circular()).toEqual([]);
    const imports = graph.obj();
    expect([
      ...crossings(imports, 'src/worker/', 'src/coordinator/'),
      ...crossings(imports, 'src/coordinator/', 'src/worker/'),
    ]).toEqual([]);
    // The browser is a side of its own, like Node's entry points: it uses the trainer, nothing uses
    // it; its Web Worker, like the Piscina worker, never reaches the coordinator; and it uses none
    // of Node's sides (Piscina's platform, the trainer thread, the page's server).
    const browser = Object.keys(imports).filter((file) => file.startsWith('src/browser/'));
    expect(browser).toContain('src/browser/worker.ts');
    expect(
      Object.keys(imports)
        .filter((file) => !file.startsWith('src/browser/'))
        .flatMap((file) => crossings({ [file]: imports[file] }, file, 'src/browser/')),
    ).toEqual([]);
    for (const entry of ['src/browser/worker.ts', 'src/worker/worker.ts']) {
      expect([...reachable(imports, entry)].filter((file) => file.startsWith('src/coordinator/'))).toEqual([]);
    }
    expect([
      ...crossings(imports, 'src/browser/', 'src/coordinator/node-platform.ts'),
      ...crossings(imports, 'src/browser/', 'src/thread/'),
      ...crossings(imports, 'src/browser/', 'src/web/'),
    ]).toEqual([]);
  });
});
