import { wasmBackend } from './kernels.js';

/**
 * Plain matMuls on XNNPACK, called as tfjs-wasm's own BatchMatMul kernel calls it, on matrices
 * anywhere in its heap. Winograd's element-wise stage is 16 or 36 small products per pass of a
 * convolution (winograd.ts), on slices of one buffer: through `tf.matMul` each would need a tensor
 * of its own (a copy), and its dispatch (tensor bookkeeping, reshapes, an output allocation) costs
 * about as much as the product: 36 products of [256, 32] by [32, 64] took 4.7 ms through
 * `tf.matMul` and 2.7 ms called here (in one run, alternating, of tensors already on the heap).
 *
 * An operand is a tensor id registered with the backend's C++ side for a view of the heap; the
 * ids come from the backend's own counter, so they never meet a tensor's. XNNPACK packs the
 * second operand when it first sees its id, and keeps that packed copy until the id is disposed:
 * a `PackedOperand` keeps it for a step's products with one filter; a plain offset is packed for
 * its one product.
 */
interface WasmInternals {
  tfjs: {
    registerTensor(id: number, size: number, offset: number): void;
    disposeData(id: number): void;
  };
  _BatchMatMul(
    a: number,
    aShape: number,
    aRank: number,
    b: number,
    bShape: number,
    bRank: number,
    transposeA: number,
    transposeB: number,
    out: number,
  ): void;
  _malloc(bytes: number): number;
  HEAPU32: Uint32Array;
}

interface Internals {
  readonly wasm: WasmInternals;
  /** Two rank-3 shapes, [1, m, k] and [1, k, n], rewritten before each product. */
  readonly shapes: number;
  readonly backend: { dataIdNextNumber: number };
}

let cached: Internals | undefined;

function internals(): Internals {
  const backend = wasmBackend() as unknown as { wasm: WasmInternals; dataIdNextNumber: number };
  const { wasm } = backend;
  if (cached?.wasm !== wasm) {
    if (
      typeof wasm._BatchMatMul !== 'function' ||
      typeof wasm.tfjs?.registerTensor !== 'function' ||
      typeof backend.dataIdNextNumber !== 'number'
    ) {
      throw new Error(
        "tfjs-backend-wasm's BatchMatMul or tensor registry is not what version 4.22 has: pin @tensorflow/tfjs-backend-wasm to 4.22",
      );
    }
    cached = { wasm, shapes: wasm._malloc(24), backend };
  }
  return cached;
}

/** A second operand, `[k, n]` at a byte offset, that XNNPACK packs once and keeps until `dispose`. */
export class PackedOperand {
  readonly id: number;
  #disposed = false;

  constructor(
    offset: number,
    readonly k: number,
    readonly n: number,
  ) {
    const { wasm, backend } = internals();
    this.id = backend.dataIdNextNumber++;
    wasm.tfjs.registerTensor(this.id, k * n, offset);
  }

  /** Frees XNNPACK's packed copy (and unregisters the view; the memory is the caller's). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    internals().wasm.tfjs.disposeData(this.id);
  }
}

/**
 * out = a · b, row-major float32 at byte offsets: a `[m, k]`, b `[k, n]` (packed, or an offset
 * packed for this product alone), out `[m, n]`. Each output element is XNNPACK's float32 sum over
 * k in order, whatever m: a row's result does not depend on the rows around it.
 */
export function heapMatMul(a: number, b: PackedOperand | number, out: number, m: number, k: number, n: number): void {
  const { wasm, shapes, backend } = internals();
  const heap = wasm.HEAPU32;
  const at = shapes >>> 2;
  heap[at] = 1;
  heap[at + 1] = m;
  heap[at + 2] = k;
  heap[at + 3] = 1;
  heap[at + 4] = k;
  heap[at + 5] = n;
  const aId = backend.dataIdNextNumber++;
  const outId = backend.dataIdNextNumber++;
  wasm.tfjs.registerTensor(aId, m * k, a);
  wasm.tfjs.registerTensor(outId, m * n, out);
  let bId: number;
  if (b instanceof PackedOperand) {
    if (b.k !== k || b.n !== n) throw new Error(`a packed ${b.k} x ${b.n} operand used as ${k} x ${n}`);
    bId = b.id;
  } else {
    bId = backend.dataIdNextNumber++;
    wasm.tfjs.registerTensor(bId, k * n, b);
  }
  wasm._BatchMatMul(aId, shapes, 3, bId, shapes + 12, 3, 0, 0, outId);
  wasm.tfjs.disposeData(aId);
  wasm.tfjs.disposeData(outId);
  if (!(b instanceof PackedOperand)) wasm.tfjs.disposeData(bId);
}
