import type { Model } from './types.js';

/** Where one recurrent layer's h (and, for an LSTM, C) sit inside a key's flat state vector. */
export interface LayerSlot {
  readonly branch: number;
  readonly layer: number;
  readonly hiddenSize: number;
  readonly h: number;
  /** Offset of C for LSTM layers; -1 for GRU. */
  readonly c: number;
}

export interface StateLayout {
  /** Float32 values per key. */
  readonly size: number;
  /** One slot per recurrent layer, branch by branch, bottom layer first. */
  readonly slots: readonly LayerSlot[];
}

/**
 * A key's whole recurrent state is one flat Float32Array: for each branch, for each layer, h then
 * (LSTM) C. One flat vector per key lets stores keep states in typed slabs and copy them whole.
 */
export function stateLayout(model: Model): StateLayout {
  const slots: LayerSlot[] = [];
  let off = 0;
  model.branches.forEach((branch, b) => {
    branch.layers.forEach((layer, l) => {
      const H = layer.hiddenSize;
      const h = off;
      off += H;
      let c = -1;
      if (layer.kind === 'lstm') {
        c = off;
        off += H;
      }
      slots.push({ branch: b, layer: l, hiddenSize: H, h, c });
    });
  });
  return { size: off, slots };
}
