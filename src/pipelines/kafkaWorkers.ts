import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  CellstreamError,
  ConfigError,
  type ErrorCode,
  KafkaConsumerLostError,
  KafkaWorkerCrashedError,
  StateError,
} from '../errors.js';
import { KAFKA_SOURCE_DEFAULTS } from '../sources/kafkaSource.js';
import type { RestoreReport, UnreadableChangelogRecord } from '../state/changelogStore.js';
import type { StateRecord, StateStore } from '../state/types.js';
import { KAFKA_WORKERS } from './commitDefaults.js';
import type { KafkaHealthSnapshot, KafkaHealthView } from './kafkaHealth.js';
import {
  emptyPipelineStats,
  type KafkaBatchReport,
  type KafkaPipeline,
  type KafkaPipelineOptions,
  type KafkaPipelineStats,
  startKafkaPipeline,
} from './kafkaPipeline.js';

export { KAFKA_WORKERS };

/**
 * One instance of the Kafka pipeline as `cellstream kafka` and `serve` see it: one pipeline on the
 * main thread (`workers` 1), or several group members on worker threads answering as one.
 */
export interface KafkaInstance {
  readonly stats: Readonly<KafkaPipelineStats>;
  /** The `model` field of its predictions. */
  readonly modelLabel: string;
  readonly groupId: string;
  /** Group members it runs (worker threads when above 1). */
  readonly workers: number;
  /** Whether every member is in the group. */
  readonly joined: () => boolean;
  /** Input partitions its members own, together. */
  readonly partitions: () => readonly number[];
  /** The health of the whole instance: ready only when every member is. */
  readonly health: KafkaHealthView;
  /** Rejects once a consumer is lost for good (`KafkaConsumerLostError`) or a worker crashed (`KafkaWorkerCrashedError`). */
  readonly lost: Promise<never>;
  /** The state of `keys` whose partitions a member owns (undefined for the others, which may be stale here). */
  lookup(keys: readonly string[]): Promise<(StateRecord | undefined)[]>;
  /** Keys held in local state, every member's together. */
  size(): Promise<number>;
  /** Every member stops fetching, finishes its batch in flight, makes its state durable, commits and leaves. */
  stop(): Promise<void>;
  /** With one member: its state store on this thread (LMDB behind the changelog); absent with worker threads. */
  readonly store?: StateStore;
}

export interface KafkaInstanceOptions extends KafkaPipelineOptions {
  /** Group members in this process, each on its own worker thread when above 1. Default 1. */
  readonly workers?: number;
  /** Called once when a worker thread ended on an uncaught error (then `lost` rejects with it). */
  readonly onWorkerCrash?: (error: KafkaWorkerCrashedError) => void;
}

/** The records of `keys` in `pipeline`'s state, kept only for the partitions it owns. */
export async function ownedRecords(
  pipeline: KafkaPipeline,
  keys: readonly string[],
): Promise<(StateRecord | undefined)[]> {
  const records = await pipeline.store.getMany(keys);
  const owned = new Set(pipeline.partitions());
  return records.map((r, i) => (owned.has(pipeline.store.partitionOf(keys[i], r)) ? r : undefined));
}

/** A pipeline on this thread, as an instance of one member: the code path of `workers` 1. */
export function singleInstance(pipeline: KafkaPipeline): KafkaInstance {
  return {
    stats: pipeline.stats,
    modelLabel: pipeline.modelLabel,
    groupId: pipeline.groupId,
    workers: 1,
    joined: pipeline.joined,
    partitions: pipeline.partitions,
    health: pipeline.health,
    lost: pipeline.lost,
    store: pipeline.store,
    lookup: (keys) => ownedRecords(pipeline, keys),
    size: () => pipeline.store.size(),
    stop: () => pipeline.stop(),
  };
}

