import type { Writable } from 'node:stream';
import { modelFingerprint } from '../model/index.js';
import type { Model } from '../model/types.js';
import { defaultLabel } from '../server/rolloutEngine.js';
import { type MoveDirection, type MoveStateSummary, moveState } from '../state/moveState.js';

export interface StateCommandOptions {
  readonly model: Model;
  readonly state: string;
  readonly to?: string | undefined;
  readonly namespace: string;
  readonly stdout: Writable;
}

/**
 * `cellstream state adopt` / `state retire`: moves a model's per-key records from a single-model
 * state directory into its namespace of the rollout layout, or back (`moveState`), for a stopped
 * service, and prints one line saying what it did.
 */
export async function runStateMove(
  direction: MoveDirection,
  options: StateCommandOptions,
): Promise<MoveStateSummary> {
  const summary = await moveState({
    direction,
    state: options.state,
    to: options.to,
    namespace: options.namespace,
    fingerprint: modelFingerprint(options.model),
    label: defaultLabel(options.model),
  });
  options.stdout.write(`${summaryLine(direction, summary)}\n`);
  return summary;
}

function summaryLine(direction: MoveDirection, s: MoveStateSummary): string {
  const verb = direction === 'adopt' ? 'adopted' : 'retired';
  switch (s.outcome) {
    case 'copied':
      return `${verb}: moved the state of ${s.keys} keys from ${s.from} to ${s.to}`;
    case 'resumed':
      return `${verb}: ${s.to} already held the state of ${s.keys} keys (a run cut short had copied it); removed it from ${s.from}`;
    case 'done':
      return `${verb} already: ${s.from} holds nothing, ${s.to} holds the state of ${s.keys} keys`;
  }
}
