export { createNativeKernel, loadNative, type NativeAddon } from './native/nativeKernel.js';
export { nativeSupports } from './native/pack.js';
export { referenceKernel } from './reference.js';
export { type KernelChoice, type KernelOptions, selectKernel } from './select.js';
export { gatherSession } from './session.js';
export type { Kernel, KernelSession } from './types.js';
export { createWasmKernel, simd128Module, wasmSupports } from './wasm/wasmKernel.js';
