import { ModelInvalidError } from '../../errors.js';
import { modelFingerprint } from '../../model/fingerprint.js';
import type { Model } from '../../model/types.js';
import { structure, tensors } from '../../model/walk.js';

/** Bumped on any change a version-1 reader could misread. */
export const FORMAT_VERSION = 1;

/** Where one tensor lives in the weights file. */
export interface TensorRef {
  readonly name: string;
  /** Byte offset, a multiple of 4. */
  readonly offset: number;
  /** Number of float32 values. */
  readonly length: number;
}

/** The JSON half of cellstream's own format; the other half is little-endian float32 weights. */
export interface Manifest {
  readonly format: 'cellstream';
  readonly formatVersion: number;
  readonly name: string;
  readonly version?: string;
  readonly source: string;
  readonly fingerprint: string;
  /** File name of the weights, relative to the manifest. */
  readonly weights: string;
  readonly structure: ReturnType<typeof structure>;
  readonly tensors: readonly TensorRef[];
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** Splits a model into its manifest and the bytes of its weights. */
export function encodeModel(model: Model, weightsFile: string): { manifest: Manifest; weights: Uint8Array } {
  const refs: TensorRef[] = [];
  const parts: Float32Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors(model)) {
    refs.push({ name, offset, length: t.length });
    parts.push(t);
    offset += t.byteLength;
  }
  const all = new Float32Array(offset / 4);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const weights = new Uint8Array(all.buffer);
  if (!littleEndian()) byteswap32(weights);
  const manifest: Manifest = {
    format: 'cellstream',
    formatVersion: FORMAT_VERSION,
    name: model.name,
    ...(model.version === undefined ? {} : { version: model.version }),
    source: model.source,
    fingerprint: modelFingerprint(model),
    weights: weightsFile,
    structure: structure(model),
    tensors: refs,
    ...(model.metadata === undefined ? {} : { metadata: model.metadata }),
  };
  return { manifest, weights };
}

/** True when `json` claims to be a cellstream manifest (any version). */
export function isManifest(json: unknown): json is { format: 'cellstream' } {
  return typeof json === 'object' && json !== null && (json as { format?: unknown }).format === 'cellstream';
}

/**
 * Rebuilds a model from its manifest and weights, and checks the fingerprint so a truncated or
 * mismatched weights file is caught at load time.
 */
export function decodeModel(manifest: Manifest, bytes: Uint8Array): Model {
  if (manifest.formatVersion !== FORMAT_VERSION) {
    throw new ModelInvalidError(
      `cellstream model format version ${manifest.formatVersion} is not supported (this build reads ${FORMAT_VERSION}); convert the model again with this version`,
    );
  }
  const copy = bytes.slice();
  if (!littleEndian()) byteswap32(copy);
  const floats = new Map<string, Float32Array>();
  for (const ref of manifest.tensors) {
    if (ref.offset % 4 !== 0 || ref.offset + ref.length * 4 > copy.byteLength) {
      throw new ModelInvalidError(
        `tensor '${ref.name}' lies outside the weights file (${copy.byteLength} bytes); the file is truncated or belongs to another manifest`,
      );
    }
    floats.set(ref.name, new Float32Array(copy.buffer, copy.byteOffset + ref.offset, ref.length));
  }
  const take = (name: string): Float32Array => {
    const t = floats.get(name);
    if (!t) throw new ModelInvalidError(`the manifest lists no tensor '${name}'`);
    return t;
  };
  // biome-ignore lint/suspicious/noExplicitAny: the structure is checked by validateModel via the fingerprint below
  const s = manifest.structure as any;
  const model: Model = {
    name: manifest.name,
    ...(manifest.version === undefined ? {} : { version: manifest.version }),
    source: manifest.source,
    inputs: s.inputs,
    branches: s.branches.map(
      // biome-ignore lint/suspicious/noExplicitAny: see above
      (br: any, b: number) => ({
        input: br.input,
        // biome-ignore lint/suspicious/noExplicitAny: see above
        layers: br.layers.map((l: any, i: number) => {
          const p = `branch${b}.layer${i}`;
          const common = {
            inputSize: l.inputSize,
            hiddenSize: l.hiddenSize,
            W: take(`${p}.W`),
            R: take(`${p}.R`),
            ...(l.clip === null ? {} : { clip: l.clip }),
            activations: l.activations,
          };
          return l.kind === 'lstm'
            ? {
                kind: 'lstm',
                ...common,
                b: take(`${p}.b`),
                inputForget: l.inputForget,
                ...(l.peephole
                  ? {
                      peephole: {
                        i: take(`${p}.peephole.i`),
                        f: take(`${p}.peephole.f`),
                        o: take(`${p}.peephole.o`),
                      },
                    }
                  : {}),
              }
            : {
                kind: 'gru',
                ...common,
                bW: take(`${p}.bW`),
                bR: take(`${p}.bR`),
                linearBeforeReset: l.linearBeforeReset,
              };
        }),
      }),
    ),
    // biome-ignore lint/suspicious/noExplicitAny: see above
    head: s.head.map((d: any, i: number) => ({
      kind: 'dense',
      inputSize: d.inputSize,
      outputSize: d.outputSize,
      W: take(`head${i}.W`),
      b: take(`head${i}.b`),
      activation: d.activation,
    })),
    ...(manifest.metadata === undefined ? {} : { metadata: manifest.metadata }),
  };
  const fp = modelFingerprint(model);
  if (fp !== manifest.fingerprint) {
    throw new ModelInvalidError(
      `model '${manifest.name}' does not match its fingerprint (manifest ${manifest.fingerprint.slice(0, 12)}…, weights give ${fp.slice(0, 12)}…): the weights file is corrupt or belongs to another manifest`,
    );
  }
  return model;
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function byteswap32(b: Uint8Array): void {
  for (let i = 0; i + 3 < b.length; i += 4) {
    const t0 = b[i];
    const t1 = b[i + 1];
    b[i] = b[i + 3];
    b[i + 1] = b[i + 2];
    b[i + 2] = t1;
    b[i + 3] = t0;
  }
}
