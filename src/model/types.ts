/**
 * The canonical model: the one in-memory form that every importer produces and every kernel runs.
 *
 * Conventions (importers convert to these, see docs/architecture.md "What the importers convert"):
 * - Matrices are row-major Float32Arrays. A recurrent layer's input weights `W` are
 *   `[gates·H, I]` and recurrent weights `R` are `[gates·H, H]`, as ONNX stores them, so a gate
 *   pre-activation is `W·x + R·h + b`.
 * - LSTM gate order is **i, f, g, o** (input, forget, candidate, output): PyTorch's order.
 * - GRU gate order is **z, r, h** (update, reset, candidate): ONNX's and Keras's order.
 * - Biases: LSTM keeps one summed bias `b = Wb + Rb` (`[4H]`). GRU keeps input bias `bW` and
 *   recurrent bias `bR` apart (`[3H]` each) because with `linearBeforeReset` the candidate's
 *   recurrent bias sits inside the reset product.
 */

/** An element-wise activation, in ONNX's parametrisation (alpha/beta where the op takes them). */
export type Activation =
  | { readonly kind: 'sigmoid' }
  | { readonly kind: 'tanh' }
  | { readonly kind: 'relu' }
  | { readonly kind: 'linear' }
  /** max(0, min(1, alpha·x + beta)). Keras 2 / TF.js: alpha 0.2; Keras 3: alpha 1/6; beta 0.5. */
  | { readonly kind: 'hard_sigmoid'; readonly alpha: number; readonly beta: number }
  /** alpha·x + beta */
  | { readonly kind: 'affine'; readonly alpha: number; readonly beta: number }
  | { readonly kind: 'leaky_relu'; readonly alpha: number }
  | { readonly kind: 'thresholded_relu'; readonly alpha: number }
  /** alpha·tanh(beta·x) */
  | { readonly kind: 'scaled_tanh'; readonly alpha: number; readonly beta: number }
  | { readonly kind: 'elu'; readonly alpha: number }
  | { readonly kind: 'softsign' }
  | { readonly kind: 'softplus' };

/** Activations a dense head may end in; softmax is over the whole vector, not element-wise. */
export type HeadActivation = Activation | { readonly kind: 'softmax' };

export interface LstmLayer {
  readonly kind: 'lstm';
  readonly inputSize: number;
  readonly hiddenSize: number;
  /** `[4H, I]`, gates i, f, g, o. */
  readonly W: Float32Array;
  /** `[4H, H]`, gates i, f, g, o. */
  readonly R: Float32Array;
  /** `[4H]`, input and recurrent biases already summed. */
  readonly b: Float32Array;
  /** Peephole weights `[H]` each, or absent. ONNX: i and f see C_{t−1}, o sees C_t. */
  readonly peephole?: { readonly i: Float32Array; readonly f: Float32Array; readonly o: Float32Array };
  /** Coupled input-forget gate (ONNX `input_forget=1`): f = 1 − i. */
  readonly inputForget: boolean;
  /** Pre-activations are clipped to [−clip, clip] after the biases are added (ONNX `clip`). */
  readonly clip?: number;
  /** f: gates (i, f, o); g: candidate; h: applied to the cell state for the output. */
  readonly activations: { readonly f: Activation; readonly g: Activation; readonly h: Activation };
}

export interface GruLayer {
  readonly kind: 'gru';
  readonly inputSize: number;
  readonly hiddenSize: number;
  /** `[3H, I]`, gates z, r, h. */
  readonly W: Float32Array;
  /** `[3H, H]`, gates z, r, h. */
  readonly R: Float32Array;
  /** `[3H]` input bias. */
  readonly bW: Float32Array;
  /** `[3H]` recurrent bias. */
  readonly bR: Float32Array;
  /**
   * true: candidate = g(W·x + bW + r ⊙ (R·h + bR)) — PyTorch, Keras `reset_after=True`.
   * false: candidate = g(W·x + bW + R·(r ⊙ h) + bR) — Keras `reset_after=False`, ONNX default.
   */
  readonly linearBeforeReset: boolean;
  readonly clip?: number;
  /** f: gates (z, r); g: candidate. */
  readonly activations: { readonly f: Activation; readonly g: Activation };
}

export type RecurrentLayer = LstmLayer | GruLayer;

export interface DenseLayer {
  readonly kind: 'dense';
  readonly inputSize: number;
  readonly outputSize: number;
  /** `[out, in]` row-major (PyTorch/ONNX Gemm with transB=1 layout). */
  readonly W: Float32Array;
  /** `[out]` */
  readonly b: Float32Array;
  readonly activation: HeadActivation;
}

/** A named input of the network and its width. */
export interface ModelInput {
  readonly name: string;
  readonly size: number;
}

/**
 * A recurrent chain fed by one input. Single-input models have one branch; multi-input
 * functional models (Keras) have one per input, their last outputs concatenated in branch order.
 */
export interface Branch {
  readonly input: string;
  readonly layers: readonly RecurrentLayer[];
}

export interface Model {
  /** Human-readable name, e.g. "visits". */
  readonly name: string;
  /** Version label used in predictions' `model` field (`name@version`); defaults to a fingerprint prefix. */
  readonly version?: string;
  /** Where the model came from, for `inspect`: e.g. "onnx", "tfjs", "keras", "cellstream". */
  readonly source: string;
  readonly inputs: readonly ModelInput[];
  readonly branches: readonly Branch[];
  /** Applied in order to the concatenation of every branch's last hidden state. May be empty. */
  readonly head: readonly DenseLayer[];
  /** Optional extra metadata that formats carry through (feature specs, labels, …). */
  readonly metadata?: Readonly<Record<string, unknown>>;
}
