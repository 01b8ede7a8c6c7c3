export { referenceKernel } from './reference.js';
export { type KernelChoice, type KernelOptions, selectKernel } from './select.js';
export type { Kernel } from './types.js';
export { createWasmKernel, simd128Module, wasmSupports } from './wasm/wasmKernel.js';