/** Checks `workers` (1..64, an integer); a library caller's mistake is a `ConfigError`. */
export function checkWorkers(workers: number): number {
  if (!Number.isInteger(workers) || workers < KAFKA_WORKERS.min || workers > KAFKA_WORKERS.max) {
    throw new ConfigError(
      `kafka workers must be an integer from ${KAFKA_WORKERS.min} to ${KAFKA_WORKERS.max}, got ${workers}; about one per core is the most that helps`,
    );
  }
  return workers;
}

/**
 * Starts the Kafka pipeline as `options.workers` members of its consumer group in this process: one
 * on this thread when 1 (no worker thread at all), else one per worker thread, each with its own
 * consumer, producers, changelog reader and LMDB directory (`<stateDir>/worker-<i>`). Resolves once
 * every member has joined and restored.
 */
export async function startKafkaInstance(options: KafkaInstanceOptions): Promise<KafkaInstance> {
  const workers = checkWorkers(options.workers ?? KAFKA_WORKERS.default);
  if (workers === 1) return singleInstance(await startKafkaPipeline(options));
  return startKafkaWorkers(options, workers);
}

/** The options a worker thread gets: the plain data of `KafkaPipelineOptions` (callbacks stay here). */
export type WorkerPipelineOptions = Omit<
  KafkaPipelineOptions,
  | 'healthObserver'
  | 'onStall'
  | 'onStallEnd'
  | 'onRejoin'
  | 'onConsumerRetry'
  | 'onLost'
  | 'onRestore'
  | 'onBatch'
  | 'onStandbyError'
  | 'onStandbyUnreadable'
  | 'onModelMismatch'
> & { readonly onModelMismatch?: 'reset' | 'refuse' };

export interface WorkerData {
  readonly index: number;
  readonly options: WorkerPipelineOptions;
  /** Whether batch reports carry their predictions (serve's subscribers want them; `cellstream kafka` counts only). */
  readonly predictions: boolean;
}

/** Main thread → worker. */
export type ToWorker =
  | { readonly t: 'getMany'; readonly id: number; readonly keys: readonly string[] }
  | { readonly t: 'size'; readonly id: number }
  | { readonly t: 'drain' }
  | { readonly t: 'stop' };

/** Worker → main thread. */
export type FromWorker =
  | { readonly t: 'started'; readonly modelLabel: string }
  | { readonly t: 'failed'; readonly code?: string; readonly name: string; readonly message: string }
  | { readonly t: 'health'; readonly snapshot: KafkaHealthSnapshot; readonly joined: boolean }
  | { readonly t: 'batch'; readonly report: KafkaBatchReport }
  | { readonly t: 'restore'; readonly reports: readonly RestoreReport[]; readonly ms: number }
  | {
      readonly t: 'observe';
      readonly kind: 'rebalance' | 'crash' | 'rejoin' | 'resync';
      readonly restart?: boolean;
    }
  | {
      readonly t: 'observe';
      readonly kind: 'restore';
      readonly seconds: number;
      readonly records: number;
      readonly unreadable: number;
    }
  | { readonly t: 'stall'; readonly message?: string }
  | { readonly t: 'rejoin'; readonly attempt: number; readonly message: string }
  | { readonly t: 'retry'; readonly repeats: number; readonly message: string }
  | { readonly t: 'lost'; readonly message: string }
  | { readonly t: 'standby-error'; readonly partition: number; readonly message: string }
  | { readonly t: 'standby-unreadable'; readonly records: readonly UnreadableChangelogRecord[] }
  | {
      readonly t: 'reply';
      readonly id: number;
      readonly value?: unknown;
      readonly error?: { readonly code?: string; readonly name: string; readonly message: string };
    }
  | { readonly t: 'drained' }
  | { readonly t: 'stopped'; readonly error?: string };

/** The compiled worker script; under the TypeScript sources (tests), the built one in dist/. */
function workerScript(): URL {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return new URL('./kafkaWorker.js', import.meta.url);
  const built = join(here, '..', '..', '..', 'dist', 'pipelines', 'kafkaWorker.js');
  if (!existsSync(built))
    throw new Error(`Kafka workers need the built worker script ${built}: npm run build`);
  return new URL(`file://${built}`);
}

