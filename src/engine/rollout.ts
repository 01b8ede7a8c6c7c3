import { ConfigError } from '../errors.js';
import type { Prediction } from '../events/types.js';
import type { ModelStates, RolloutMeta } from '../state/modelStates.js';
import type { KeyedStepper } from './keyedStepper.js';
import type { Envelope, Outcome } from './types.js';

/** One of the models a `RolloutStepper` steps: its namespace name and its stepper (on that namespace). */
export interface RolloutModel {
  readonly name: string;
  readonly stepper: KeyedStepper;
}

export interface RolloutHooks {
  /** A model stepped a batch of `size` events in `seconds` (its own step, store read included). */
  onModelStep?(name: string, size: number, seconds: number): void;
  /**
   * After a batch is durable: a shadow's outcomes for it, one per event in batch order, beside the
   * primary's. Never the primary's output: these go to the shadow's own subscribers.
   */
  onShadow?(
    shadow: string,
    outcomes: readonly Outcome[],
    primary: string,
    primaryOutcomes: readonly Outcome[],
  ): void;
  /** A shadow's batch failed: its state for the batch is not written, the primary is not held up. */
  onShadowFailure?(shadow: string, err: unknown): void;
  /** A switch became durable. */
  onSwitch?(meta: RolloutMeta, previous: string): void;
  /**
   * `onShadow` or `onSwitch` threw. They run after the batch is durable, so the batch's answers
   * still go out; the error is only reported here.
   */
  onHookError?(hook: 'onShadow' | 'onSwitch', err: unknown): void;
}

export interface RolloutOptions {
  /** Every model, each stepping its own namespace of `states`. Two at least; names distinct. */
  readonly models: readonly RolloutModel[];
  /** The primary when `states` has no switch record yet. */
  readonly primary: string;
  readonly states: ModelStates;
  readonly hooks?: RolloutHooks;
}

/** What a promote did, once durable. */
export interface SwitchResult {
  /** The model that answers from event position `at` on. */
  readonly primary: string;
  /** The model that answered before; it keeps stepping as a shadow. */
  readonly previous: string;
  /** The event position (events stepped before it, over every run) from which `primary` answers. */
  readonly at: number;
  /** False when `primary` already was the primary (nothing switched). */
  readonly switched: boolean;
}

interface PendingSwitch {
  readonly target: string;
  readonly resolve: (r: SwitchResult) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Several models over the same events, each with its own per-key state. Every event is stepped by
 * every model; only the primary's outcome answers it. A switch of primary takes effect at a batch
 * boundary and is written in the same transaction as that batch's states (all models' together),
 * so after a crash the store says exactly from which event position the new primary answered, and
 * no event is answered by both models or by neither. The previous primary keeps stepping as a
 * shadow, so switching back is as exact as switching.
 */
export class RolloutStepper {
  private readonly models: ReadonlyMap<string, RolloutModel>;
  private readonly states: ModelStates;
  private readonly hooks: RolloutHooks;
  private meta: RolloutMeta;
  private pending: PendingSwitch[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: RolloutOptions) {
    if (options.models.length < 2) throw new ConfigError('a rollout needs two models at least');
    const models = new Map<string, RolloutModel>();
    for (const m of options.models) {
      if (models.has(m.name))
        throw new ConfigError(`two models are named '${m.name}': give each its own name`);
      models.set(m.name, m);
    }
    this.models = models;
    this.states = options.states;
    this.hooks = options.hooks ?? {};
    const stored = options.states.readMeta();
    if (stored && !models.has(stored.primary)) {
      throw new ConfigError(
        `the state directory says model '${stored.primary}' is primary (switched at event ${stored.switches.at(-1)?.at ?? 0}), but no configured model has that name: configure it, or promote another model first`,
      );
    }
    if (!models.has(options.primary)) throw new ConfigError(`no model is named '${options.primary}'`);
    this.meta = stored ?? { primary: options.primary, events: 0, switches: [] };
  }

