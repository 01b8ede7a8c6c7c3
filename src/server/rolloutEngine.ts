import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Config } from '../config/schema.js';
import { KeyedStepper } from '../engine/keyedStepper.js';
import { Divergence, type DivergenceSnapshot, RolloutStepper } from '../engine/rollout.js';
import { ConfigError } from '../errors.js';
import type { Prediction } from '../events/types.js';
import { loadModel } from '../formats/load.js';
import { modelFingerprint } from '../model/index.js';
import type { Model } from '../model/types.js';
import { LmdbStore } from '../state/lmdbStore.js';
import {
  LmdbModelStates,
  MODEL_NAME_PATTERN,
  type ModelStates,
  modelStatesPath,
  openModelStates,
} from '../state/modelStates.js';
import type { StateStore } from '../state/types.js';
import type { ServeMetrics } from './metrics.js';
import { stepperOptionsOf } from './stepperOptions.js';

/** One model as configured: from `models`, or `model` (and `model.shadow`). */
export interface ModelEntry {
  readonly name?: string | undefined;
  readonly path: string;
  readonly role: 'primary' | 'shadow';
  readonly label?: string | undefined;
}

/** The models of a configuration that runs several, primary first; undefined for one model. */
export function modelEntries(config: Config): ModelEntry[] | undefined {
  if (config.models.length === 0 && config.model.shadow === undefined) return undefined;
  const listed = config.models.find((m) => m.role === 'primary');
  const entries: ModelEntry[] = listed
    ? [listed, ...config.models.filter((m) => m !== listed)]
    : [
        { name: config.model.name, path: config.model.path, role: 'primary', label: config.model.label },
        ...(config.model.shadow === undefined
          ? []
          : [{ path: config.model.shadow, role: 'shadow' as const }]),
        ...config.models,
      ];
  return entries;
}

/** A model's default prediction label, as `KeyedStepper` makes it. */
export function defaultLabel(model: Model): string {
  return `${model.name}@${model.version ?? modelFingerprint(model).slice(0, 8)}`;
}

/** One loaded model of a rollout. */
export interface LoadedModel {
  readonly name: string;
  readonly label: string;
  readonly model: Model;
  readonly role: 'primary' | 'shadow';
}

/** Loads every entry and names it: its `name`, or its label (`name@version`). Names and labels must differ. */
export async function loadModels(entries: readonly ModelEntry[]): Promise<LoadedModel[]> {
  const loaded: LoadedModel[] = [];
  for (const entry of entries) {
    const model = await loadModel(entry.path);
    const label = entry.label ?? defaultLabel(model);
    const name = entry.name ?? label;
    if (!MODEL_NAME_PATTERN.test(name)) {
      throw new ConfigError(
        `model ${entry.path} would be named '${name}' (its name@version), which cannot name a state namespace: give its entry a name`,
      );
    }
    for (const other of loaded) {
      if (other.name === name || other.label === label) {
        throw new ConfigError(
          `models ${other.model.name} (${other.name}) and ${entry.path} have the same name or label '${other.name === name ? name : label}': give one a name and a label (or re-export it with another version), so that every prediction says which model made it`,
        );
      }
    }
    loaded.push({ name, label, model, role: entry.role });
  }
  return loaded;
}

/** Per-model step latency, divergence of each shadow from the primary, failures and switches. */
export class RolloutMetrics {
  readonly stepSeconds: Histogram<'model'>;
  readonly shadowFailures: Counter<'model'>;
  readonly switches: Counter;
  private readonly divergences = new Map<string, Divergence>();
  private readonly stepMs = new Map<string, { sum: number; count: number; last: number }>();

