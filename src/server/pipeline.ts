import { KeyedStepper, type KeyedStepperOptions } from '../engine/keyedStepper.js';
import type { Envelope, Outcome } from '../engine/types.js';
import { ServerUnavailableError } from '../errors.js';
import type { Event, Position, Prediction } from '../events/types.js';
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
  /**
   * A submitter's `done`, a prediction listener or one of these hooks threw. The pipeline goes on
   * with the next callback: one connection's or subscriber's fault must not stop the answers of
   * the others.
   */
  onCallbackError?(err: unknown): void;
}

/** What the pipeline steps events with: a `KeyedStepper`, or several models' `RolloutStepper`. */
export interface StepEngine {
  process(batch: readonly Envelope[]): Promise<Outcome[]>;
  close(): Promise<void>;
  /** The label of the model whose predictions answer events. */
  readonly modelLabel: string;
}

export interface PipelineOptions {
  /** A `KeyedStepper` is built from these options, unless a `StepEngine` is given. */
  readonly stepper: KeyedStepperOptions | StepEngine;
  /** Most events per micro-batch. */
  readonly maxBatch: number;
  /**
   * How long an event that finds the engine idle waits for others to join its batch; 0 starts
   * the batch at the end of the event loop turn that brought the event. Events that arrive while
   * a batch is being applied wait for it anyway (see `EnginePipeline`), whatever this says.
   */
  readonly maxDelayMs: number;
  readonly hooks?: PipelineHooks;
}

interface Ticket {
  readonly submitted: number;
  readonly done: (result: Result) => void;
}

/**
 * The one engine every live source feeds: a single `KeyedStepper`, so events of all connections
 * are micro-batched together and each key's events are applied in the order they were submitted,
 * whichever connection sent them. The engine emits exactly one outcome per event, in submission
 * order, so results are routed back by a queue of tickets kept in the same order.
 *
 * Batches form by group commit: one batch is applied at a time (its state written and, for LMDB,
 * flushed to disk in one transaction), and the events that arrive meanwhile, from every
 * connection, gather for the next one, up to `maxBatch`. So a lone event waits for no timer, and
 * under load one flush serves many events.
 */
export class EnginePipeline {
  readonly stepper: StepEngine;
  private readonly tickets = new Fifo<Ticket>();
  /** Events submitted and not yet in a batch, in submission order. */
  private readonly waiting = new Fifo<Envelope>();
  private readonly listeners = new Set<(prediction: Prediction) => void>();
  private readonly hooks: PipelineHooks;
  /** A batch is being applied, or one is about to start (`startSoon`). */
  private busy = false;
  private closed = false;
  private idle: Array<() => void> = [];

  constructor(private readonly options: PipelineOptions) {
    this.hooks = options.hooks ?? {};
    const onBatch = this.hooks.onBatch;
    const given = options.stepper;
    if ('process' in given) this.stepper = onBatch ? timed(given, onBatch) : given;
    else this.stepper = onBatch ? new TimedStepper(given, onBatch) : new KeyedStepper(given);
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
    this.waiting.push({ event, position: NO_POSITION });
    if (!this.busy) this.startSoon();
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
    await this.stepper.close();
  }

  /** Starts applying batches once the events of this turn (or of `maxDelayMs`) have gathered. */
  private startSoon(): void {
    this.busy = true;
    // `run` catches what it can; a throw that still escapes would otherwise end the process as an
    // unhandled rejection and leave `busy` set, so that no event is ever answered again.
    const go = () => {
      this.run().catch((err: unknown) => {
        this.busy = false;
        this.fail(err);
      });
    };
    if (this.options.maxDelayMs > 0) setTimeout(go, this.options.maxDelayMs);
    else setImmediate(go);
  }

  /** Applies batches of the waiting events, one after another, until none are left. */
  private async run(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.take(this.options.maxBatch);
      let outcomes: Outcome[];
      try {
        outcomes = await this.stepper.process(batch);
      } catch (err) {
        this.fail(err);
        continue;
      }
      // One clock reading for the batch: its events' results are all known at this moment.
      const now = performance.now();
      try {
        for (const outcome of outcomes) this.route(outcome, now);
      } catch (err) {
        // A hook that threw, or outcomes that do not match the events: the tickets left can no
        // longer be matched to their events, so each is answered unavailable rather than wrongly.
        this.fail(err);
      }
    }
    this.busy = false;
  }

  private route(outcome: Outcome, now: number): void {
    if (outcome.kind === 'state-reset' || outcome.kind === 'expired') {
      const onStateReset = this.hooks.onStateReset;
      if (onStateReset) this.callSafely(() => onStateReset(outcome.key, outcome.reason), undefined);
      return;
    }
    const ticket = this.tickets.shift();
    if (!ticket) throw new Error('engine emitted more outcomes than events were submitted');
    this.settle(ticket, outcome, now);
    // A redelivery's prediction was published when the event was first applied.
    if (outcome.kind === 'prediction' && !outcome.redelivered) {
      for (const listener of this.listeners) this.callSafely(listener, outcome.prediction);
    }
    this.notifyIdle();
  }

  /**
   * A failed batch fails the events waiting behind it too (they may depend on its state): every
   * open ticket belongs to an event that will never be applied, so all are answered, and the
   * pipeline takes new events as before.
   */
  private fail(err: unknown): void {
    const onFailure = this.hooks.onFailure;
    // Called from `run`'s own catch: a throw here would leave every open ticket unanswered.
    if (onFailure) this.callSafely(() => onFailure(err), undefined);
    const error = new ServerUnavailableError(
      `the engine failed and did not apply this event: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
    this.waiting.drain();
    const now = performance.now();
    for (const ticket of this.tickets.drain()) this.settle(ticket, { kind: 'unavailable', error }, now);
    this.notifyIdle();
  }

  private settle(ticket: Ticket, result: Result, now: number): void {
    const onResult = this.hooks.onResult;
    // A metrics hook that throws must not cost the submitter its answer.
    if (onResult) this.callSafely(() => onResult(result, (now - ticket.submitted) / 1000), undefined);
    this.callSafely(ticket.done, result);
  }

  /** Runs a caller's callback or a hook so that its throw reaches `onCallbackError`, not the batch loop. */
  private callSafely<T>(callback: (value: T) => void, value: T): void {
    try {
      callback(value);
    } catch (err) {
      try {
        this.hooks.onCallbackError?.(err);
      } catch {
        // The hook is the last place to report to; nothing is left to tell.
      }
    }
  }

  private notifyIdle(): void {
    if (this.tickets.length > 0 || this.idle.length === 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }
}

const NO_POSITION: Position = { kind: 'none' };

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