  /** The model answering events now. */
  get primary(): string {
    return this.meta.primary;
  }

  /** The primary's prediction label. */
  get modelLabel(): string {
    return this.models.get(this.meta.primary)!.stepper.modelLabel;
  }

  /** Every model's name and label, the primary first. */
  roles(): Array<{ name: string; label: string; role: 'primary' | 'shadow' }> {
    const out = [...this.models.values()].map((m) => ({
      name: m.name,
      label: m.stepper.modelLabel,
      role: m.name === this.meta.primary ? ('primary' as const) : ('shadow' as const),
    }));
    return out.sort((a, b) => (a.role === b.role ? 0 : a.role === 'primary' ? -1 : 1));
  }

  /** The switch record as last made durable. */
  get record(): RolloutMeta {
    return this.meta;
  }

  /** The name of a model, given its name or its prediction label. */
  resolve(nameOrLabel: string): string | undefined {
    if (this.models.has(nameOrLabel)) return nameOrLabel;
    for (const m of this.models.values()) if (m.stepper.modelLabel === nameOrLabel) return m.name;
    return undefined;
  }

  /**
   * Makes `target` (default: the only shadow) primary from the next batch on; resolves once the
   * switch is durable, with the event position it took effect at. Without events to carry it, the
   * switch is written on its own.
   */
  promote(target?: string): Promise<SwitchResult> {
    const name = target === undefined ? this.onlyShadow() : this.resolve(target);
    if (name === undefined) {
      const known = [...this.models.keys()].join(', ');
      return Promise.reject(
        new ConfigError(
          target === undefined
            ? `there is more than one shadow (models: ${known}): name the one to promote (?model=NAME, --model NAME)`
            : `no model is named '${target}': known are ${known}`,
        ),
      );
    }
    const done = new Promise<SwitchResult>((resolve, reject) =>
      this.pending.push({ target: name, resolve, reject }),
    );
    // When idle, a batch of no events carries the switch; when busy, the next batch does.
    this.serial(() => (this.pending.length > 0 ? this.apply([]) : Promise.resolve([])));
    return done;
  }

  /** Switches back to the model that was primary before the last switch. */
  rollback(): Promise<SwitchResult> {
    const last = this.meta.switches.at(-1);
    if (!last) return Promise.reject(new ConfigError('nothing to roll back: no model was promoted yet'));
    return this.promote(last.previous);
  }

  /** Steps `batch` with every model; resolves with the primary's outcomes once all states are durable. */
  process(batch: readonly Envelope[]): Promise<Outcome[]> {
    return this.serial(() => this.apply(batch));
  }

  /** Waits for the batch in flight and closes every model's stepper (the states stay open). */
  async close(): Promise<void> {
    await this.tail.catch(() => {});
    for (const m of this.models.values()) await m.stepper.close();
  }

