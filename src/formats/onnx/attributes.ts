import type onnxProto from 'onnx-proto';
import { toNumber } from './decode.js';
import { type ConstTensor, decodeTensor } from './tensors.js';

type INodeProto = onnxProto.onnx.INodeProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

const FLOAT = 1;
const INT = 2;
const STRING = 3;
const TENSOR = 4;
const FLOATS = 6;
const INTS = 7;
const STRINGS = 8;

const utf8 = new TextDecoder();

/** Typed, defaulted reads of a node's attributes. */
export class Attributes {
  private readonly byName = new Map<string, IAttributeProto>();

  constructor(node: INodeProto) {
    for (const a of node.attribute ?? []) if (a.name) this.byName.set(a.name, a);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  int(name: string, fallback: number): number {
    const a = this.byName.get(name);
    return a && a.type === INT ? toNumber(a.i) : fallback;
  }

  float(name: string): number | undefined {
    const a = this.byName.get(name);
    return a && a.type === FLOAT ? (a.f ?? 0) : undefined;
  }

  string(name: string, fallback: string): string {
    const a = this.byName.get(name);
    return a && a.type === STRING && a.s ? utf8.decode(a.s) : fallback;
  }

  ints(name: string): number[] | undefined {
    const a = this.byName.get(name);
    return a && a.type === INTS ? (a.ints ?? []).map(toNumber) : undefined;
  }

  floats(name: string): number[] | undefined {
    const a = this.byName.get(name);
    return a && a.type === FLOATS ? [...(a.floats ?? [])] : undefined;
  }

  strings(name: string): string[] | undefined {
    const a = this.byName.get(name);
    return a && a.type === STRINGS ? (a.strings ?? []).map((s) => utf8.decode(s)) : undefined;
  }

  tensor(name: string): ConstTensor | undefined {
    const a = this.byName.get(name);
    return a && a.type === TENSOR && a.t ? decodeTensor(a.t, name) : undefined;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
