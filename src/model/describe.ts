import { activationName } from './activations.js';
import { modelFingerprint } from './fingerprint.js';
import { outputSize, stateSize } from './network.js';
import type { Model } from './types.js';
import { tensors } from './walk.js';

/** A multi-line, human-readable summary of a model: what `cellstream inspect` prints. */
export function describeModel(model: Model): string {
  const lines: string[] = [];
  let params = 0;
  for (const [, t] of tensors(model)) params += t.length;
  lines.push(`model       ${model.name}${model.version ? `@${model.version}` : ''}  (from ${model.source})`);
  lines.push(`fingerprint ${modelFingerprint(model)}`);
  lines.push(`inputs      ${model.inputs.map((i) => `${i.name}[${i.size}]`).join(', ')}`);
  model.branches.forEach((branch, b) => {
    lines.push(`branch ${b}    input ${branch.input}`);
    branch.layers.forEach((l, i) => {
      const a = l.activations;
      const acts =
        l.kind === 'lstm'
          ? `f=${activationName(a.f)} g=${activationName(a.g)} h=${activationName(l.activations.h)}`
          : `f=${activationName(a.f)} g=${activationName(a.g)}`;
      const extras: string[] = [];
      if (l.kind === 'lstm') {
        if (l.peephole) extras.push('peepholes');
        if (l.inputForget) extras.push('coupled input-forget');
      } else {
        extras.push(`linear_before_reset=${l.linearBeforeReset ? 1 : 0}`);
      }
      if (l.clip !== undefined) extras.push(`clip=${l.clip}`);
      lines.push(
        `  ${i}: ${l.kind.toUpperCase()} ${l.inputSize} -> ${l.hiddenSize}  ${acts}${extras.length ? `  ${extras.join(', ')}` : ''}`,
      );
    });
  });
  model.head.forEach((d, i) => {
    lines.push(`head ${i}      Dense ${d.inputSize} -> ${d.outputSize}  ${activationName(d.activation)}`);
  });
  lines.push(`output      ${outputSize(model)} values`);
  lines.push(`state       ${stateSize(model)} float32 per key (${stateSize(model) * 4} bytes)`);
  lines.push(`parameters  ${params}`);
  return lines.join('\n');
}