  private serial(work: () => Promise<Outcome[]>): Promise<Outcome[]> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => {});
    return run;
  }

  private async apply(given: readonly Envelope[]): Promise<Outcome[]> {
    let batch = given;
    const switching = this.pending;
    this.pending = [];
    const before = this.meta;
    let primary = before.primary;
    let switches = before.switches;
    const previous = primary;
    for (const s of switching) {
      if (s.target !== primary) {
        const s0 = primary;
        primary = s.target;
        switches = [
          ...switches,
          { at: before.events, primary, previous: s0, time: new Date().toISOString() },
        ];
      }
    }
    const next: RolloutMeta = { primary, events: before.events + batch.length, switches };
    batch = withPositions(batch, before.events);
    try {
      this.states.stage();
      const main = this.models.get(primary)!;
      let start = performance.now();
      const outcomes = batch.length > 0 ? await main.stepper.process(batch) : [];
      this.hooks.onModelStep?.(primary, batch.length, (performance.now() - start) / 1000);
      const shadows: Array<[string, Outcome[]]> = [];
      for (const m of this.models.values()) {
        if (m.name === primary || batch.length === 0) continue;
        start = performance.now();
        try {
          shadows.push([m.name, await m.stepper.process(batch)]);
          this.hooks.onModelStep?.(m.name, batch.length, (performance.now() - start) / 1000);
        } catch (err) {
          this.states.discard(m.name);
          this.hooks.onShadowFailure?.(m.name, err);
        }
      }
      const answers = await this.repeatsByTheirModel(outcomes, primary, shadows, next);
      await this.states.commit(next);
      this.meta = next;
      for (const s of switching) {
        s.resolve({ primary: s.target, previous, at: before.events, switched: s.target !== previous });
      }
      this.afterCommit(next, previous, outcomes, shadows);
      return answers;
    } catch (err) {
      // Nothing of the batch was written; the switch waits for the batch that carries it.
      this.pending = [...switching, ...this.pending];
      if (batch.length === 0) for (const s of this.pending.splice(0)) s.reject(err);
      throw err;
    }
  }

  /**
   * The hooks of a durable batch. None may fail it: its state is written, so its answers must go
   * out (a failed batch would be answered "not applied", and resent events then read as repeats).
   */
  private afterCommit(
    meta: RolloutMeta,
    previous: string,
    outcomes: readonly Outcome[],
    shadows: ReadonlyArray<[string, Outcome[]]>,
  ): void {
    const guarded = (hook: 'onShadow' | 'onSwitch', call: () => void) => {
      try {
        call();
      } catch (err) {
        try {
          this.hooks.onHookError?.(hook, err);
        } catch {
          // A reporter that throws has nowhere left to report to; the batch stands.
        }
      }
    };
    if (meta.primary !== previous) guarded('onSwitch', () => this.hooks.onSwitch?.(meta, previous));
    const onShadow = this.hooks.onShadow;
    if (onShadow && shadows.length > 0) {
      const answered = perEvent(outcomes);
      for (const [name, out] of shadows) {
        guarded('onShadow', () => onShadow(name, perEvent(out), meta.primary, answered));
      }
    }
  }

  /**
   * A repeated prediction (a resent event the key had applied last) comes from the stored output of
   * the model that answers now; if a switch came between the event and its resend, the answer
   * belongs to the model that was primary at the event's position, which stepped it too: its
   * repeat is taken instead. The position is the key's record's (`lastApplied`), read before this
   * batch's writes; a repeat of an event stepped earlier in this batch is the current primary's.
   */
  private async repeatsByTheirModel(
    outcomes: Outcome[],
    primary: string,
    shadows: ReadonlyArray<[string, Outcome[]]>,
    meta: RolloutMeta,
  ): Promise<Outcome[]> {
    if (meta.switches.length === 0 || shadows.length === 0) return outcomes;
    const answered = perEvent(outcomes);
    const repeats: number[] = [];
    const stepped = new Set<string>();
    for (let i = 0; i < answered.length; i++) {
      const o = answered[i];
      if (o.kind !== 'prediction') continue;
      if (!o.redelivered) stepped.add(o.prediction.key);
      else if (!stepped.has(o.prediction.key)) repeats.push(i);
    }
    if (repeats.length === 0) return outcomes;
    const keys = repeats.map((i) => (answered[i] as Extract<Outcome, { kind: 'prediction' }>).prediction.key);
    const records = await this.states.store(primary).getMany(keys);
    const byShadow = new Map(shadows.map(([name, out]) => [name, perEvent(out)]));
    const replaced = new Map<Outcome, Outcome>();
    repeats.forEach((i, r) => {
      const at = records[r]?.lastApplied;
      if (at?.kind !== 'line' || at.file !== POSITION_FILE) return;
      const owner = primaryAt(meta, at.line);
      const theirs = owner === primary ? undefined : byShadow.get(owner)?.[i];
      if (theirs?.kind === 'prediction' && theirs.redelivered) replaced.set(answered[i], theirs);
    });
    return replaced.size === 0 ? outcomes : outcomes.map((o) => replaced.get(o) ?? o);
  }

  private onlyShadow(): string | undefined {
    const shadows = [...this.models.keys()].filter((n) => n !== this.meta.primary);
    return shadows.length === 1 ? shadows[0] : undefined;
  }
}