/** A worker's error, rebuilt on this thread with its code (a `ConfigError` stays `CONFIG_INVALID`). */
function rebuilt(m: { code?: string; name: string; message: string }): Error {
  // A state error stays one, so that /v1/keys answers a corrupt record as it does on one thread.
  const error: Error =
    m.code === undefined
      ? new Error(m.message)
      : m.code.startsWith('STATE_')
        ? new StateError(m.code as ErrorCode, m.message)
        : new CellstreamError(m.code as ErrorCode, m.message);
  error.name = m.name;
  return error;
}

/**
 * How long a stopping worker may take to drain, and then to stop, before it is given up on (then
 * terminated), beyond twice the session timeout: a member leaving while its sibling's group is
 * rebalancing waits out the join (up to kafkajs's 60 s rebalance timeout); a stop of two members
 * under load took over 30 s in CI.
 */
export const WORKER_STOP_GRACE_MS = 60_000;

/** The bound on each of a worker's drain and stop (`WORKER_STOP_GRACE_MS`). */
export function workerStopTimeoutMs(sessionTimeout: number): number {
  return 2 * sessionTimeout + WORKER_STOP_GRACE_MS;
}

interface Member {
  readonly index: number;
  readonly worker: Worker;
  snapshot: KafkaHealthSnapshot | undefined;
  /** When `snapshot` arrived (`Date.now()`). */
  at: number;
  joined: boolean;
  exited: boolean;
  readonly exit: Promise<void>;
  readonly pending: Map<number, { resolve(value: unknown): void; reject(error: Error): void }>;
  drained?: () => void;
  stopped?: (error: string | undefined) => void;
}

/**
 * Runs `count` pipelines on worker threads (see `startKafkaInstance`). A worker that ends on an
 * uncaught error fails the instance: `lost` rejects with `KafkaWorkerCrashedError`, so the process
 * stops its other workers gracefully and exits non-zero, and its supervisor restarts it whole.
 */