  constructor(metrics: ServeMetrics, roles: () => ReturnType<RolloutStepper['roles']>) {
    const registers = [metrics.registry];
    this.stepSeconds = new Histogram({
      name: 'cellstream_model_step_seconds',
      help: 'Time one model takes to step one micro-batch (read state, step), by model label',
      labelNames: ['model'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.shadowFailures = new Counter({
      name: 'cellstream_shadow_failures_total',
      help: "Batches a shadow model failed to step (its state for them is not written; the primary's answers are unaffected)",
      labelNames: ['model'],
      registers,
    });
    this.switches = new Counter({
      name: 'cellstream_model_switches_total',
      help: 'Promotions and rollbacks made durable',
      registers,
    });
    new Gauge({
      name: 'cellstream_model_primary',
      help: '1 for the model whose predictions answer events, 0 for shadows',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const r of roles()) this.set({ model: r.label }, r.role === 'primary' ? 1 : 0);
      },
    });
    const divergences = this.divergences;
    const gauge = (name: string, help: string, value: (d: DivergenceSnapshot) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['primary', 'shadow'],
        registers,
        collect() {
          this.reset();
          for (const d of divergences.values()) {
            const s = d.snapshot();
            const v = value(s);
            if (v !== undefined) this.set({ primary: s.primary, shadow: s.shadow }, v);
          }
        },
      });
    gauge(
      'cellstream_shadow_divergence_mean_abs',
      "Mean absolute difference of a shadow's outputs from the primary's, over the events both predicted",
      (s) => s.meanAbsDiff,
    );
    gauge(
      'cellstream_shadow_divergence_max_abs',
      "Largest absolute difference of a shadow's output values from the primary's",
      (s) => s.maxAbsDiff,
    );
    gauge(
      'cellstream_shadow_label_agreement',
      'Share of events whose decoded label the shadow and the primary agree on (classifiers)',
      (s) => s.labelAgreement,
    );
    gauge(
      'cellstream_shadow_compared_events',
      'Events both the primary and the shadow predicted',
      (s) => s.events,
    );
  }

  divergence(primaryLabel: string, shadowLabel: string): Divergence {
    const id = `${primaryLabel}\u0000${shadowLabel}`;
    let d = this.divergences.get(id);
    if (!d) {
      d = new Divergence(primaryLabel, shadowLabel);
      this.divergences.set(id, d);
    }
    return d;
  }

  step(label: string, seconds: number): void {
    this.stepSeconds.observe({ model: label }, seconds);
    const s = this.stepMs.get(label) ?? { sum: 0, count: 0, last: 0 };
    s.sum += seconds * 1000;
    s.count++;
    s.last = seconds * 1000;
    this.stepMs.set(label, s);
  }

  /** For `/v1/stats` and the dashboard. */
  snapshot(): { divergence: DivergenceSnapshot[]; stepMs: Record<string, { mean: number; last: number }> } {
    const stepMs: Record<string, { mean: number; last: number }> = {};
    for (const [label, s] of this.stepMs) stepMs[label] = { mean: s.sum / s.count, last: s.last };
    return { divergence: [...this.divergences.values()].map((d) => d.snapshot()), stepMs };
  }
}

/** The rollout engine of `serve` without Kafka: the models, their namespaces, the stepper and its metrics. */
export interface RolloutEngine {
  readonly rollout: RolloutStepper;
  readonly states: ModelStates;
  readonly models: readonly LoadedModel[];
  /** The primary's namespace, whichever model that is now (look-ups, the key count); `close` closes every namespace. */
  readonly store: StateStore;
  readonly metrics: RolloutMetrics;
  /** A model's name from its prediction label. */
  nameOf(label: string): string | undefined;
}

export interface RolloutEngineHooks {
  /** A shadow's fresh prediction, for its own subscribers. */
  onShadowPrediction(name: string, prediction: Prediction): void;
  onShadowFailure(name: string, err: unknown): void;
  onSwitch(primary: string, previous: string, at: number): void;
  /** A hook after a durable batch threw (`RolloutHooks.onHookError`); the batch's answers went out. */
  onHookError(hook: string, err: unknown): void;
}

/**
 * Builds the rollout engine: loads the models, opens their namespaces (refusing a state directory
 * that holds one model's state from before, which no namespace would see), and one `KeyedStepper`
 * per model on its namespace, all behind a `RolloutStepper`.
 */