/**
 * The file name of the positions a `RolloutStepper` gives events that come without one (`serve`'s
 * WebSocket events): line N is the event stepped after N others, over every run. Recorded as each
 * key's `lastApplied`, it says which model was primary when the key's last event was applied.
 */
export const POSITION_FILE = 'cellstream:serve-events';

function withPositions(batch: readonly Envelope[], first: number): readonly Envelope[] {
  if (!batch.some((e) => e.position.kind === 'none')) return batch;
  return batch.map((e, i) =>
    e.position.kind === 'none'
      ? ({ ...e, position: { kind: 'line', file: POSITION_FILE, line: first + i } } as Envelope)
      : e,
  );
}

/** The model the switch record names primary at event position `at`. */
export function primaryAt(meta: RolloutMeta, at: number): string {
  let primary: string | undefined;
  for (const s of meta.switches) {
    if (s.at <= at) primary = s.primary;
    else {
      primary ??= s.previous;
      break;
    }
  }
  return primary ?? meta.primary;
}

/** An engine's outcomes without its reports about stored state: one per event, in batch order. */
export function perEvent(outcomes: readonly Outcome[]): Outcome[] {
  return outcomes.filter((o) => o.kind !== 'state-reset' && o.kind !== 'expired');
}

/** How far a shadow's outputs are from the primary's, over the events both predicted. */
export interface DivergenceSnapshot {
  readonly primary: string;
  readonly shadow: string;
  /** Events both models predicted. */
  readonly events: number;
  /** Mean absolute difference over every output value of those events. */
  readonly meanAbsDiff: number;
  readonly maxAbsDiff: number;
  /** Share of those events whose decoded labels agree (classifiers only), else undefined. */
  readonly labelAgreement: number | undefined;
}

/** Running divergence of one primary–shadow pair. */
export class Divergence {
  private events = 0;
  private values = 0;
  private sum = 0;
  private max = 0;
  private labelled = 0;
  private agreed = 0;

  constructor(
    readonly primary: string,
    readonly shadow: string,
  ) {}

  /** Adds one batch: the two models' per-event outcomes, in the same order. */
  add(primary: readonly Outcome[], shadow: readonly Outcome[]): void {
    const n = Math.min(primary.length, shadow.length);
    for (let i = 0; i < n; i++) {
      const p = primary[i];
      const s = shadow[i];
      if (p.kind !== 'prediction' || s.kind !== 'prediction' || p.redelivered || s.redelivered) continue;
      this.addPair(p.prediction, s.prediction);
    }
  }

  private addPair(p: Prediction, s: Prediction): void {
    const a = p.output;
    const b = s.output;
    const m = Math.min(a.length, b.length);
    this.events++;
    for (let k = 0; k < m; k++) {
      const d = Math.abs(a[k] - b[k]);
      this.sum += d;
      if (d > this.max) this.max = d;
    }
    this.values += m;
    const la = (p as { label?: unknown }).label;
    const lb = (s as { label?: unknown }).label;
    if (la !== undefined && lb !== undefined) {
      this.labelled++;
      if (la === lb) this.agreed++;
    }
  }

  snapshot(): DivergenceSnapshot {
    return {
      primary: this.primary,
      shadow: this.shadow,
      events: this.events,
      meanAbsDiff: this.values === 0 ? 0 : this.sum / this.values,
      maxAbsDiff: this.max,
      labelAgreement: this.labelled === 0 ? undefined : this.agreed / this.labelled,
    };
  }
}