async function startKafkaWorkers(options: KafkaInstanceOptions, count: number): Promise<KafkaInstance> {
  const {
    healthObserver,
    onStall,
    onStallEnd,
    onRejoin,
    onConsumerRetry,
    onLost,
    onRestore,
    onBatch,
    onStandbyError,
    onStandbyUnreadable,
    onWorkerCrash,
    workers: _workers,
    ...data
  } = options;
  const stats = emptyPipelineStats();
  const groupId = options.groupId;
  const clientId = options.clientId ?? `cellstream-${groupId}`;
  let failure: CellstreamError | undefined;
  let stopping = false;
  let reportLost: (err: Error) => void = () => {};
  const lost = new Promise<never>((_, reject) => {
    reportLost = reject;
  });
  lost.catch(() => {});
  // Stalls are reported per worker; the instance is stalled while any worker is.
  const stalledWorkers = new Set<number>();
  let nextId = 0;
  let modelLabel = '';
  const script = workerScript();

  const fail = (member: Member, error: Error) => {
    for (const p of member.pending.values()) p.reject(error);
    member.pending.clear();
    if (stopping || failure) return;
    failure = new KafkaWorkerCrashedError(
      `Kafka worker ${member.index} of ${count} (consumer group '${groupId}') crashed: ${error.message}. ` +
        'The other workers stop gracefully (state durable, offsets committed) and the process exits non-zero: ' +
        "let its supervisor restart it; the crashed worker's partitions are redelivered from their last commit",
      { cause: error },
    );
    onWorkerCrash?.(failure);
    reportLost(failure);
  };

  const spawnMember = (index: number): { member: Member; started: Promise<void> } => {
    const workerData: WorkerData = {
      index,
      predictions: onBatch !== undefined,
      options: {
        ...data,
        stateDir: join(options.stateDir, `worker-${index}`),
        clientId: `${clientId}-worker-${index}`,
      },
    };
    const worker = new Worker(script, { workerData });
    let resolveStarted: () => void = () => {};
    let rejectStarted: (err: Error) => void = () => {};
    let startedYet = false;
    const started = new Promise<void>((resolve, reject) => {
      resolveStarted = resolve;
      rejectStarted = reject;
    });
    let exited: () => void = () => {};
    const member: Member = {
      index,
      worker,
      snapshot: undefined,
      at: 0,
      joined: false,
      exited: false,
      exit: new Promise<void>((resolve) => {
        exited = resolve;
      }),
      pending: new Map(),
    };
    worker.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'started':
          modelLabel = m.modelLabel;
          startedYet = true;
          resolveStarted();
          break;
        case 'failed':
          rejectStarted(rebuilt(m));
          break;
        case 'health':
          member.snapshot = m.snapshot;
          member.joined = m.joined;
          member.at = Date.now();
          stats.standbyRecords = members.reduce((n, w) => n + (w.snapshot?.standbyRecords ?? 0), 0);
          break;
        case 'batch': {
          const r = m.report;
          stats.predictions += r.predictions;
          stats.rejected += r.rejected.length;
          stats.duplicates += r.duplicates;
          stats.batches++;
          try {
            onBatch?.(r);
          } catch {}
          break;
        }
        case 'restore':
          stats.restoredRecords += m.reports.reduce((n, r) => n + r.records, 0);
          onRestore?.(m.reports, m.ms);
          break;
        case 'observe':
          if (m.kind === 'restore') healthObserver?.restore?.(m.seconds, m.records, m.unreadable);
          else if (m.kind === 'crash') healthObserver?.crash?.(m.restart ?? false);
          else healthObserver?.[m.kind]?.();
          break;
        case 'stall':
          if (m.message !== undefined) {
            if (stalledWorkers.size === 0) onStall?.(`worker ${index}: ${m.message}`);
            stalledWorkers.add(index);
          } else {
            stalledWorkers.delete(index);
            if (stalledWorkers.size === 0) onStallEnd?.();
          }
          break;
        case 'standby-error':
          onStandbyError?.(m.partition, new Error(`worker ${index}: ${m.message}`));
          break;
        case 'standby-unreadable':
          onStandbyUnreadable?.(m.records);
          break;
        case 'rejoin':
          onRejoin?.(m.attempt, new Error(`worker ${index}: ${m.message}`));
          break;
        case 'retry':
          onConsumerRetry?.(new Error(`worker ${index}: ${m.message}`), m.repeats);
          break;
        case 'lost': {
          const error = new KafkaConsumerLostError(`worker ${index} of ${count}: ${m.message}`);
          onLost?.(error);
          if (!failure) {
            failure = error;
            reportLost(error);
          }
          break;
        }
        case 'reply': {
          const p = member.pending.get(m.id);
          member.pending.delete(m.id);
          if (m.error !== undefined) p?.reject(rebuilt(m.error));
          else p?.resolve(m.value);
          break;
        }
        case 'drained':
          member.drained?.();
          break;
        case 'stopped':
          member.stopped?.(m.error);
          break;
      }
    });
    worker.on('error', (error) => {
      if (!startedYet) rejectStarted(error);
      fail(member, error);
    });
    worker.on('exit', (code) => {
      member.exited = true;
      member.joined = false;
      // Look-ups it will never answer.
      for (const p of member.pending.values()) p.reject(new Error(`Kafka worker ${index} has ended`));
      member.pending.clear();
      exited();
      if (!startedYet)
        rejectStarted(new Error(`Kafka worker ${index} exited with code ${code} while starting`));
      else if (!stopping) fail(member, new Error(`the worker thread exited with code ${code}`));
      member.drained?.();
      member.stopped?.(undefined);
    });
    return { member, started };
  };

  const spawned = Array.from({ length: count }, (_, i) => spawnMember(i));
  const members = spawned.map((s) => s.member);

  const stopTimeoutMs = workerStopTimeoutMs(options.sessionTimeout ?? KAFKA_SOURCE_DEFAULTS.sessionTimeout);

  const request = <T>(member: Member, message: { t: 'getMany'; keys: readonly string[] } | { t: 'size' }) =>
    new Promise<T>((resolve, reject) => {
      if (member.exited) {
        reject(new Error(`Kafka worker ${member.index} has ended`));
        return;
      }
      const id = nextId++;
      member.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      member.worker.postMessage({ ...message, id } satisfies ToWorker);
    });

  /**
   * Has a worker commit what it holds, still in the group; resolves at once for one that has ended,
   * and after `workerStopTimeoutMs` for one that does not answer (its stop then ends it).
   */
  const drainMember = async (member: Member): Promise<void> => {
    if (member.exited) return;
    const drained = new Promise<void>((resolve) => {
      member.drained = resolve;
    });
    member.worker.postMessage({ t: 'drain' } satisfies ToWorker);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, stopTimeoutMs);
    });
    await Promise.race([drained, late]);
    clearTimeout(timer);
  };

  /**
   * Stops a worker's pipeline and waits for its thread to end; one that has not ended after
   * `workerStopTimeoutMs` (its stop stuck, or a handle left open) is terminated, so that no
   * worker keeps the process from exiting. What it held is redelivered, as after a crash.
   */
  const stopMember = async (member: Member): Promise<string | undefined> => {
    if (member.exited) return undefined;
    let error: string | undefined;
    const stopped = new Promise<void>((resolve) => {
      member.stopped = (e) => {
        error ??= e;
        resolve();
      };
    });
    member.worker.postMessage({ t: 'stop' } satisfies ToWorker);
    const stuck = setTimeout(() => {
      error ??= `worker ${member.index} did not stop within ${stopTimeoutMs} ms and was terminated`;
      void member.worker.terminate();
    }, stopTimeoutMs);
    await stopped;
    clearTimeout(stuck);
    // Its pipeline is stopped and its port closed; a handle left open must not keep this process alive.
    const lingering = setTimeout(() => void member.worker.terminate(), 10_000);
    await member.exit;
    clearTimeout(lingering);
    return error;
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      // Every worker commits what it holds before any leaves the group (see `KafkaSource.drain`).
      await Promise.all(members.map(drainMember));
      const errors = (await Promise.all(members.map(stopMember))).filter((e) => e !== undefined);
      if (errors.length > 0) throw new Error(`Kafka workers failed to stop cleanly: ${errors.join('; ')}`);
    })();
    return stopped;
  };

  const starts = await Promise.allSettled(spawned.map((s) => s.started));
  const refused = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (refused) {
    await stop().catch(() => {});
    throw refused.reason;
  }

  const age = (m: Member) => (Date.now() - m.at) / 1000;
  const health: KafkaHealthView = {
    notReadyReason(group) {
      if (failure) return failure.message;
      for (const m of members) {
        if (!m.snapshot) return `worker ${m.index} of ${count} is starting`;
        if (m.snapshot.reason !== undefined) return `worker ${m.index} of ${count}: ${m.snapshot.reason}`;
      }
      void group;
      return undefined;
    },
    stalled: () => members.some((m) => m.snapshot?.stalled ?? false),
    brokerConnected: () => members.every((m) => m.snapshot?.brokerConnected ?? false),
    secondsSinceLastCommit() {
      let least: number | null = null;
      for (const m of members) {
        const s = m.snapshot?.secondsSinceLastCommit;
        if (s === null || s === undefined) continue;
        least = Math.min(least ?? Number.POSITIVE_INFINITY, s + age(m));
      }
      return least;
    },
    snapshot(group) {
      const reason = health.notReadyReason(group);
      const snapshots = members.flatMap((m) => (m.snapshot ? [m.snapshot] : []));
      const lag: Record<string, number> = {};
      for (const s of snapshots) Object.assign(lag, s.lag);
      const sum = (f: (s: KafkaHealthSnapshot) => number) => snapshots.reduce((n, s) => n + f(s), 0);
      const restoreSeconds = snapshots.flatMap((s) =>
        s.lastRestoreSeconds === null ? [] : [s.lastRestoreSeconds],
      );
      return {
        ready: reason === undefined,
        reason,
        member: members.every((m) => m.snapshot?.member ?? false),
        restoring: snapshots.some((s) => s.restoring),
        stalled: health.stalled(),
        brokerConnected: health.brokerConnected(),
        partitions: instancePartitions(),
        lag: Object.fromEntries(Object.entries(lag).sort(([a], [b]) => Number(a) - Number(b))),
        totalLag: sum((s) => s.totalLag),
        secondsSinceLastCommit: health.secondsSinceLastCommit(),
        rebalances: sum((s) => s.rebalances),
        crashes: sum((s) => s.crashes),
        rejoins: sum((s) => s.rejoins),
        restores: sum((s) => s.restores),
        resyncs: sum((s) => s.resyncs),
        lastRestoreSeconds: restoreSeconds.length === 0 ? null : Math.max(...restoreSeconds),
        ...standbyOfInstance(snapshots, instancePartitions()),
        workers: members.map((m) => m.snapshot ?? null),
      };
    },
  };
  // During a rebalance a worker's last report may still list a partition another one now owns.
  const instancePartitions = () =>
    [...new Set(members.flatMap((m) => (m.exited ? [] : (m.snapshot?.partitions ?? []))))].sort(
      (a, b) => a - b,
    );

  return {
    stats,
    modelLabel,
    groupId,
    workers: count,
    joined: () => members.every((m) => m.joined && !m.exited),
    partitions: instancePartitions,
    health,
    lost,
    async lookup(keys) {
      const live = members.filter((m) => !m.exited);
      const answers = await Promise.all(
        live.map((m) => request<(StateRecord | undefined)[]>(m, { t: 'getMany', keys })),
      );
      // Each worker answers only for partitions it owns; during a rebalance two may, for a moment.
      return keys.map((_, i) => answers.find((a) => a[i] !== undefined)?.[i]);
    },
    async size() {
      const live = members.filter((m) => !m.exited);
      return (await Promise.all(live.map((m) => request<number>(m, { t: 'size' })))).reduce(
        (n, s) => n + s,
        0,
      );
    },
    stop,
  };
}

