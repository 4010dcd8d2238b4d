import madge from 'madge';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

describe('the module graph', () => {
  it('has no import cycles, and the coordinator and the workers never import each other', async () => {
    const graph = await madge(['src', 'scripts', 'bench'], {
      baseDir: ROOT,
      fileExtensions: ['ts'],
      tsConfig: `${ROOT}/tsconfig.json`,
    });
    expect(graph.circular()).toEqual([]);
    const crossing = Object.entries(graph.obj()).flatMap(([file, imports]) =>
      imports
        .filter(
          (target) =>
            (file.startsWith('src/worker/') && target.startsWith('src/coordinator/')) ||
            (file.startsWith('src/coordinator/') && target.startsWith('src/worker/')),
        )
        .map((target) => `${file} -> ${target}`),
    );
    expect(crossing).toEqual([]);
  });
});
