import { Subject, type Subscription } from 'rxjs';
import { KeyedStepper, type KeyedStepperOptions } from '../engine/keyedStepper.js';
import { stepByKey } from '../engine/stepByKey.js';
import type { Envelope, Outcome } from '../engine/types.js';
import { ServerUnavailableError } from '../errors.js';
import type { Event, Prediction } from '../events/types.js';
import { Fifo } from './fifo.js';

/** What became of one submitted event: the engine's outcome, or why the engine could not take it. */
export type Result =
  | Exclude<Outcome, { kind: 'state-reset' | 'expired' }>
  | { readonly kind: 'unavailable'; readonly error: ServerUnavailableError };

export interface PipelineHooks {
  /** A micro-batch of `size` events was applied in `seconds`. */
  onBatch?(size: number, seconds: number): void;
  /** An event's result, `seconds` after it was submitted. */
  onResult?(result: Result, seconds: number): void;
  /** A key's stored state was discarded: model mismatch under the `reset` policy, or its TTL passed. */
  onStateReset?(key: string, reason: string): void;
  /** The engine failed (a store error); the events in flight were answered `unavailable`. */
  onFailure?(err: unknown): void;
}

/** What the pipeline steps events with: a `KeyedStepper`, or several models' `RolloutStepper`. */
export interface StepEngine {
  process(batch: readonly Envelope[]): Promise<Outcome[]>;
  close(): Promise<void>;
  /** The label of the model whose predictions answer events. */
  readonly modelLabel: string;
}

export interface PipelineOptions {
  /** A `KeyedStepper` is built from these options, unless `engine` is given. */
  readonly stepper: KeyedStepperOptions | StepEngine;
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly hooks?: PipelineHooks;
}

interface Ticket {
  readonly submitted: number;
  readonly done: (result: Result) => void;
}

/**
 * The one engine every live source feeds: a single `KeyedStepper` behind `stepByKey`, so events of
 * all connections are micro-batched together and each key's events are applied in the order they
 * were submitted, whichever connection sent them. The engine emits exactly one outcome per event,
 * in submission order, so results are routed back by a queue of tickets kept in the same order.
 */
export class EnginePipeline {
  readonly stepper: StepEngine;
  private readonly input = new Subject<Envelope>();
  private readonly tickets = new Fifo<Ticket>();
  private readonly listeners = new Set<(prediction: Prediction) => void>();
  private readonly hooks: PipelineHooks;
  private subscription: Subscription | undefined;
  private closed = false;
  private idle: Array<() => void> = [];

  constructor(private readonly options: PipelineOptions) {
    this.hooks = options.hooks ?? {};
    const onBatch = this.hooks.onBatch;
    const given = options.stepper;
    if ('process' in given) this.stepper = onBatch ? timed(given, onBatch) : given;
    else this.stepper = onBatch ? new TimedStepper(given, onBatch) : new KeyedStepper(given);
    this.start();
  }

  /** Events submitted and not yet answered. */
  get inFlight(): number {
    return this.tickets.length;
  }

  /**
   * Queues `event` for the engine; `done` is called once with its result. After `drain` has been
   * called, events are answered `unavailable` at once.
   */
  submit(event: Event, done: (result: Result) => void): void {
    if (this.closed) {
      done({ kind: 'unavailable', error: new ServerUnavailableError('the server is shutting down') });
      return;
    }
    this.tickets.push({ submitted: performance.now(), done });
    this.input.next({ event, position: { kind: 'none' } });
  }

  /** Calls `listener` with every new prediction, after the submitter's `done`. Returns an unsubscribe. */
  onPrediction(listener: (prediction: Prediction) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops taking events and resolves once every event already submitted has been answered. */
  async drain(): Promise<void> {
    this.closed = true;
    if (this.tickets.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    this.subscription?.unsubscribe();
    this.input.complete();
    await this.stepper.close();
  }

  private start(): void {
    this.subscription = this.input
      .pipe(stepByKey(this.stepper, { maxBatch: this.options.maxBatch, maxDelayMs: this.options.maxDelayMs }))
      .subscribe({
        next: (outcome) => this.route(outcome),
        error: (err) => this.fail(err),
      });
  }

  private route(outcome: Outcome): void {
    if (outcome.kind === 'state-reset' || outcome.kind === 'expired') {
      this.hooks.onStateReset?.(outcome.key, outcome.reason);
      return;
    }
    const ticket = this.tickets.shift();
    if (!ticket) throw new Error('engine emitted more outcomes than events were submitted');
    this.settle(ticket, outcome);
    // A redelivery's prediction was published when the event was first applied.
    if (outcome.kind === 'prediction' && !outcome.redelivered) {
      for (const listener of this.listeners) listener(outcome.prediction);
    }
    this.notifyIdle();
  }

  /**
   * A failed batch ends the RxJS stream and with it whatever was still buffered: every open ticket
   * belongs to an event that will never be applied, so all are answered, and a fresh stream starts.
   */
  private fail(err: unknown): void {
    this.hooks.onFailure?.(err);
    const error = new ServerUnavailableError(
      `the engine failed and did not apply this event: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
    for (const ticket of this.tickets.drain()) this.settle(ticket, { kind: 'unavailable', error });
    this.notifyIdle();
    if (!this.closed) this.start();
  }

  private settle(ticket: Ticket, result: Result): void {
    this.hooks.onResult?.(result, (performance.now() - ticket.submitted) / 1000);
    ticket.done(result);
  }

  private notifyIdle(): void {
    if (this.tickets.length > 0 || this.idle.length === 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }
}

/** A `KeyedStepper` that reports each batch's size and duration, for the metrics. */
class TimedStepper extends KeyedStepper {
  constructor(
    options: KeyedStepperOptions,
    private readonly onBatch: (size: number, seconds: number) => void,
  ) {
    super(options);
  }

  override async process(batch: Parameters<KeyedStepper['process']>[0]): ReturnType<KeyedStepper['process']> {
    const start = performance.now();
    const outcomes = await super.process(batch);
    this.onBatch(batch.length, (performance.now() - start) / 1000);
    return outcomes;
  }
}

/** An engine that reports each batch's size and duration, for the metrics. */
function timed(engine: StepEngine, onBatch: (size: number, seconds: number) => void): StepEngine {
  return {
    async process(batch) {
      const start = performance.now();
      const outcomes = await engine.process(batch);
      onBatch(batch.length, (performance.now() - start) / 1000);
      return outcomes;
    },
    close: () => engine.close(),
    get modelLabel() {
      return engine.modelLabel;
    },
  };
}