export async function startRolloutEngine(
  config: Config,
  entries: readonly ModelEntry[],
  serveMetrics: ServeMetrics,
  hooks: RolloutEngineHooks,
): Promise<RolloutEngine> {
  const models = await loadModels(entries);
  if (config.state.store === 'lmdb') await refuseSingleModelState(config.state.path);
  const states = openModelStates(config.state);
  try {
    const byLabel = new Map(models.map((m) => [m.label, m.name]));
    let rollout: RolloutStepper | undefined;
    const metrics = new RolloutMetrics(serveMetrics, () => rollout?.roles() ?? []);
    const labelOf = new Map(models.map((m) => [m.name, m.label]));
    rollout = new RolloutStepper({
      models: models.map((m) => ({
        name: m.name,
        stepper: new KeyedStepper(stepperOptionsOf(config, m.model, states.store(m.name), m.label)),
      })),
      primary: models[0].name,
      states,
      hooks: {
        onModelStep: (name, _size, seconds) => metrics.step(labelOf.get(name)!, seconds),
        onShadow: (shadow, outcomes, primary, answered) => {
          metrics.divergence(labelOf.get(primary)!, labelOf.get(shadow)!).add(answered, outcomes);
          for (const o of outcomes) {
            if (o.kind === 'prediction' && !o.redelivered) hooks.onShadowPrediction(shadow, o.prediction);
          }
        },
        onShadowFailure: (name, err) => {
          metrics.shadowFailures.inc({ model: labelOf.get(name)! });
          hooks.onShadowFailure(name, err);
        },
        onSwitch: (meta, previous) => {
          metrics.switches.inc();
          hooks.onSwitch(meta.primary, previous, meta.switches.at(-1)?.at ?? meta.events);
        },
        onHookError: (hook, err) => hooks.onHookError(hook, err),
      },
    });
    const r = rollout;
    const current = () => states.store(r.primary);
    const store: StateStore = {
      getMany: (keys, into) => current().getMany(keys, into),
      putMany: (entries) => current().putMany(entries),
      deleteMany: (keys) => current().deleteMany(keys),
      entries: (into) => current().entries(into),
      size: () => current().size(),
      close: () => states.close(),
    };
    return { rollout: r, states, models, store, metrics, nameOf: (label) => byLabel.get(label) };
  } catch (err) {
    await states.close();
    throw err;
  }
}

/**
 * Several models keep their state in `<state.path>/models`; state written by one model before
 * sits in `state.path` itself, where no namespace sees it. Starting would answer every existing key
 * from a zero state, so it is refused until that state is moved (`cellstream state adopt`, which
 * leaves the directory empty) or warmed into a namespace.
 */
async function refuseSingleModelState(path: string): Promise<void> {
  if (!existsSync(join(path, 'data.mdb'))) return;
  const single = await LmdbStore.open({ path });
  try {
    const keys = await single.size();
    if (keys > 0) {
      throw new ConfigError(
        `state.path ${path} holds the state of ${keys} keys written by serve with one model; several models keep theirs in ${join(path, 'models')}, per model, and would start every key from zero: move it into the model's namespace with the service stopped (cellstream state adopt --model FILE --state ${path} --namespace NAME), warm the new models' namespaces from history (docs/rollout.md), or point state.path at a new directory`,
      );
    }
  } finally {
    await single.close();
  }
}

/**
 * The other way round: one model reads `state.path` itself, so the namespaces a rollout kept in
 * `<state.path>/models` are invisible to it and every key would start from zero. Refused while any
 * namespace holds keys; the caller asks only when `state.path` holds none of its own (after
 * `cellstream state retire` it does, and the namespaces left beside it are the user's to delete).
 */
export async function refuseModelNamespaces(path: string): Promise<void> {
  const dir = modelStatesPath(path);
  if (!existsSync(join(dir, 'data.mdb'))) return;
  const states = new LmdbModelStates(dir);
  try {
    const held = [...(await states.namespaces())].filter(([, keys]) => keys > 0);
    if (held.length === 0) return;
    const primary = states.readMeta()?.primary;
    const which = held.map(([name, keys]) => `${name} (${keys} keys${name === primary ? ', primary' : ''})`);
    throw new ConfigError(
      `state.path ${path} holds the state of several models in ${dir}: ${which.join(', ')}; serve with one model reads state.path itself and would start every key from zero: configure the models again (models, or model.shadow), or move the one model's namespace back with cellstream state retire (docs/rollout.md)`,
    );
  } finally {
    await states.close();
  }
}
