/**
 * The project's own WebAssembly modules, kernels.wat, winograd.wat and adam.wat, which
 * scripts/build-wasm.mjs assembles into these files next to the compiled JavaScript; compiled once
 * per thread.
 */
export const WASM_FILES = {
  kernels: 'model/kernels.wasm',
  winograd: 'model/winograd.wasm',
  adam: 'optimizer/adam.wasm',
} as const;
export type WasmName = keyof typeof WASM_FILES;

const modules = new Map<WasmName, WebAssembly.Module>();

/**
 * Node's `fs` when this runs in Node, found without a static import, which a browser bundle could
 * not resolve (`process.getBuiltinModule`, Node 20.16 and later).
 */
const nodeFs = (
  globalThis as unknown as { process?: { getBuiltinModule?(id: string): unknown } }
).process?.getBuiltinModule?.('node:fs') as { readFileSync(path: URL): Uint8Array<ArrayBuffer> } | undefined;

/**
 * Hands over a module compiled elsewhere: a browser's worker, which cannot read a file synchronously,
 * fetches and compiles both before its first task.
 */
export function provideWasmModule(name: WasmName, module: WebAssembly.Module): void {
  modules.set(name, module);
}

/** The module `name`: as provided, or (in Node) read from its file and compiled, once. */
export function wasmModule(name: WasmName): WebAssembly.Module {
  let module = modules.get(name);
  if (module === undefined) {
    if (nodeFs === undefined) throw new Error(`the WebAssembly module ${name} was not provided (provideWasmModule)`);
    module = new WebAssembly.Module(nodeFs.readFileSync(new URL(WASM_FILES[name], import.meta.url)));
    modules.set(name, module);
  }
  return module;
}