/**
 * The instance's standby view from its workers': each worker follows every partition it does not
 * own, its siblings' included, so the instance's standby partitions are those no worker owns, and
 * for each the worst worker's copy is reported (the partition may land on any of them).
 */
export function standbyOfInstance(snapshots: readonly KafkaHealthSnapshot[], owned: readonly number[]) {
  const ownedSet = new Set(owned);
  const followed = new Set<number>();
  const standbyLag: Record<string, number> = {};
  const standbyOffsets: Record<string, string> = {};
  for (const s of snapshots) {
    for (const p of s.standbyPartitions) if (!ownedSet.has(p)) followed.add(p);
  }
  for (const s of snapshots) {
    for (const [p, lag] of Object.entries(s.standbyLag)) {
      if (followed.has(Number(p))) standbyLag[p] = Math.max(standbyLag[p] ?? 0, lag);
    }
    for (const [p, next] of Object.entries(s.standbyOffsets)) {
      const known = standbyOffsets[p];
      if (followed.has(Number(p)) && (known === undefined || BigInt(next) < BigInt(known)))
        standbyOffsets[p] = next;
    }
  }
  return {
    standbyPartitions: [...followed].sort((a, b) => a - b),
    standbyLag,
    standbyOffsets,
    standbyRecords: snapshots.reduce((n, s) => n + s.standbyRecords, 0),
  };
}

/** A read-only `StateStore` over an instance's `lookup` and `size`, for serve's `store` with workers. */
export function instanceStore(instance: KafkaInstance): StateStore {
  const readOnly = () =>
    Promise.reject(new Error('the state of a Kafka instance with workers is written only by its workers'));
  return {
    getMany: (keys) => instance.lookup(keys),
    putMany: readOnly,
    deleteMany: readOnly,
    entries: () => {
      throw new Error('the state of a Kafka instance with workers is spread over its workers: use lookup');
    },
    size: () => instance.size(),
    close: async () => {},
  };
}
