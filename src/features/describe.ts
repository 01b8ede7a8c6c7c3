import { featureWidth } from './checkSpec.js';
import type { FeatureDef, FeatureSpec, MinMaxScaling, StandardScaling } from './spec.js';

/** The feature spec as `cellstream inspect` prints it, below the network. */
export function describeFeatureSpec(spec: FeatureSpec): string {
  const lines: string[] = [];
  for (const [input, features] of Object.entries(spec.inputs)) {
    lines.push(`features    input ${input}`);
    const width = Math.max(...features.map((f) => f.name.length));
    let at = 0;
    for (const f of features) {
      const w = featureWidth(f);
      const slot = w === 1 ? `[${at}]` : `[${at}..${at + w - 1}]`;
      lines.push(`  ${slot.padEnd(8)} ${f.name.padEnd(width)}  ${describeFeature(f)}`);
      at += w;
    }
  }
  const out = spec.output;
  if (out?.kind === 'classes') {
    lines.push(
      `decoded     label, probabilities over ${out.labels.map((l) => JSON.stringify(l)).join(', ')}`,
    );
  } else if (out?.kind === 'regression') {
    const inv = out.inverse?.minmax
      ? `, inverse ${minmax(out.inverse.minmax)}`
      : out.inverse?.standard
        ? `, inverse ${standard(out.inverse.standard)}`
        : '';
    lines.push(`decoded     ${out.name ?? 'value'} (regression${inv})`);
  }
  return lines.join('\n');
}

function describeFeature(f: FeatureDef): string {
  const parts: string[] = [];
  if (f.derived) parts.push(`time since the key's previous event, in ${f.unit} (first event: ${f.first})`);
  else parts.push(`values.${f.source ?? f.name}`);
  if (f.minmax) parts.push(minmax(f.minmax));
  if (f.standard) parts.push(standard(f.standard));
  if (f.onehot) {
    parts.push(`one-hot ${f.onehot.map((c) => JSON.stringify(c)).join(', ')}`);
    parts.push(f.unknown === 'ignore' ? 'unknown: all zeros' : 'unknown: rejected');
  }
  return parts.join(', ');
}

function minmax(s: MinMaxScaling): string {
  const [lo, hi] = s.feature_range ?? [0, 1];
  return `minmax [${s.min}, ${s.max}] -> [${lo}, ${hi}]${s.clip ? ' clipped' : ''}`;
}

function standard(s: StandardScaling): string {
  return `standard mean ${s.mean} std ${s.std}`;
}
