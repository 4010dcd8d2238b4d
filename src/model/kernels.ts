import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { wasmModule } from '../wasm.js';

/**
 * The glue kernels of kernels.wat, instantiated on tfjs-wasm's own memory: their pointers are
 * tensors' byte offsets (see `offsetOf`), and they read and write tensors in place. Each is the
 * twin of the function of the same name in kernels-reference.ts (which documents the arguments),
 * tested bit for bit.
 */
export interface GlueKernels {
  pool_forward(
    x: number,
    out: number,
    out2: number,
    n: number,
    h: number,
    w: number,
    c: number,
    size: number,
    sB: number,
    sP: number,
    sC: number,
  ): void;
  pool_backward(
    x: number,
    pooled: number,
    dout: number,
    dx: number,
    n: number,
    h: number,
    w: number,
    c: number,
    size: number,
    dB: number,
    dP: number,
    dC: number,
  ): void;
  activation_backward(
    a: number,
    da: number,
    dz: number,
    db: number,
    n: number,
    hw: number,
    c: number,
    relu: number,
    aB: number,
    aP: number,
    aC: number,
    dB: number,
    dP: number,
    dC: number,
    zB: number,
    zP: number,
    zC: number,
  ): void;
  im2col(
    x: number,
    cols: number,
    n: number,
    h: number,
    w: number,
    c: number,
    k: number,
    padTop: number,
    padLeft: number,
    oh: number,
    ow: number,
  ): void;
  im2col_transposed(
    planes: number,
    cols: number,
    n: number,
    h: number,
    w: number,
    c: number,
    planeStride: number,
    k: number,
    padTop: number,
    padLeft: number,
    oh: number,
    ow: number,
  ): void;
  bytes_to_floats(bytes: number, floats: number, length: number): void;
  transpose(src: number, dst: number, rows: number, cols: number): void;
  bias_rows(z: number, bias: number, rows: number, cols: number, relu: number): void;
  channel_sums(u: number, v: number, sums: number, positions: number, c: number): void;
  outer_products(
    a: number,
    b: number,
    sums: number,
    count: number,
    rows: number,
    m: number,
    n: number,
    aP: number,
    bP: number,
    first: number,
    chunk: number,
  ): void;
  matrix_products(
    a: number,
    b: number,
    out: number,
    count: number,
    rows: number,
    k: number,
    n: number,
    aP: number,
    bP: number,
    oP: number,
  ): void;
}

/**
 * Winograd's transforms for 3x3 convolutions (winograd.wat), on the same memory: each the twin of
 * the function of the same name in winograd-reference.ts, tested bit for bit.
 */
export interface WinogradKernels {
  winograd_input(
    x: number,
    v: number,
    n: number,
    h: number,
    w: number,
    c: number,
    padTop: number,
    padLeft: number,
    tilesY: number,
    tilesX: number,
    m: number,
    sP: number,
    sT: number,
    scratch: number,
  ): void;
  winograd_output(
    mm: number,
    out: number,
    bias: number,
    n: number,
    oh: number,
    ow: number,
    c: number,
    tilesY: number,
    tilesX: number,
    m: number,
    relu: number,
    sP: number,
    sT: number,
    scratch: number,
  ): void;
  winograd_gradient(
    dz: number,
    g: number,
    n: number,
    oh: number,
    ow: number,
    c: number,
    tilesY: number,
    tilesX: number,
    m: number,
    sP: number,
    sT: number,
    scratch: number,
  ): void;
}

let loaded: { memory: WebAssembly.Memory; glue: GlueKernels; winograd: WinogradKernels } | undefined;

export function wasmBackend(): BackendWasm {
  const backend = tf.backend() as BackendWasm;
  if (tf.getBackend() !== 'wasm') throw new Error(`the layers run on tfjs's wasm backend, not ${tf.getBackend()}`);
  return backend;
}

/**
 * The project's kernels, on the current wasm backend's memory. That memory is an internal of
 * tfjs-wasm's Emscripten module (`asm.memory`, checked here, in tfjs 4.22); growing it keeps the
 * same WebAssembly.Memory, so the instances stay valid for the backend's life. It must be the
 * single-threaded build's: the kernels import an unshared memory, which a threaded build's is not.
 */
function onHeap(): NonNullable<typeof loaded> {
  const module = wasmBackend().wasm as unknown as { asm?: { memory?: unknown } };
  const memory = module.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error(
      "tfjs-backend-wasm's memory is not where version 4.22 keeps it (asm.memory): pin @tensorflow/tfjs-backend-wasm to 4.22",
    );
  }
  if (memory.buffer instanceof SharedArrayBuffer) {
    throw new Error(
      "tfjs-backend-wasm runs its threaded build, whose memory is shared: set tf.env()'s WASM_HAS_MULTITHREAD_SUPPORT to false before tf.setBackend('wasm')",
    );
  }
  if (loaded?.memory !== memory) {
    const instance = (name: 'kernels' | 'winograd') =>
      new WebAssembly.Instance(wasmModule(name), { env: { memory } }).exports as unknown;
    loaded = { memory, glue: instance('kernels') as GlueKernels, winograd: instance('winograd') as WinogradKernels };
  }
  return loaded;
}

/** The glue kernels (kernels.wat). */
export function glueKernels(): GlueKernels {
  return onHeap().glue;
}

/** Winograd's transforms (winograd.wat). */
export function winogradKernels(): WinogradKernels {
  return onHeap().winograd;
}

/** A tensor's byte offset in the wasm heap: where the kernels find it. */
export function offsetOf(tensor: tf.Tensor): number {
  return wasmBackend().getMemoryOffset(tensor.dataId);
}

/**
 * A float32 tensor whose memory is allocated on the wasm heap but not initialised (~5 us, where
 * `tf.zeros` of the same size costs ~0.5 ms): for the kernels, or JavaScript, to fill. It belongs
 * to the current tidy scope, as tfjs's own outputs do.
 */
export function emptyTensor(shape: readonly number[]): tf.Tensor {
  return tf.engine().makeTensorFromTensorInfo(wasmBackend().makeOutput([...shape], 'float32'));
}

/**
 * A view of a tensor's data where it lives in the wasm heap. `dataSync()` would copy it into a
 * fresh array on every call; the view costs nothing. A view dies when the heap grows (its buffer
 * is detached and writes through it are lost), so take it after the last allocation before use.
 */
export function heapView(tensor: tf.Tensor): Float32Array {
  return wasmBackend().typedArrayFromHeap(tensor) as Float32Array;
}

/** The same memory as float64: for accumulators the kernels add to (`activation_backward`'s bias sums). */
export function heapView64(tensor: tf.Tensor): Float64Array {
  const offset = offsetOf(tensor);
  if (offset % 8 !== 0) throw new Error(`a float64 accumulator at an odd heap offset (${offset})`);
  const view = heapView(tensor);
  return new Float64Array(view.buffer, offset, view.length / 2);
}

/** The wasm heap as bytes, for copying data into a tensor's memory with a native `set`. */
export function heapBytes(tensor: tf.Tensor, length: number): Uint8Array {
  return new Uint8Array(heapView(tensor).buffer, offsetOf(tensor), length);
}
