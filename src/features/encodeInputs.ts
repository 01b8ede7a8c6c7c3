import { InvalidEventError, WrongSizeError } from '../errors.js';
import type { Event } from '../events/types.js';
import type { Model } from '../model/types.js';

/** What an encoder may derive features from besides the values: the event's time and its key's previous one. */
export interface EncodeContext {
  readonly ts: number;
  /** `ts` of the key's previous applied event; undefined for a key's first event and right after a reset. */
  readonly previousTs: number | undefined;
}

/** Turns an event's named `values` into the model's input vectors; built from a model's feature spec. */
export type ValuesEncoder = (
  values: Readonly<Record<string, unknown>>,
  context: EncodeContext,
) => Float32Array[];

const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The model's input vectors for `event`, one per `model.inputs` entry and in that order.
 * `features` feeds a single-input model; `inputs` names every input of any model; `values` needs
 * `encodeValues` (the model's feature spec), which also gets `previousTs`, the key's previous
 * event time. Throws `WrongSizeError` or `InvalidEventError`.
 */
export function encodeInputs(
  model: Model,
  event: Event,
  encodeValues?: ValuesEncoder,
  previousTs?: number,
): Float32Array[] {
  if (event.features !== undefined) {
    if (model.inputs.length !== 1) {
      throw new InvalidEventError(
        `the model has ${model.inputs.length} inputs (${inputNames(model)}); send inputs by name, not features`,
      );
    }
    return [toFloat32(event.features, model.inputs[0].size, 'features')];
  }
  if (event.inputs !== undefined) {
    const given = event.inputs;
    for (const name of Object.keys(given)) {
      if (!model.inputs.some((inp) => inp.name === name)) {
        throw new InvalidEventError(
          `inputs.${name} is not an input of the model (it takes ${inputNames(model)})`,
        );
      }
    }
    return model.inputs.map((inp) => {
      const v = given[inp.name];
      if (v === undefined) {
        throw new InvalidEventError(`inputs.${inp.name} is missing (the model takes ${inputNames(model)})`);
      }
      return toFloat32(v, inp.size, `inputs.${inp.name}`);
    });
  }
  if (event.values !== undefined) {
    if (!encodeValues) {
      throw new InvalidEventError(
        `values needs a feature spec and the model has no feature spec; send features (${inputSizes(model)})`,
      );
    }
    return encodeValues(event.values, { ts: event.ts, previousTs });
  }
  throw new InvalidEventError('an event needs one of features, values or inputs');
}

function toFloat32(v: readonly number[], size: number, field: string): Float32Array {
  checkFloat32Values(v, size, field);
  return Float32Array.from(v);
}

/**
 * Checks that `v` is an input vector of `size` values float32 can hold, as `encodeInputs` does
 * for `field`; throws `WrongSizeError` or `InvalidEventError`.
 */
export function checkFloat32Values(v: readonly number[], size: number, field: string): void {
  if (v.length !== size) throw new WrongSizeError(field, size, v.length);
  // A value float32 cannot hold would become ±Infinity and poison the key's state for good.
  for (let i = 0; i < v.length; i++) {
    if (!(Math.abs(v[i]) <= FLOAT32_MAX)) {
      throw new InvalidEventError(`${field}[${i}] is ${v[i]}, outside the float32 range`);
    }
  }
}

function inputNames(model: Model): string {
  return model.inputs.map((i) => i.name).join(', ');
}

function inputSizes(model: Model): string {
  return model.inputs.map((i) => `${i.name}: ${i.size} values`).join(', ');
}
