// Assembles the project's WebAssembly text files into dist/, next to the compiled JavaScript that
// loads them. Part of `npm run build`; wabt is a pure JavaScript/WebAssembly package.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabt from 'wabt';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = ['src/optimizer/adam.wat', 'src/model/kernels.wat', 'src/model/winograd.wat'];
const assembler = await wabt();
for (const source of sources) {
  const module = assembler.parseWat(source, readFileSync(join(root, source), 'utf8'), {
    simd: true,
    threads: true,
    bulk_memory: true,
  });
  const binary = module.toBinary({}).buffer;
  new WebAssembly.Module(binary); // V8 validates it here, with the features Node will run it with
  const target = join(root, 'dist', source.replace(/\.wat$/, '.wasm'));
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, binary);
  module.destroy();
}
